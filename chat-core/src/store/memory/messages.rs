//! [`MessageLog`] in memory: one log per conversation, marks and idempotency keys.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    time::Duration,
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    MemoryStore, lock,
    retention::{CONV_COST, MARK_COST, SENDER_COST, message_cost},
};
use crate::{
    config::Rate,
    error::StoreError,
    protocol::{ConversationId, ConversationSummary, Group, Message, MessageId, StreamId, UserId},
    store::{Appended, MARK_SCAN, Mark, MessageLog, NewMessage, Refusal, SyncPage},
};

/// Most idempotency keys kept at once; the oldest go first past this.
const MAX_IDEMPOTENCY_KEYS: usize = 200_000;

#[derive(Debug, Default)]
pub(super) struct LogState {
    /// The newest message id handed out, in any conversation.
    clock: StreamId,
    pub(super) convs: HashMap<ConversationId, Conv>,
    /// Each user's DMs that have messages.
    pub(super) dms: HashMap<UserId, HashSet<ConversationId>>,
    pub(super) marks: HashMap<(UserId, ConversationId), Marks>,
    idempotency: HashMap<(UserId, String), (Instant, Message)>,
    idempotency_order: VecDeque<(Instant, UserId, String)>,
    /// The estimated size of `convs`, `dms` and `marks` (see `retention`).
    pub(super) bytes: usize,
    /// Conversations by their newest message: the least recently active first.
    pub(super) recency: BTreeMap<StreamId, ConversationId>,
    /// Conversations forgotten to stay within the budget, ever.
    pub(super) forgotten: u64,
}

#[derive(Debug, Default)]
pub(super) struct Conv {
    /// The newest `history_max` messages.
    msgs: VecDeque<Message>,
    /// Messages ever appended, trimmed ones included.
    count: u64,
    /// Messages ever appended, per sender.
    sent: HashMap<UserId, u64>,
    /// Its estimated size, marks included.
    pub(super) bytes: usize,
    /// Users with marks in it.
    pub(super) marked: HashSet<UserId>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Marks {
    read: StreamId,
    delivered: StreamId,
    /// The unread count when the read mark last moved, and the counters it started from.
    unread: Option<UnreadAt>,
}

/// A user's unread count in a conversation at their read mark: later messages add to it
/// through the conversation's counters, so that trimming the history takes none away.
#[derive(Debug, Clone, Copy)]
struct UnreadAt {
    unread: u64,
    count: u64,
    sent: u64,
}

impl Conv {
    fn sent_by(&self, user: &UserId) -> u64 {
        self.sent.get(user).copied().unwrap_or(0)
    }

    /// The user's unread count: the count at their read mark (`at`; none without a mark),
    /// plus the messages since, less their own; trimmed ones included, as on Redis.
    fn unread(&self, user: &UserId, at: Option<UnreadAt>) -> u64 {
        let at = at.unwrap_or(UnreadAt {
            unread: 0,
            count: 0,
            sent: 0,
        });
        (at.unread + self.count.saturating_sub(at.count))
            .saturating_sub(self.sent_by(user).saturating_sub(at.sent))
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
        let at = self
            .marks
            .get(&(user.clone(), id.clone()))
            .and_then(|m| m.unread);
        let conv = self.convs.get(id);
        let last_message = conv.and_then(|c| c.msgs.back().cloned());
        let unread = conv.map_or(0, |c| c.unread(user, at));
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
                // The system sender posts to any group that exists.
                Some(g) if !msg.from.is_system() && !g.members.contains(&msg.from) => {
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
        let st = &mut *st;
        let conv = st.convs.get(&message.conversation);
        let (is_new, before) = (
            conv.is_none(),
            conv.and_then(|c| c.msgs.back()).map(|m| m.id),
        );
        let conv = st.convs.entry(message.conversation.clone()).or_default();
        let mut added = message_cost(&message) + if is_new { CONV_COST } else { 0 };
        if !conv.sent.contains_key(&message.from) {
            added += SENDER_COST;
        }
        // The conversation's newest message before this one: where live delivery resumes.
        let prev = before;
        conv.msgs.push_back(message.clone());
        conv.count += 1;
        *conv.sent.entry(message.from.clone()).or_default() += 1;
        let mut freed = 0;
        while conv.msgs.len() > self.history_max {
            freed += conv.msgs.pop_front().as_ref().map_or(0, message_cost);
        }
        conv.bytes = (conv.bytes + added).saturating_sub(freed);
        st.account(&message.conversation, before, id, added, freed);
        if let ConversationId::Dm(..) = message.conversation {
            for user in &audience {
                let dms = st.dms.entry(user.clone()).or_default();
                dms.insert(message.conversation.clone());
            }
        }
        st.forget_over(self.memory_max_bytes, &message.conversation);
        if let Some((user, k)) = key {
            st.idempotency_order
                .push_back((now, user.clone(), k.clone()));
            st.idempotency.insert((user, k), (now, message.clone()));
        }
        Ok(Appended::New {
            message,
            prev,
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
        let limit = limit.max(1);
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
        crate::store::sort_recent_first(&mut out);
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
        let st = &mut *st;
        let Some(conv) = st.convs.get_mut(conversation) else {
            return Ok(Vec::new());
        };
        let key = (user.clone(), conversation.clone());
        let mut marks = st.marks.get(&key).copied().unwrap_or_default();
        let old = match mark {
            Mark::Delivered => marks.delivered,
            Mark::Read => marks.read,
        };
        // The newly covered messages, newest first. The mark moves onto the newest of them
        // (as on Redis): never past the newest message, and not at all when `upto` is older
        // than every message kept.
        let newly: Vec<&Message> = conv
            .msgs
            .iter()
            .rev()
            .skip_while(|m| m.id > upto)
            .take_while(|m| m.id > old)
            .take(MARK_SCAN)
            .collect();
        let Some(to) = newly.first().map(|m| m.id) else {
            return Ok(Vec::new());
        };
        marks.delivered = marks.delivered.max(to);
        if mark == Mark::Read {
            marks.read = to;
            marks.unread = Some(UnreadAt {
                unread: conv
                    .msgs
                    .iter()
                    .rev()
                    .take_while(|m| m.id > to)
                    .filter(|m| &m.from != user)
                    .count() as u64,
                count: conv.count,
                sent: conv.sent_by(user),
            });
        }
        if conv.marked.insert(user.clone()) {
            conv.bytes += MARK_COST;
            st.bytes += MARK_COST;
        }
        st.marks.insert(key, marks);
        let mut seen = HashSet::new();
        Ok(newly
            .into_iter()
            .filter(|m| &m.from != user && seen.insert(&m.from))
            .map(|m| (m.from.clone(), m.id))
            .collect())
    }
}
