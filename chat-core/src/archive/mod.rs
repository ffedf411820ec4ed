//! The database of record behind the chat (`docs/archive.md`): where every message is kept
//! after Redis (or the in-memory store) has trimmed it, and what full-text search reads.
//!
//! chat-core names the seam; `chat-archive` implements it on PostgreSQL. An [`Archive`]
//! takes messages in batches, idempotently by message id (a batch written twice, or a
//! message in two batches, is stored once), and pages a conversation's history and search
//! results newest first.
//!
//! With an archive ([`ChatBuilder::archive`](crate::ChatBuilder::archive)), every stored
//! message is queued for it before its sender's ack, and written asynchronously in batches:
//! - embedded, the queue is in memory (`memory`): bounded (a full queue makes sends wait,
//!   then fail `unavailable`, rather than forget messages), drained at shutdown;
//! - in a cluster, the queue is Redis (`stream`): streams sharded by conversation, read by
//!   every node through one consumer group; what a node that died had read is taken over by
//!   another after [`ArchiveConfig::claim_after`]. An acknowledged message is in a stream.
//!
//! `history` reads Redis (or memory) first and goes on in the archive past what is kept
//! there (`handlers::history`); `search` reads the archive only.

pub mod backfill;
mod memory;
mod metrics;
mod stream;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use metrics::ArchiveMetrics;

use crate::{
    error::{ChatError, ErrorCode},
    protocol::{ConversationId, Message, MessageId, UserId},
    redis::Redis,
};

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

    /// Up to `limit` messages of the conversations in `scope` matching `query` (words, `"quoted
    /// phrases"`, `-excluded`, `or`: web search syntax), newest first, after `after` in
    /// that order (the last message of the previous page: ids repeat across
    /// conversations, so the position is the id and the conversation).
    async fn search(
        &self,
        scope: &SearchScope,
        query: &str,
        after: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError>;

    /// Whether a backfill finished `conversation` before ([`backfill`]); none did by
    /// default, and every run archives everything again (idempotent, only slower).
    async fn backfilled(&self, _conversation: &ConversationId) -> Result<bool, ArchiveError> {
        Ok(false)
    }

    /// Records that a backfill finished `conversation`.
    async fn mark_backfilled(&self, _conversation: &ConversationId) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// The conversations a search looks in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchScope {
    /// Every direct conversation of this user (`dm:<user>:*` and `dm:*:<user>`).
    pub dms_of: Option<UserId>,
    /// These conversations.
    pub conversations: Vec<ConversationId>,
}

/// How messages reach the archive. [`ArchiveConfig::default`] has the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Embedded mode: messages waiting in memory at most (default 100,000). A send that
    /// finds the queue full waits up to 5 s for room, then fails `unavailable`.
    pub queue: usize,
    /// Most messages written in one batch (default 500).
    pub batch: usize,
    /// Cluster: how long entries a node read may wait unwritten before another node takes
    /// them over (`CHAT_ARCHIVE_CLAIM_AFTER`, default 30 s): a dead node's batch is archived
    /// about this long after its death.
    pub claim_after: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            queue: 100_000,
            batch: 500,
            claim_after: Duration::from_secs(30),
        }
    }
}

/// The archive as the chat uses it: where stored messages are queued, and what history and
/// search read.
#[derive(Debug, Clone)]
pub(crate) struct Archiver {
    archive: Arc<dyn Archive>,
    queue: Queue,
    metrics: ArchiveMetrics,
    /// Until when reads fail at once: a read failed a moment ago.
    reads_off_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

/// The longest a read (a history page, a search) may take.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// After a read failed, reads fail at once for this long rather than each waiting
/// [`READ_TIMEOUT`] for a database that is down.
const READ_PAUSE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
enum Queue {
    Memory(memory::MemoryQueue),
    Stream(stream::StreamWriter),
}

/// A Redis queue for the archive: the cluster's connection, key prefix and this node's uid.
pub(crate) struct RedisQueue {
    pub redis: Redis,
    pub prefix: String,
    pub consumer: String,
    /// Replicas each entry is waited for, as a message append is (`CHAT_REDIS_WAIT`).
    pub wait: Option<(u32, Duration)>,
}

impl Archiver {
    /// Starts writing to `archive` what is queued, in memory or (with `redis`) through the
    /// cluster's streams, until `stop` (then what is queued in memory is drained), on `tasks`.
    pub fn start(
        archive: Arc<dyn Archive>,
        config: &ArchiveConfig,
        redis: Option<RedisQueue>,
        metrics: ArchiveMetrics,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let queue = match redis {
            None => Queue::Memory(memory::MemoryQueue::start(
                archive.clone(),
                config,
                metrics.clone(),
                tasks,
                stop,
            )),
            Some(redis) => Queue::Stream(stream::StreamWriter::start(
                archive.clone(),
                config,
                redis,
                metrics.clone(),
                tasks,
                stop,
            )),
        };
        Self {
            archive,
            queue,
            metrics,
            reads_off_until: Arc::default(),
        }
    }

    /// The archive itself, to read through [`Archiver::read`].
    pub fn archive(&self) -> &dyn Archive {
        self.archive.as_ref()
    }

    /// Queues a stored message for the archive; returns once it is queued (in Redis, in a
    /// cluster), so that an acknowledged message is never lost to the archive.
    pub async fn enqueue(&self, message: &Message) -> Result<(), ChatError> {
        match &self.queue {
            Queue::Memory(q) => q.enqueue(message).await,
            Queue::Stream(q) => q.enqueue(message).await,
        }
    }

    /// Brings the lag gauge up to now (before a scrape).
    pub fn update_metrics(&self) {
        self.metrics.refresh();
    }

    /// Runs `read` (a call on [`Archiver::archive`], not yet polled) within [`READ_TIMEOUT`],
    /// unless a read failed in the last [`READ_PAUSE`] (then it fails at once).
    pub async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, ArchiveError>>,
    ) -> Result<T, ArchiveError> {
        let now = tokio::time::Instant::now();
        let off = |until: Option<tokio::time::Instant>| until.is_some_and(|u| now < u);
        if off(*self
            .reads_off_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()))
        {
            return Err(ArchiveError("a read failed a moment ago".into()));
        }
        let result = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(result) => result,
            Err(_) => Err(ArchiveError(format!("no answer within {READ_TIMEOUT:?}"))),
        };
        if result.is_err() {
            *self
                .reads_off_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                Some(tokio::time::Instant::now() + READ_PAUSE);
        }
        result
    }
}

/// How long one batch write may take before it counts as failed (and is retried): a
/// database that hangs shows as errors and a growing lag, not as silence.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `messages` within [`WRITE_TIMEOUT`].
pub(crate) async fn write(archive: &dyn Archive, messages: &[Message]) -> Result<(), ArchiveError> {
    match tokio::time::timeout(WRITE_TIMEOUT, archive.write(messages)).await {
        Ok(result) => result,
        Err(_) => Err(ArchiveError(format!("no answer within {WRITE_TIMEOUT:?}"))),
    }
}

/// What a client is told when the archive cannot take or give messages.
pub(crate) fn unavailable(e: &ArchiveError) -> ChatError {
    tracing::warn!(cause = %e, "archive unavailable");
    ChatError::new(
        ErrorCode::Unavailable,
        "the archive is unavailable; try again",
    )
}
