//! The database of record behind the chat (`docs/archive.md`): where every message is kept
//! after Redis (or the in-memory store) has trimmed it, and what full-text search reads.
//!
//! chat-core names the seam; `chat-archive` implements it on PostgreSQL. An [`Archive`]
//! takes messages in batches, idempotently by message id (a batch written twice, or a
//! message in two batches, is stored once), and pages a conversation's history and search
//! results newest first.

use async_trait::async_trait;

use crate::protocol::{ConversationId, Message, MessageId};

/// Why the archive could not answer: the text is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("archive failure: {0}")]
pub struct ArchiveError(pub String);

/// A page of messages, and whether older ones match too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchivePage {
    /// Oldest first for history, newest first for search.
    pub messages: Vec<Message>,
    /// Older messages exist: ask again with `before` = the oldest id of this page.
    pub has_more: bool,
}

/// A database of record for messages.
#[async_trait]
pub trait Archive: std::fmt::Debug + Send + Sync + 'static {
    /// Stores `messages` (any conversations, any order); a message stored before is left
    /// as it is.
    async fn write(&self, messages: &[Message]) -> Result<(), ArchiveError>;

    /// Up to `limit` messages of `conversation` older than `before` (or the newest), oldest
    /// first.
    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError>;

    /// Up to `limit` messages of `conversations` matching `query` (words, `"quoted
    /// phrases"`, `-excluded`, `or`: web search syntax), newest first, after `after` in
    /// that order (the last message of the previous page: ids repeat across
    /// conversations, so the position is the id and the conversation).
    async fn search(
        &self,
        conversations: &[ConversationId],
        query: &str,
        after: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError>;
}
