//! Random operation sequences: the same operations on a fresh memory store and a fresh Redis
//! store (one container, a fresh key prefix per case) give the same answers, op by op.
//!
//! Answers are compared as text in which message ids are replaced by their rank among the
//! messages the run stored (`m0`, `m1`...): the stores' ids differ (memory takes the given
//! `ts`, Redis its own clock), their order must not. Everything else is compared as is.

use std::collections::HashSet;

use chat_core::{
    Limits,
    config::Rate,
    error::StoreError,
    protocol::{ConversationId, Group, GroupId, Message, StreamId, UserId},
    store::{Appended, Groups, Mark, NewMessage, Presence},
};
use proptest::{prelude::*, sample::subsequence, test_runner::TestRunner};

use super::{FAR, Store, redis_store_with};
use crate::helpers::RedisServer;

const USERS: usize = 3;
const GROUPS: usize = 2;
const SOCKETS: usize = 2;
const BUCKETS: usize = 3;
/// Kept per conversation: small, so that sequences trim history.
const HISTORY_MAX: usize = 4;

/// Who a message goes to: the `n`th other user (a DM), a group, or the DM of the next two
/// users (one the sender is not part of).
#[derive(Debug, Clone)]
enum To {
    Peer(usize),
    Group(usize),
    Others,
}

/// A message position: the `n`th message the run stored (modulo their number; the start
/// when there is none), or past every message.
#[derive(Debug, Clone, Copy)]
enum Pos {
    Message(usize),
    Start,
    Far,
}

/// One store call; indices pick among a few users, groups, sockets and buckets.
#[derive(Debug, Clone)]
enum Op {
    Send {
        from: usize,
        to: To,
        body: usize,
        client_id: Option<usize>,
        budget: Vec<usize>,
    },
    History {
        user: usize,
        to: To,
        before: Option<Pos>,
        limit: usize,
    },
    /// `cursor` None: unread; `continued`: from the user's last cursor, if any.
    Sync {
        user: usize,
        cursor: Option<Pos>,
        continued: bool,
        limit: usize,
    },
    Advance {
        user: usize,
        to: To,
        upto: Pos,
        read: bool,
    },
    Conversations(usize),
    DmPeers(usize),
    Create {
        group: usize,
        owner: usize,
        others: Vec<usize>,
    },
    Join {
        group: usize,
        user: usize,
        max_size: usize,
        max_groups: usize,
    },
    Leave(usize, usize),
    GetGroup(usize),
    OfUser(usize),
    Counts,
    Block(usize, usize),
    Unblock(usize, usize),
    IsBlocked(usize, usize),
    Connect(usize, usize),
    Disconnect(usize, usize),
    PresenceOf(Vec<usize>),
    NodeLost,
    Acquire(Vec<usize>),
}

fn to() -> impl Strategy<Value = To> {
    prop_oneof![
        4 => (0..USERS - 1).prop_map(To::Peer),
        4 => (0..GROUPS).prop_map(To::Group),
        1 => Just(To::Others),
    ]
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![
        4 => (0..40usize).prop_map(Pos::Message),
        1 => Just(Pos::Start),
        1 => Just(Pos::Far),
    ]
}

fn some_of(n: usize, max: usize) -> impl Strategy<Value = Vec<usize>> {
    subsequence((0..n).collect::<Vec<_>>(), 0..=max)
}

fn op() -> impl Strategy<Value = Op> {
    let user = || 0..USERS;
    let budget = prop_oneof![3 => Just(Vec::new()), 1 => some_of(BUCKETS, 2)];
    prop_oneof![
        12 => (user(), to(), 0..2usize, prop::option::of(0..3usize), budget).prop_map(
            |(from, to, body, client_id, budget)| Op::Send { from, to, body, client_id, budget }
        ),
        2 => (user(), to(), prop::option::of(pos()), 0..4usize)
            .prop_map(|(user, to, before, limit)| Op::History { user, to, before, limit }),
        5 => (user(), prop::option::of(pos()), any::<bool>(), 0..4usize).prop_map(
            |(user, cursor, continued, limit)| Op::Sync { user, cursor, continued, limit }
        ),
        4 => (user(), to(), pos(), any::<bool>())
            .prop_map(|(user, to, upto, read)| Op::Advance { user, to, upto, read }),
        3 => user().prop_map(Op::Conversations),
        1 => user().prop_map(Op::DmPeers),
        3 => (0..GROUPS, user(), some_of(USERS, 3))
            .prop_map(|(group, owner, others)| Op::Create { group, owner, others }),
        3 => (0..GROUPS, user(), 1..5usize, 1..3usize).prop_map(
            |(group, user, max_size, max_groups)| Op::Join { group, user, max_size, max_groups }
        ),
        2 => (0..GROUPS, user()).prop_map(|(g, u)| Op::Leave(g, u)),
        1 => (0..GROUPS).prop_map(Op::GetGroup),
        1 => user().prop_map(Op::OfUser),
        1 => Just(Op::Counts),
        2 => (user(), user()).prop_map(|(u, t)| Op::Block(u, t)),
        1 => (user(), user()).prop_map(|(u, t)| Op::Unblock(u, t)),
        1 => (user(), user()).prop_map(|(u, t)| Op::IsBlocked(u, t)),
        2 => (user(), 0..SOCKETS).prop_map(|(u, s)| Op::Connect(u, s)),
        2 => (user(), 0..SOCKETS).prop_map(|(u, s)| Op::Disconnect(u, s)),
        1 => some_of(USERS, USERS).prop_map(Op::PresenceOf),
        1 => Just(Op::NodeLost),
        1 => some_of(BUCKETS, 2).prop_map(Op::Acquire),
    ]
}

fn name(u: usize) -> UserId {
    UserId::parse(format!("u{u}")).unwrap()
}

fn group_id(g: usize) -> GroupId {
    GroupId::parse(format!("g{g}")).unwrap()
}

/// The conversation of `user` with `to`; a DM is never with the user themself.
fn conversation(user: usize, to: &To) -> ConversationId {
    match to {
        To::Peer(n) => ConversationId::dm(&name(user), &name((user + 1 + n) % USERS)),
        To::Group(g) => ConversationId::Group(group_id(*g)),
        To::Others => ConversationId::dm(&name((user + 1) % USERS), &name((user + 2) % USERS)),
    }
}

/// Slow enough that no token comes back during a run.
const RATE: Rate = Rate::new(0.0001, 2);

/// One run of a sequence on one store, and what it needs to name ids.
struct Run<'a> {
    store: &'a dyn Store,
    /// The ids of the messages stored, in order.
    ids: Vec<StreamId>,
    /// The last cursor `sync` gave each user.
    cursors: Vec<Option<StreamId>>,
    created: HashSet<usize>,
}

impl Run<'_> {
    fn id(&self, pos: Pos) -> StreamId {
        match pos {
            Pos::Message(_) | Pos::Start if self.ids.is_empty() => StreamId::default(),
            Pos::Message(n) => self.ids[n % self.ids.len()],
            Pos::Start => StreamId::default(),
            Pos::Far => FAR,
        }
    }

    /// An id as its rank among the stored messages.
    fn rank(&self, id: StreamId) -> String {
        match self.ids.iter().position(|i| *i == id) {
            Some(n) => format!("m{n}"),
            None if id == StreamId::default() => "start".into(),
            None if id == FAR => "far".into(),
            None => format!("unknown id {id}"),
        }
    }

    fn message(&self, m: &Message) -> String {
        format!(
            "{} {} from {} {:?} ts {} key {:?}",
            self.rank(m.id),
            m.conversation,
            m.from,
            m.body,
            m.ts,
            m.client_id
        )
    }

    fn messages(&self, list: &[Message]) -> String {
        let texts: Vec<String> = list.iter().map(|m| self.message(m)).collect();
        format!("[{}]", texts.join(", "))
    }

    /// Runs `op` (the `step`th) and describes its answer.
    async fn apply(&mut self, step: usize, op: &Op) -> Result<String, StoreError> {
        let s = self.store;
        let buckets: Vec<String> = (0..BUCKETS).map(|b| format!("b{b}")).collect();
        Ok(match op {
            Op::Send {
                from,
                to,
                body,
                client_id,
                budget,
            } => {
                let new = NewMessage {
                    conversation: conversation(*from, to),
                    from: name(*from),
                    body: format!("body{body}"),
                    ts: 1000 + step as u64,
                    client_id: client_id.map(|k| format!("k{k}")),
                };
                let budget: Vec<(&str, Rate)> = budget
                    .iter()
                    .map(|b| (buckets[*b].as_str(), RATE))
                    .collect();
                match s.append(new, &budget).await? {
                    Appended::New {
                        message,
                        audience,
                        prev,
                    } => {
                        let after = prev.map(|p| self.rank(p));
                        self.ids.push(message.id);
                        format!(
                            "new {} audience {audience} after {after:?}",
                            self.message(&message)
                        )
                    }
                    Appended::Duplicate(m) => format!("duplicate {}", self.message(&m)),
                    other => format!("{other:?}"),
                }
            }
            Op::History {
                user,
                to,
                before,
                limit,
            } => {
                let before = before.map(|p| self.id(p));
                let conv = conversation(*user, to);
                let (page, more) = s.history(&conv, before, *limit).await?;
                format!("{} more {more}", self.messages(&page))
            }
            Op::Sync {
                user,
                cursor,
                continued,
                limit,
            } => {
                let cursor = match (continued, self.cursors[*user]) {
                    (true, Some(c)) => Some(c),
                    _ => cursor.map(|p| self.id(p)),
                };
                let page = s.sync(&name(*user), cursor, *limit).await?;
                self.cursors[*user] = Some(page.cursor);
                format!(
                    "{} cursor {} more {} truncated {}",
                    self.messages(&page.messages),
                    self.rank(page.cursor),
                    page.has_more,
                    page.truncated
                )
            }
            Op::Advance {
                user,
                to,
                upto,
                read,
            } => {
                let mark = if *read { Mark::Read } else { Mark::Delivered };
                let conv = conversation(*user, to);
                let upto = self.id(*upto);
                let covered = s.advance(&name(*user), &conv, upto, mark).await?;
                let covered: Vec<String> = covered
                    .iter()
                    .map(|(u, id)| format!("{u} {}", self.rank(*id)))
                    .collect();
                format!("{covered:?}")
            }
            Op::Conversations(u) => {
                let groups = s.of_user(&name(*u)).await?;
                let list = s.conversations(&name(*u), &groups).await?;
                let list: Vec<String> = list
                    .iter()
                    .map(|c| {
                        let last = c.last_message.as_ref().map(|m| self.message(m));
                        format!("{} {:?} last {last:?} unread {}", c.id, c.name, c.unread)
                    })
                    .collect();
                format!("{list:?}")
            }
            Op::DmPeers(u) => {
                let mut peers = s.dm_peers(&name(*u)).await?;
                peers.sort();
                format!("{peers:?}")
            }
            Op::Create {
                group,
                owner,
                others,
            } => {
                // Ids are fresh in real use: a second create of one id is not a contract.
                if !self.created.insert(*group) {
                    return Ok("skipped".into());
                }
                let mut members = vec![name(*owner)];
                members.extend(others.iter().filter(|o| *o != owner).map(|o| name(*o)));
                let g = Group {
                    id: group_id(*group),
                    name: format!("group {group}"),
                    owner: name(*owner),
                    members,
                    admins: Vec::new(),
                    topic: None,
                    visibility: Default::default(),
                };
                format!("{:?}", s.create(g).await?)
            }
            Op::Join {
                group,
                user,
                max_size,
                max_groups,
            } => {
                let id = group_id(*group);
                let joined = s.join(&id, &name(*user), *max_size, *max_groups).await?;
                format!("{joined:?}")
            }
            Op::Leave(g, u) => format!("{:?}", s.leave(&group_id(*g), &name(*u)).await?),
            Op::GetGroup(g) => format!("{:?}", Groups::get(s, &group_id(*g)).await?),
            Op::OfUser(u) => format!("{:?}", s.of_user(&name(*u)).await?),
            Op::Counts => {
                let all: Vec<UserId> = (0..USERS).map(name).collect();
                format!("{:?}", s.counts(&all).await?)
            }
            Op::Block(u, t) => format!("{:?}", s.block(&name(*u), &name(*t)).await?),
            Op::Unblock(u, t) => format!("{:?}", s.unblock(&name(*u), &name(*t)).await?),
            Op::IsBlocked(u, t) => {
                format!("{:?}", s.is_blocked(&name(*u), &name(*t)).await?)
            }
            Op::Connect(u, sock) => {
                format!("{:?}", s.connect(&name(*u), &format!("s{sock}")).await?)
            }
            Op::Disconnect(u, sock) => {
                let now = 5000 + step as u64;
                let last = s.disconnect(&name(*u), &format!("s{sock}"), now).await?;
                format!("{last:?}")
            }
            Op::PresenceOf(users) => {
                let users: Vec<UserId> = users.iter().map(|u| name(*u)).collect();
                format!("{:?}", Presence::get(s, &users).await?)
            }
            Op::NodeLost => format!("{:?}", s.node_lost("n0", 9000).await?),
            Op::Acquire(keys) => {
                let keys: Vec<(&str, Rate)> =
                    keys.iter().map(|b| (buckets[*b].as_str(), RATE)).collect();
                format!("{:?}", s.try_acquire_all(&keys).await?)
            }
        })
    }
}

/// Runs `ops` on `store` from scratch; one answer per op (an error is an answer too).
async fn run(store: &dyn Store, ops: &[Op]) -> Vec<String> {
    let mut run = Run {
        store,
        ids: Vec::new(),
        cursors: vec![None; USERS],
        created: HashSet::new(),
    };
    let mut out = Vec::with_capacity(ops.len());
    for (step, op) in ops.iter().enumerate() {
        let answer = run.apply(step, op).await;
        out.push(answer.unwrap_or_else(|e| format!("error: {e}")));
    }
    out
}

/// Random sequences of calls to every store trait give the same answers, call by call, on
/// the memory store and on Redis.
#[test]
fn the_stores_answer_random_sequences_alike() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(RedisServer::start());
    let limits = Limits {
        history_max: HISTORY_MAX,
        ..Limits::default()
    };
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let result = TestRunner::new(config).run(&prop::collection::vec(op(), 1..40), |ops| {
        let (memory, redis) = rt.block_on(async {
            let memory = chat_core::store::memory::MemoryStore::new(&limits);
            let redis = redis_store_with(&server, &limits).await;
            (run(&memory, &ops).await, run(&redis, &ops).await)
        });
        if let Some(step) = (0..ops.len()).find(|i| memory[*i] != redis[*i]) {
            let steps: Vec<String> = ops[..=step]
                .iter()
                .zip(&memory)
                .map(|(op, answer)| format!("{op:?} -> {answer}"))
                .collect();
            return Err(TestCaseError::fail(format!(
                "step {step}: {:?}\n  memory: {}\n  redis:  {}\nsteps (memory's answers):\n{}",
                ops[step],
                memory[step],
                redis[step],
                steps.join("\n")
            )));
        }
        Ok(())
    });
    rt.block_on(async move { drop(server) });
    if let Err(e) = result {
        panic!("{e}");
    }
}
