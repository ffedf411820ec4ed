//! Every store in process memory: embedded mode, and the reference for other backends.
//!
//! Each trait call takes one lock for its whole step, so every step is atomic. Nothing here
//! survives a restart; [`MemoryStore::close`] makes writes fail with [`StoreError::Closed`]
//! so a node that is shutting down never acknowledges what it would lose.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    Appended, Blocks, GroupRefusal, Groups, MARK_SCAN, Mark, MessageLog, NewMessage, Presence,
    RateLimiter, Refusal, SyncPage,
};
use crate::{
    config::{Limits, Rate},
    error::StoreError,
    protocol::{
        ConversationId, ConversationSummary, Group, GroupId, Message, MessageId, PresenceState,
        StreamId, UserId,
    },
};

/// Most idempotency keys kept at once; the oldest go first past this.
const MAX_IDEMPOTENCY_KEYS: usize = 200_000;
/// Rate buckets idle this long are full again and can be forgotten.
const BUCKET_IDLE: Duration = Duration::from_secs(120);

/// In-memory implementation of every store trait.
#[derive(Debug)]
pub struct MemoryStore {
    history_max: usize,
    idempotency_ttl: Duration,
    closed: AtomicBool,
    log: Mutex<LogState>,
    groups: Mutex<GroupState>,
    blocks: Mutex<HashMap<UserId, HashSet<UserId>>>,
    presence: Mutex<HashMap<UserId, Online>>,
    buckets: TokenBuckets,
}

#[derive(Debug, Default)]
struct LogState {
    /// The newest message id handed out, in any conversation.
    clock: StreamId,
    convs: HashMap<ConversationId, Conv>,
    /// Each user's DMs that have messages.
    dms: HashMap<UserId, HashSet<ConversationId>>,
    marks: HashMap<(UserId, ConversationId), Marks>,
    idempotency: HashMap<(UserId, String), (Instant, Message)>,
    idempotency_order: VecDeque<(Instant, UserId, String)>,
}

#[derive(Debug, Default)]
struct Conv {
    msgs: VecDeque<Message>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    read: StreamId,
    delivered: StreamId,
}

#[derive(Debug, Default)]
struct GroupState {
    groups: HashMap<GroupId, Group>,
    by_user: HashMap<UserId, HashSet<GroupId>>,
}

#[derive(Debug, Default)]
struct Online {
    sockets: HashSet<String>,
    last_seen: Option<u64>,
}

/// Token buckets by key, in process. Idle buckets are forgotten (they would be full anyway).
#[derive(Debug, Default)]
pub struct TokenBuckets(Mutex<BucketMap>);

#[derive(Debug, Default)]
struct BucketMap {
    map: HashMap<String, (f64, Instant)>,
    last_prune: Option<Instant>,
}

impl TokenBuckets {
    /// Takes a token from `key`'s bucket; false if it is empty.
    pub fn try_acquire(&self, key: &str, rate: Rate) -> bool {
        self.try_acquire_all(&[(key, rate)])
    }

    /// Takes a token from every bucket if each has one; otherwise takes none and says false.
    pub fn try_acquire_all(&self, buckets: &[(&str, Rate)]) -> bool {
        let now = Instant::now();
        let mut b = lock(&self.0);
        if b.last_prune
            .is_none_or(|t| now.duration_since(t) > BUCKET_IDLE)
        {
            b.map
                .retain(|_, (_, at)| now.duration_since(*at) < BUCKET_IDLE);
            b.last_prune = Some(now);
        }
        let mut all = true;
        for (key, rate) in buckets {
            let (tokens, at) = b
                .map
                .entry((*key).to_owned())
                .or_insert((f64::from(rate.burst), now));
            let refill = now.duration_since(*at).as_secs_f64() * rate.per_second;
            *tokens = (*tokens + refill).min(f64::from(rate.burst));
            *at = now;
            all &= *tokens >= 1.0;
        }
        if all {
            for (key, _) in buckets {
                if let Some((tokens, _)) = b.map.get_mut(*key) {
                    *tokens -= 1.0;
                }
            }
        }
        all
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that
    // matters more than refusing all further service, so keep going with the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    /// An empty store with the retention limits of `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            history_max: limits.history_max,
            idempotency_ttl: limits.idempotency_ttl,
            closed: AtomicBool::new(false),
            log: Mutex::default(),
            groups: Mutex::default(),
            blocks: Mutex::default(),
            presence: Mutex::default(),
            buckets: TokenBuckets::default(),
        }
    }

    /// Refuses every later write: the process is about to exit and would lose it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

impl LogState {
    fn expire_idempotency(&mut self, ttl: Duration, now: Instant) {
        while let Some((at, ..)) = self.idempotency_order.front() {
            if now.duration_since(*at) < ttl && self.idempotency_order.len() <= MAX_IDEMPOTENCY_KEYS
            {
                break;
            }
            if let Some((at, user, key)) = self.idempotency_order.pop_front() {
                let k = (user, key);
                if self.idempotency.get(&k).is_some_and(|(t, _)| *t == at) {
                    self.idempotency.remove(&k);
                }
            }
        }
    }

    fn read_mark(&self, user: &UserId, conversation: &ConversationId) -> StreamId {
        self.marks
            .get(&(user.clone(), conversation.clone()))
            .map(|m| m.read)
            .unwrap_or_default()
    }

    fn summary(
        &self,
        user: &UserId,
        id: &ConversationId,
        name: Option<String>,
    ) -> ConversationSummary {
        let read = self.read_mark(user, id);
        let conv = self.convs.get(id);
        let last_message = conv.and_then(|c| c.msgs.back().cloned());
        let unread = conv.map_or(0, |c| {
            c.msgs
                .iter()
                .rev()
                .take_while(|m| m.id > read)
                .filter(|m| &m.from != user)
                .count() as u64
        });
        ConversationSummary {
            id: id.clone(),
            name,
            last_message,
            unread,
        }
    }
}

#[async_trait]
impl MessageLog for MemoryStore {
    async fn append(
        &self,
        msg: NewMessage,
        budget: &[(&str, Rate)],
    ) -> Result<Appended, StoreError> {
        self.writable()?;
        if !self.buckets.try_acquire_all(budget) {
            return Ok(Appended::Refused(Refusal::RateLimited));
        }
        // The checks and the append hold the locks of everything they read (blocks, then
        // groups, then the log; nothing takes them in another order).
        let blocks = lock(&self.blocks);
        let groups = lock(&self.groups);
        let audience = match &msg.conversation {
            ConversationId::Dm(..) => {
                let Some(peer) = msg.conversation.dm_peer(&msg.from) else {
                    return Ok(Appended::Refused(Refusal::NotMember));
                };
                if blocks.get(peer).is_some_and(|b| b.contains(&msg.from)) {
                    return Ok(Appended::Refused(Refusal::Blocked));
                }
                vec![msg.from.clone(), peer.clone()]
            }
            ConversationId::Group(id) => match groups.groups.get(id) {
                None => return Ok(Appended::Refused(Refusal::NoGroup)),
                Some(g) if !g.members.contains(&msg.from) => {
                    return Ok(Appended::Refused(Refusal::NotMember));
                }
                Some(g) => g.members.clone(),
            },
        };
        let now = Instant::now();
        let mut st = lock(&self.log);
        st.expire_idempotency(self.idempotency_ttl, now);
        let key = msg.client_id.clone().map(|k| (msg.from.clone(), k));
        if let Some((_, first)) = key.as_ref().and_then(|k| st.idempotency.get(k)) {
            return Ok(
                if first.conversation == msg.conversation && first.body == msg.body {
                    Appended::Duplicate(first.clone())
                } else {
                    Appended::Conflict
                },
            );
        }
        let id = st.clock.next(msg.ts);
        st.clock = id;
        let message = Message {
            id,
            conversation: msg.conversation,
            from: msg.from,
            body: msg.body,
            ts: msg.ts,
            client_id: msg.client_id,
        };
        let conv = st.convs.entry(message.conversation.clone()).or_default();
        conv.msgs.push_back(message.clone());
        while conv.msgs.len() > self.history_max {
            conv.msgs.pop_front();
        }
        if let ConversationId::Dm(..) = message.conversation {
            for user in &audience {
                let dms = st.dms.entry(user.clone()).or_default();
                dms.insert(message.conversation.clone());
            }
        }
        if let Some((user, k)) = key {
            st.idempotency_order
                .push_back((now, user.clone(), k.clone()));
            st.idempotency.insert((user, k), (now, message.clone()));
        }
        Ok(Appended::New {
            message,
            audience: audience.len(),
        })
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let st = lock(&self.log);
        let Some(conv) = st.convs.get(conversation) else {
            return Ok((Vec::new(), false));
        };
        let end = match before {
            Some(b) => conv.msgs.partition_point(|m| m.id < b),
            None => conv.msgs.len(),
        };
        let start = end.saturating_sub(limit);
        Ok((conv.msgs.range(start..end).cloned().collect(), start > 0))
    }

    async fn sync(
        &self,
        user: &UserId,
        cursor: Option<StreamId>,
        limit: usize,
    ) -> Result<SyncPage, StoreError> {
        // Groups before the log, as in append.
        let groups: Vec<ConversationId> = lock(&self.groups)
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .map(|g| ConversationId::Group(g.clone()))
            .collect();
        let st = lock(&self.log);
        let dms = st.dms.get(user).into_iter().flatten().cloned();
        let mut newest = cursor.unwrap_or_default();
        let mut truncated = false;
        let mut found: Vec<&Message> = Vec::new();
        for id in dms.chain(groups) {
            let Some(conv) = st.convs.get(&id) else {
                continue;
            };
            if let Some(last) = conv.msgs.back() {
                newest = newest.max(last.id);
            }
            let from = match cursor {
                Some(c) => {
                    // As on Redis: older than the oldest message a full history kept.
                    truncated |= conv.msgs.len() >= self.history_max
                        && conv.msgs.front().is_some_and(|m| c < m.id);
                    c
                }
                None => st.read_mark(user, &id),
            };
            let start = conv.msgs.partition_point(|m| m.id <= from);
            // No conversation gives more than a page and one (to tell there is more).
            found.extend(
                conv.msgs
                    .range(start..)
                    .filter(|m| cursor.is_some() || &m.from != user)
                    .take(limit + 1),
            );
        }
        found.sort_by_key(|m| m.id);
        let has_more = found.len() > limit;
        found.truncate(limit);
        Ok(SyncPage {
            cursor: match found.last() {
                Some(m) if has_more => m.id,
                _ => newest,
            },
            messages: found.into_iter().cloned().collect(),
            has_more,
            truncated,
        })
    }

    async fn dm_peers(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        let st = lock(&self.log);
        Ok(st
            .dms
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|c| c.dm_peer(user).cloned())
            .collect())
    }

    async fn conversations(
        &self,
        user: &UserId,
        groups: &[Group],
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let st = lock(&self.log);
        let mut out: Vec<ConversationSummary> = st
            .dms
            .get(user)
            .into_iter()
            .flatten()
            .map(|id| st.summary(user, id, None))
            .collect();
        out.extend(groups.iter().map(|g| {
            st.summary(
                user,
                &ConversationId::Group(g.id.clone()),
                Some(g.name.clone()),
            )
        }));
        super::sort_recent_first(&mut out);
        Ok(out)
    }

    async fn advance(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        upto: MessageId,
        mark: Mark,
    ) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        self.writable()?;
        let mut st = lock(&self.log);
        let Some(newest) = st
            .convs
            .get(conversation)
            .and_then(|c| c.msgs.back())
            .map(|m| m.id)
        else {
            return Ok(Vec::new());
        };
        let upto = upto.min(newest);
        let marks = st
            .marks
            .entry((user.clone(), conversation.clone()))
            .or_default();
        let old = match mark {
            Mark::Delivered => marks.delivered,
            Mark::Read => marks.read,
        };
        if upto <= old {
            return Ok(Vec::new());
        }
        marks.delivered = marks.delivered.max(upto);
        if mark == Mark::Read {
            marks.read = upto;
        }
        let mut covered = Vec::new();
        let mut seen = HashSet::new();
        if let Some(conv) = st.convs.get(conversation) {
            let newer = conv.msgs.iter().rev().skip_while(|m| m.id > upto);
            for m in newer.take_while(|m| m.id > old).take(MARK_SCAN) {
                if &m.from != user && seen.insert(&m.from) {
                    covered.push((m.from.clone(), m.id));
                }
            }
        }
        Ok(covered)
    }
}

#[async_trait]
impl Groups for MemoryStore {
    async fn create(&self, group: Group) -> Result<Group, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        for m in &group.members {
            st.by_user
                .entry(m.clone())
                .or_default()
                .insert(group.id.clone());
        }
        st.groups.insert(group.id.clone(), group.clone());
        Ok(group)
    }

    async fn get(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        Ok(lock(&self.groups).groups.get(id).cloned())
    }

    async fn join(
        &self,
        id: &GroupId,
        user: &UserId,
        max_size: usize,
        max_groups: usize,
    ) -> Result<Result<(Group, bool), GroupRefusal>, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let st = &mut *st;
        let Some(group) = st.groups.get_mut(id) else {
            return Ok(Err(GroupRefusal::NotFound));
        };
        if group.members.contains(user) {
            return Ok(Ok((group.clone(), false)));
        }
        if group.members.len() >= max_size {
            return Ok(Err(GroupRefusal::Full));
        }
        let mine = st.by_user.entry(user.clone()).or_default();
        if mine.len() >= max_groups {
            return Ok(Err(GroupRefusal::TooManyGroups));
        }
        mine.insert(id.clone());
        group.members.push(user.clone());
        Ok(Ok((group.clone(), true)))
    }

    async fn leave(&self, id: &GroupId, user: &UserId) -> Result<bool, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let st = &mut *st;
        let Some(group) = st.groups.get_mut(id) else {
            return Ok(false);
        };
        let Some(pos) = group.members.iter().position(|m| m == user) else {
            return Ok(false);
        };
        group.members.remove(pos);
        if &group.owner == user
            && let Some(next) = group.members.first()
        {
            group.owner = next.clone();
        }
        if let Some(mine) = st.by_user.get_mut(user) {
            mine.remove(id);
        }
        Ok(true)
    }

    async fn of_user(&self, user: &UserId) -> Result<Vec<Group>, StoreError> {
        let st = lock(&self.groups);
        let mut groups: Vec<Group> = st
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| st.groups.get(id).cloned())
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }
}

#[async_trait]
impl Blocks for MemoryStore {
    async fn block(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.writable()?;
        lock(&self.blocks)
            .entry(user.clone())
            .or_default()
            .insert(target.clone());
        Ok(())
    }

    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.writable()?;
        if let Some(set) = lock(&self.blocks).get_mut(user) {
            set.remove(target);
        }
        Ok(())
    }

    async fn is_blocked(&self, user: &UserId, target: &UserId) -> Result<bool, StoreError> {
        Ok(lock(&self.blocks)
            .get(user)
            .is_some_and(|s| s.contains(target)))
    }
}

#[async_trait]
impl Presence for MemoryStore {
    async fn connect(&self, user: &UserId, socket: &str) -> Result<bool, StoreError> {
        let mut st = lock(&self.presence);
        let entry = st.entry(user.clone()).or_default();
        let first = entry.sockets.is_empty();
        entry.sockets.insert(socket.to_owned());
        Ok(first)
    }

    async fn disconnect(
        &self,
        user: &UserId,
        socket: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut st = lock(&self.presence);
        let Some(entry) = st.get_mut(user) else {
            return Ok(None);
        };
        if !entry.sockets.remove(socket) || !entry.sockets.is_empty() {
            return Ok(None);
        }
        entry.last_seen = Some(now_ms);
        Ok(Some(now_ms))
    }

    async fn node_lost(&self, _: &str, _: u64) -> Result<Vec<(UserId, u64)>, StoreError> {
        // One process, one node: its sockets die with it.
        Ok(Vec::new())
    }

    async fn get(&self, users: &[UserId]) -> Result<Vec<PresenceState>, StoreError> {
        let st = lock(&self.presence);
        Ok(users
            .iter()
            .map(|u| match st.get(u) {
                Some(e) => PresenceState {
                    online: !e.sockets.is_empty(),
                    last_seen: e.last_seen,
                },
                None => PresenceState {
                    online: false,
                    last_seen: None,
                },
            })
            .collect())
    }
}

#[async_trait]
impl RateLimiter for MemoryStore {
    async fn try_acquire_all(&self, buckets: &[(&str, Rate)]) -> Result<bool, StoreError> {
        Ok(self.buckets.try_acquire_all(buckets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn store() -> MemoryStore {
        MemoryStore::new(&Limits {
            history_max: 5,
            ..Limits::default()
        })
    }

    async fn send(s: &MemoryStore, from: &str, to: &str, body: &str, ts: u64) -> Message {
        let (a, b) = (user(from), user(to));
        let new = NewMessage {
            conversation: ConversationId::dm(&a, &b),
            from: a.clone(),
            body: body.into(),
            ts,
            client_id: None,
        };
        match s.append(new, &[]).await.unwrap() {
            Appended::New { message, .. } => message,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn ids_grow_within_a_millisecond_and_history_is_capped() {
        let s = store();
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(send(&s, "a", "b", &format!("m{i}"), 1000).await.id);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let dm = ConversationId::dm(&user("a"), &user("b"));
        let (page, more) = s.history(&dm, None, 100).await.unwrap();
        assert_eq!(page.len(), 5, "capped at history_max");
        assert!(!more);
        let (page, more) = s.history(&dm, Some(ids[5]), 2).await.unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), ids[3..5]);
        assert!(more);
    }

    #[tokio::test]
    async fn idempotent_append_returns_the_first_message_or_conflicts() {
        let s = store();
        let (a, b) = (user("a"), user("b"));
        let new = |body: &str| NewMessage {
            conversation: ConversationId::dm(&a, &b),
            from: a.clone(),
            body: body.into(),
            ts: 1,
            client_id: Some("k".into()),
        };
        let Appended::New { message: first, .. } = s.append(new("x"), &[]).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            s.append(new("x"), &[]).await.unwrap(),
            Appended::Duplicate(first)
        );
        assert_eq!(s.append(new("y"), &[]).await.unwrap(), Appended::Conflict);
    }

    #[tokio::test]
    async fn sync_without_cursor_gives_unread_then_cursor_gives_rest_once() {
        let s = MemoryStore::new(&Limits::default());
        let m1 = send(&s, "a", "b", "1", 10).await;
        let m2 = send(&s, "a", "b", "2", 11).await;
        let dm = m1.conversation.clone();
        s.advance(&user("b"), &dm, m1.id, Mark::Read).await.unwrap();
        let page = s.sync(&user("b"), None, 100).await.unwrap();
        assert_eq!(page.messages, vec![m2.clone()]);
        assert!(!page.has_more);
        let again = s.sync(&user("b"), Some(page.cursor), 100).await.unwrap();
        assert!(again.messages.is_empty());
        let m3 = send(&s, "b", "a", "3", 12).await;
        let next = s.sync(&user("b"), Some(page.cursor), 100).await.unwrap();
        assert_eq!(next.messages, vec![m3], "own sends reach other devices");
    }

    #[tokio::test]
    async fn sync_pages_and_reports_truncation() {
        let s = store();
        for i in 0..7 {
            send(&s, "a", "b", &i.to_string(), 100 + i).await;
        }
        let first = s
            .sync(&user("b"), Some(StreamId::default()), 2)
            .await
            .unwrap();
        assert!(first.truncated, "history_max 5 trimmed two messages");
        assert_eq!(bodies(&first.messages), ["2", "3"]);
        assert!(first.has_more);
        let rest = s.sync(&user("b"), Some(first.cursor), 10).await.unwrap();
        assert_eq!(bodies(&rest.messages), ["4", "5", "6"]);
        assert!(!rest.has_more && !rest.truncated);
    }

    fn bodies(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(|m| m.body.as_str()).collect()
    }

    #[tokio::test]
    async fn ids_grow_across_conversations_and_sync_merges_them() {
        let s = MemoryStore::new(&Limits::default());
        let (a, b, c) = (user("a"), user("b"), user("c"));
        let g = Group {
            id: GroupId::parse("g1").unwrap(),
            name: "g".into(),
            owner: a.clone(),
            members: vec![a.clone(), b.clone(), c.clone()],
        };
        s.create(g.clone()).await.unwrap();
        let group = ConversationId::Group(g.id.clone());
        let to_group = |from: &UserId, body: &str, ts| NewMessage {
            conversation: group.clone(),
            from: from.clone(),
            body: body.into(),
            ts,
            client_id: None,
        };
        // The clock runs back between sends: ids still grow, across conversations.
        let m1 = send(&s, "a", "b", "dm1", 50).await;
        let Appended::New { message: g1, .. } =
            s.append(to_group(&c, "g1", 40), &[]).await.unwrap()
        else {
            panic!()
        };
        let m2 = send(&s, "c", "b", "dm2", 30).await;
        assert!(m1.id < g1.id && g1.id < m2.id);
        let page = s.sync(&b, None, 100).await.unwrap();
        assert_eq!(bodies(&page.messages), ["dm1", "g1", "dm2"]);
        assert_eq!(page.cursor, m2.id);
        let paged = s.sync(&b, Some(m1.id), 1).await.unwrap();
        assert_eq!(bodies(&paged.messages), ["g1"]);
        assert!(paged.has_more);
        assert_eq!(paged.cursor, g1.id);
        s.leave(&g.id, &b).await.unwrap();
        let after_leaving = s.sync(&b, Some(m1.id), 10).await.unwrap();
        assert_eq!(
            bodies(&after_leaving.messages),
            ["dm2"],
            "only current groups"
        );
    }

    #[tokio::test]
    async fn advance_reports_newest_per_sender_once() {
        let s = MemoryStore::new(&Limits::default());
        let m1 = send(&s, "a", "b", "1", 10).await;
        let m2 = send(&s, "a", "b", "2", 11).await;
        send(&s, "b", "a", "own", 12).await;
        let dm = m1.conversation.clone();
        let far = StreamId {
            ms: u64::MAX,
            seq: 0,
        };
        let got = s
            .advance(&user("b"), &dm, far, Mark::Delivered)
            .await
            .unwrap();
        assert_eq!(got, vec![(user("a"), m2.id)]);
        assert!(
            s.advance(&user("b"), &dm, m2.id, Mark::Delivered)
                .await
                .unwrap()
                .is_empty()
        );
        let read = s.advance(&user("b"), &dm, m1.id, Mark::Read).await.unwrap();
        assert_eq!(read, vec![(user("a"), m1.id)]);
        let summary = s.conversations(&user("b"), &[]).await.unwrap();
        assert_eq!(summary[0].unread, 1);
    }

    #[tokio::test]
    async fn closed_store_refuses_writes() {
        let s = store();
        s.close();
        let (a, b) = (user("a"), user("b"));
        let new = NewMessage {
            conversation: ConversationId::dm(&a, &b),
            from: a.clone(),
            body: "x".into(),
            ts: 1,
            client_id: None,
        };
        assert_eq!(s.append(new, &[]).await, Err(StoreError::Closed));
        assert!(
            s.history(&ConversationId::dm(&a, &b), None, 1)
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_refills_over_time() {
        let s = store();
        let rate = Rate::new(2.0, 2);
        assert!(s.try_acquire("k", rate).await.unwrap());
        assert!(s.try_acquire("k", rate).await.unwrap());
        assert!(!s.try_acquire("k", rate).await.unwrap());
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(s.try_acquire("k", rate).await.unwrap());
        assert!(!s.try_acquire("k", rate).await.unwrap());
    }

    #[tokio::test]
    async fn presence_counts_devices() {
        let s = store();
        let a = user("a");
        assert!(s.connect(&a, "s1").await.unwrap());
        assert!(!s.connect(&a, "s2").await.unwrap());
        assert_eq!(s.disconnect(&a, "s1", 5).await.unwrap(), None);
        assert_eq!(s.disconnect(&a, "s2", 6).await.unwrap(), Some(6));
        assert_eq!(
            Presence::get(&s, std::slice::from_ref(&a)).await.unwrap(),
            vec![PresenceState {
                online: false,
                last_seen: Some(6)
            }]
        );
    }
}
