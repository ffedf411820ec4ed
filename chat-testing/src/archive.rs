//! An archive in memory for the chat's tests: it keeps what it is given, searches by words
//! (every word of the query in the body, any case), and can be made to fail.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chat_core::{
    archive::{Archive, ArchiveError, ArchivePage, SearchScope},
    protocol::{ConversationId, Message, MessageId},
};

/// Messages by (conversation, id).
type Kept = BTreeMap<(String, MessageId), Message>;

/// The test archive; clones share their messages.
#[derive(Debug, Clone, Default)]
pub struct MemoryArchive {
    kept: Arc<Mutex<Kept>>,
    failing: Arc<AtomicBool>,
    backfilled: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl MemoryArchive {
    /// Makes every call fail (`true`) or work again.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The bodies archived in `conversation`, oldest first.
    pub fn bodies(&self, conversation: &str) -> Vec<String> {
        self.kept
            .lock()
            .unwrap()
            .iter()
            .filter(|((c, _), _)| c == conversation)
            .map(|(_, m)| m.body.clone())
            .collect()
    }

    /// How many messages are archived.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap().len()
    }

    /// Whether nothing is archived.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits (`within` at most) until `ok` holds of the number of archived messages.
    pub async fn until(&self, within: Duration, ok: impl Fn(usize) -> bool) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let n = self.len();
            if ok(n) {
                return n;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the archive holds {n} messages after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn check(&self) -> Result<(), ArchiveError> {
        match self.failing.load(Ordering::SeqCst) {
            true => Err(ArchiveError("the test archive is failing".into())),
            false => Ok(()),
        }
    }
}

fn in_scope(scope: &SearchScope, conversation: &ConversationId) -> bool {
    scope.conversations.contains(conversation)
        || scope
            .dms_of
            .as_ref()
            .is_some_and(|u| conversation.dm_peer(u).is_some())
}

#[async_trait]
impl Archive for MemoryArchive {
    async fn write(&self, messages: &[Message]) -> Result<(), ArchiveError> {
        self.check()?;
        let mut kept = self.kept.lock().unwrap();
        for m in messages {
            kept.entry((m.conversation.to_string(), m.id))
                .or_insert_with(|| m.clone());
        }
        Ok(())
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError> {
        self.check()?;
        let kept = self.kept.lock().unwrap();
        let c = conversation.to_string();
        let mut older: Vec<Message> = kept
            .range((c.clone(), MessageId { ms: 0, seq: 0 })..)
            .take_while(|((k, _), _)| *k == c)
            .filter(|((_, id), _)| before.is_none_or(|b| *id < b))
            .map(|(_, m)| m.clone())
            .collect();
        let has_more = older.len() > limit;
        let messages = older.split_off(older.len().saturating_sub(limit));
        Ok(ArchivePage { messages, has_more })
    }

    async fn search(
        &self,
        scope: &SearchScope,
        query: &str,
        after: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError> {
        self.check()?;
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let kept = self.kept.lock().unwrap();
        let mut found: Vec<&Message> = kept
            .values()
            .filter(|m| in_scope(scope, &m.conversation))
            .filter(|m| {
                let body = m.body.to_lowercase();
                let body: Vec<&str> = body.split(|c: char| !c.is_alphanumeric()).collect();
                !words.is_empty() && words.iter().all(|w| body.contains(&w.as_str()))
            })
            .collect();
        let key = |m: &Message| (m.id, m.conversation.to_string());
        found.sort_by_key(|m| std::cmp::Reverse(key(m)));
        let mut page: Vec<Message> = found
            .into_iter()
            .filter(|m| {
                after
                    .as_ref()
                    .is_none_or(|(id, c)| key(m) < (*id, c.to_string()))
            })
            .take(limit + 1)
            .cloned()
            .collect();
        let has_more = page.len() > limit;
        page.truncate(limit);
        Ok(ArchivePage {
            messages: page,
            has_more,
        })
    }

    async fn backfilled(&self, conversation: &ConversationId) -> Result<bool, ArchiveError> {
        self.check()?;
        Ok(self
            .backfilled
            .lock()
            .unwrap()
            .contains(&conversation.to_string()))
    }

    async fn mark_backfilled(&self, conversation: &ConversationId) -> Result<(), ArchiveError> {
        self.check()?;
        self.backfilled
            .lock()
            .unwrap()
            .insert(conversation.to_string());
        Ok(())
    }
}
