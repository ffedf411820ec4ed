//! What the in-memory message log keeps: an estimate of its size, and the least recently
//! active conversations forgotten whole once the estimate passes
//! [`Limits::memory_max_bytes`](crate::config::Limits::memory_max_bytes).
//!
//! Without it, embedded mode's memory grew with every conversation ever started: DMs to
//! made-up users cost a client nothing but its message rate. A conversation is forgotten
//! with its messages, counters, read marks and its place in its users' DM lists, as if it
//! had never been written to; a later message starts it afresh. The estimate counts what
//! the log holds for each item (ids, bodies, map entries), not the allocator's own overhead.

use std::mem::size_of;

use super::messages::{Conv, LogState, Marks};
use crate::protocol::{ConversationId, Message, StreamId, UserId};

/// A conversation's own entries: its map slot, counters and its place in the recency index.
pub(super) const CONV_COST: usize = 3 * size_of::<ConversationId>() + size_of::<Conv>() + 64;

/// One sender's entry in a conversation's per-sender counts.
pub(super) const SENDER_COST: usize = size_of::<UserId>() + 32;

/// One user's read and delivery marks in a conversation.
pub(super) const MARK_COST: usize =
    size_of::<(UserId, ConversationId)>() + size_of::<Marks>() + size_of::<UserId>() + 48;

/// A kept message: the struct and the text it owns.
pub(super) fn message_cost(m: &Message) -> usize {
    size_of::<Message>()
        + m.body.len()
        + m.from.as_str().len()
        + m.client_id.as_ref().map_or(0, String::len)
        + conversation_len(&m.conversation)
}

fn conversation_len(id: &ConversationId) -> usize {
    match id {
        ConversationId::Dm(a, b) => a.as_str().len() + b.as_str().len(),
        ConversationId::Group(g) => g.as_str().len(),
    }
}

impl LogState {
    /// Counts `added` more and `freed` fewer bytes for `id`, whose newest message is now
    /// `last` (it was `before`, `None` for a new conversation).
    pub(super) fn account(
        &mut self,
        id: &ConversationId,
        before: Option<StreamId>,
        last: StreamId,
        added: usize,
        freed: usize,
    ) {
        self.bytes = (self.bytes + added).saturating_sub(freed);
        if let Some(before) = before {
            self.recency.remove(&before);
        }
        self.recency.insert(last, id.clone());
    }

    /// Forgets the least recently active conversations, never `keep`, while the log is
    /// over `max` bytes. Returns how many were forgotten.
    pub(super) fn forget_over(&mut self, max: usize, keep: &ConversationId) -> usize {
        let mut forgotten = 0;
        while self.bytes > max {
            let Some((&last, id)) = self.recency.iter().find(|(_, id)| *id != keep) else {
                break;
            };
            let id = id.clone();
            self.recency.remove(&last);
            self.forget(&id);
            forgotten += 1;
        }
        if forgotten > 0 && self.forgotten == 0 {
            tracing::info!(
                max_bytes = max,
                "the memory store reached its budget (CHAT_MEMORY_MAX_MB): the least recently \
                 active conversations are forgotten from now on"
            );
        }
        if forgotten > 0 {
            self.forgotten += forgotten as u64;
            tracing::debug!(
                forgotten,
                bytes = self.bytes,
                "memory store over its budget: least recently active conversations forgotten"
            );
        }
        forgotten
    }

    fn forget(&mut self, id: &ConversationId) {
        let Some(conv) = self.convs.remove(id) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(conv.bytes);
        for user in &conv.marked {
            self.marks.remove(&(user.clone(), id.clone()));
        }
        if let ConversationId::Dm(a, b) = id {
            for user in [a, b] {
                if let Some(dms) = self.dms.get_mut(user) {
                    dms.remove(id);
                    if dms.is_empty() {
                        self.dms.remove(user);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemoryStore, lock};
    use crate::{
        config::Limits,
        protocol::{ConversationId, Group, GroupId, UserId},
        store::{Appended, Groups, Mark, MessageLog, NewMessage, Presence},
    };

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn store(max: usize) -> MemoryStore {
        MemoryStore::new(&Limits {
            history_max: 20,
            memory_max_bytes: max,
            ..Limits::default()
        })
    }

    async fn dm(s: &MemoryStore, from: &str, to: &str, body: &str) -> ConversationId {
        let conversation = ConversationId::dm(&user(from), &user(to));
        let new = NewMessage {
            conversation: conversation.clone(),
            from: user(from),
            body: body.into(),
            ts: 1,
            client_id: None,
        };
        match s.append(new, &[]).await.unwrap() {
            Appended::New { .. } => conversation,
            other => panic!("{other:?}"),
        }
    }

    /// The sum of what each conversation counts is the log's total, and within the budget
    /// unless one conversation alone is over it.
    fn check_accounts(s: &MemoryStore) -> usize {
        let st = lock(&s.log);
        let sum: usize = st.convs.values().map(|c| c.bytes).sum();
        assert_eq!(sum, st.bytes, "per-conversation sizes add up to the total");
        assert_eq!(st.recency.len(), st.convs.len());
        st.bytes
    }

    #[tokio::test]
    async fn the_least_recently_active_conversations_are_forgotten_whole() {
        let s = store(20_000);
        let body = "x".repeat(500);
        // mallory writes to 100 made-up users; alice's DM with bob stays active.
        let kept = dm(&s, "alice", "bob", "hi").await;
        ok_mark(&s, "bob", &kept).await;
        for i in 0..100 {
            dm(&s, "mallory", &format!("u{i}"), &body).await;
            if i % 10 == 0 {
                dm(&s, "alice", "bob", "still here").await;
            }
            assert!(check_accounts(&s) <= 20_000);
        }
        let forgotten = lock(&s.log).forgotten;
        assert!(forgotten > 50, "forgot {forgotten}");
        let (early, _) = s
            .history(&ConversationId::dm(&user("mallory"), &user("u0")), None, 10)
            .await
            .unwrap();
        assert!(early.is_empty(), "the oldest conversation is gone");
        let (late, _) = s
            .history(
                &ConversationId::dm(&user("mallory"), &user("u99")),
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(late.len(), 1, "the newest is kept");
        let (alice, _) = s.history(&kept, None, 20).await.unwrap();
        assert_eq!(
            alice.len(),
            11,
            "an active conversation keeps all its messages"
        );
        // Forgotten DMs leave their users' lists, and their marks go with them.
        let peers = s.dm_peers(&user("u0")).await.unwrap();
        assert!(peers.is_empty(), "{peers:?}");
        let mallory = s.dm_peers(&user("mallory")).await.unwrap().len();
        assert!(mallory < 40, "mallory still lists {mallory} DMs");
        let st = lock(&s.log);
        assert!(st.marks.keys().all(|(_, c)| st.convs.contains_key(c)));
    }

    async fn ok_mark(s: &MemoryStore, who: &str, conv: &ConversationId) {
        let (msgs, _) = s.history(conv, None, 1).await.unwrap();
        s.advance(&user(who), conv, msgs[0].id, Mark::Read)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn trimming_and_forgetting_keep_the_estimate_exact() {
        let s = store(50_000);
        for i in 0..300 {
            let to = format!("u{}", i % 17);
            let conv = dm(&s, &format!("s{}", i % 5), &to, &"y".repeat(i % 300)).await;
            if i % 3 == 0 {
                ok_mark(&s, &to, &conv).await;
            }
            check_accounts(&s);
        }
        // A conversation alone over the budget is kept: it is the one being written.
        let s = store(100);
        let conv = dm(&s, "a", "b", &"z".repeat(1000)).await;
        assert_eq!(s.history(&conv, None, 5).await.unwrap().0.len(), 1);
        dm(&s, "c", "d", "next").await;
        assert!(s.history(&conv, None, 5).await.unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn offline_users_last_seen_is_kept_for_the_most_recent_only() {
        use super::super::presence::MAX_OFFLINE;
        let s = store(1 << 20);
        for i in 0..=MAX_OFFLINE {
            let u = user(&format!("u{i}"));
            s.connect(&u, "s").await.unwrap();
            s.disconnect(&u, "s", i as u64 + 1).await.unwrap();
        }
        let states = Presence::get(
            &s,
            &[user("u0"), user("u1"), user(&format!("u{MAX_OFFLINE}"))],
        )
        .await
        .unwrap();
        assert_eq!(states[0].last_seen, None, "the longest gone is forgotten");
        assert_eq!(states[1].last_seen, Some(2));
        assert_eq!(states[2].last_seen, Some(MAX_OFFLINE as u64 + 1));
        // A user who is online is never forgotten, however many leave after them.
        let stay = user("stay");
        s.connect(&stay, "s").await.unwrap();
        for i in 0..MAX_OFFLINE {
            let u = user(&format!("v{i}"));
            s.connect(&u, "s").await.unwrap();
            s.disconnect(&u, "s", 1).await.unwrap();
        }
        assert!(Presence::get(&s, &[stay]).await.unwrap()[0].online);
    }

    #[tokio::test]
    async fn groups_stop_at_the_cap() {
        use super::super::groups::MAX_GROUPS;
        let s = store(1 << 20);
        let group = |i: usize| Group {
            id: GroupId::parse(format!("g{i}")).unwrap(),
            name: "g".into(),
            owner: user("o"),
            members: vec![user("o")],
            admins: Vec::new(),
            topic: None,
            visibility: Default::default(),
        };
        for i in 0..MAX_GROUPS {
            s.create(group(i)).await.unwrap();
        }
        let err = s.create(group(MAX_GROUPS)).await.unwrap_err();
        assert!(matches!(err, crate::error::StoreError::Full(_)), "{err:?}");
    }
}
