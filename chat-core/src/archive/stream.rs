//! Cluster mode: the archive's queue in Redis, [`ARCHIVE_SHARDS`] streams
//! ([`Keys::archive`]) sharded by conversation, read by every node through the consumer
//! group `archivers`, each node a consumer named by its uid.
//!
//! - A node appends each message it stored (`XADD`, then `WAIT` when appends wait for
//!   replicas) before the sender's ack: an acknowledged message is in a stream.
//! - The reader reads new entries of every shard (`XREADGROUP ... >`), with `CHAT_REDIS_WAIT`
//!   waits until the replicas have them (so a failover never leaves the archive with a
//!   message Redis lost), writes them to the archive in one batch (retrying while it fails: they stay pending for this node), then
//!   `XACK`s and `XDEL`s them, so the streams hold only what is left to write.
//! - Every second it takes over (`XAUTOCLAIM`) entries pending for longer than
//!   `claim_after`: those of a node that died or froze between reading and writing. Writes
//!   are idempotent, so a batch written by two nodes is stored once.
//!
//! Every command names one shard's key.

use std::{sync::Arc, time::Duration};

use redis::{
    RedisError,
    streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply},
};
use tokio::time::Instant;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Archive, ArchiveConfig, ArchiveMetrics, RedisQueue};
use crate::{
    error::{ChatError, ErrorCode},
    keys::{ARCHIVE_SHARDS, Keys, archive_shard},
    protocol::Message,
    redis::Redis,
};

/// The consumer group every node reads the streams through.
const GROUP: &str = "archivers";
/// The pause when a pass found nothing to write.
const IDLE: Duration = Duration::from_millis(100);
/// How often the reader takes over entries and updates the backlog and lag gauges.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Longest pause between two attempts at a failing batch.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The appending side, used by the send path.
#[derive(Debug, Clone)]
pub(super) struct StreamWriter {
    redis: Redis,
    keys: Keys,
    wait: Option<(u32, Duration)>,
    metrics: ArchiveMetrics,
}

impl StreamWriter {
    /// The writer, and the reader on `tasks` until `stop`.
    pub fn start(
        archive: Arc<dyn Archive>,
        config: &ArchiveConfig,
        queue: RedisQueue,
        metrics: ArchiveMetrics,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let keys = Keys::new(queue.prefix);
        let reader = Reader {
            wait: queue.wait,
            redis: queue.redis.clone(),
            shards: (0..ARCHIVE_SHARDS).map(|n| keys.archive(n)).collect(),
            consumer: queue.consumer,
            archive,
            batch: config.batch.max(1),
            claim_after: config.claim_after,
            metrics: metrics.clone(),
        };
        tasks.spawn(reader.run(stop));
        Self {
            redis: queue.redis,
            keys,
            wait: queue.wait,
            metrics,
        }
    }

    pub async fn enqueue(&self, message: &Message) -> Result<(), ChatError> {
        let key = self.keys.archive(archive_shard(&message.conversation));
        let json = serde_json::to_string(message).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("m")
            .arg(json)
            .ignore();
        if let Some((replicas, timeout)) = self.wait {
            // Same connection: the entry reaches the replicas the message reached.
            pipe.cmd("WAIT")
                .arg(replicas)
                .arg(timeout.as_millis() as u64)
                .ignore();
        }
        match self.redis.query::<()>(&pipe).await {
            Ok(()) => {
                self.metrics.queued();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(cause = %e, "cannot queue a message for the archive");
                Err(ChatError::new(
                    ErrorCode::Unavailable,
                    "the message is stored but not queued for the archive; send it again with the same clientId",
                ))
            }
        }
    }
}

/// Entries read from one shard.
type Read = Vec<(usize, StreamId)>;

struct Reader {
    /// Replicas the entries read must reach before they are written (`CHAT_REDIS_WAIT`).
    wait: Option<(u32, Duration)>,
    redis: Redis,
    shards: Vec<String>,
    consumer: String,
    archive: Arc<dyn Archive>,
    batch: usize,
    claim_after: Duration,
    metrics: ArchiveMetrics,
}

impl Reader {
    async fn run(self, stop: CancellationToken) {
        let mut groups = false;
        let mut next_look = Instant::now();
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            if failures > 0 {
                let pause = (Duration::from_millis(100) * 2u32.pow(failures.min(6))).min(RETRY_MAX);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => break,
                }
            }
            if !groups {
                match self.create_groups().await {
                    Ok(()) => groups = true,
                    Err(e) => {
                        tracing::warn!(cause = %e, "archive: cannot create the consumer groups");
                        failures += 1;
                        continue;
                    }
                }
            }
            let mut entries = Read::new();
            if Instant::now() >= next_look {
                next_look = Instant::now() + LOOK_EVERY;
                match self.claim().await {
                    Ok(claimed) => {
                        if !claimed.is_empty() {
                            tracing::info!(
                                entries = claimed.len(),
                                "archive: took over entries of an unresponsive node"
                            );
                            self.metrics.reclaimed(claimed.len());
                        }
                        entries = claimed;
                    }
                    Err(e) => {
                        groups = e.code() != Some("NOGROUP");
                        tracing::warn!(cause = %e, "archive: cannot take over entries");
                    }
                }
                self.look().await;
            }
            if entries.is_empty() {
                match self.read_new().await {
                    Ok(read) => entries = read,
                    Err(e) => {
                        groups = e.code() != Some("NOGROUP");
                        tracing::warn!(cause = %e, "archive: cannot read the queue");
                        failures += 1;
                        continue;
                    }
                }
            }
            failures = 0;
            if !entries.is_empty() && !self.replicated().await {
                // The master is gone: what it had not replicated is lost with it, and the
                // sender was not acknowledged; what it had, the new master hands out again.
                continue;
            }
            if entries.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(IDLE.min(next_look.saturating_duration_since(Instant::now()))) => {}
                    () = stop.cancelled() => break,
                }
                continue;
            }
            if !self.write(&entries, &stop).await {
                // Stopping with the batch unwritten: another node takes it at once.
                self.release(&entries).await;
                break;
            }
            self.done(&entries).await;
        }
    }

    /// With `CHAT_REDIS_WAIT`, waits until the replicas have what was read (the read is a
    /// write of this connection, after the appends it returned): an entry is archived only
    /// once a failover would keep it, so the archive never holds a message Redis lost, whose
    /// sender, never acknowledged, would send it again under a new id. False if Redis failed
    /// (a short count is the store's policy: replicas out of reach, go on without them).
    async fn replicated(&self) -> bool {
        let Some((replicas, timeout)) = self.wait else {
            return true;
        };
        let cmd = redis::cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64)
            .to_owned();
        match self.redis.query::<i64>(&cmd).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(cause = %e, "archive: cannot wait for replicas; the entries read are left to the new master");
                false
            }
        }
    }

    /// Writes the messages of `entries` until it succeeds, or `stop`; returns whether it did.
    async fn write(&self, entries: &Read, stop: &CancellationToken) -> bool {
        let messages: Vec<Message> = entries
            .iter()
            .filter_map(|(shard, e)| {
                let message = e
                    .get::<String>("m")
                    .and_then(|json| serde_json::from_str::<Message>(&json).ok());
                if message.is_none() {
                    tracing::warn!(shard = %self.shards[*shard], entry = %e.id, "archive: malformed entry dropped");
                }
                message
            })
            .collect();
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let mut result = Ok(());
            for chunk in messages.chunks(self.batch) {
                result = super::write(self.archive.as_ref(), chunk).await;
                if result.is_err() {
                    break;
                }
            }
            self.metrics
                .wrote(messages.len(), result.is_ok(), started.elapsed());
            match result {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(messages = messages.len(), cause = %e, "cannot write to the archive; retrying");
                    // The entries stay in the streams: the gauges count them.
                    self.look().await;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return false,
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// Up to `batch` new entries of each shard, in one round trip.
    async fn read_new(&self) -> Result<Read, RedisError> {
        let mut pipe = redis::pipe();
        for key in &self.shards {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(self.batch)
                .arg("STREAMS")
                .arg(key)
                .arg(">");
        }
        let replies: Vec<Option<StreamReadReply>> = self.redis.query(&pipe).await?;
        Ok(replies
            .into_iter()
            .enumerate()
            .flat_map(|(shard, r)| {
                r.into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .map(move |e| (shard, e))
            })
            .collect())
    }

    /// Takes over entries of every shard pending for `claim_after` or longer.
    async fn claim(&self) -> Result<Read, RedisError> {
        let mut pipe = redis::pipe();
        for key in &self.shards {
            pipe.cmd("XAUTOCLAIM")
                .arg(key)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(self.claim_after.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(self.batch);
        }
        let replies: Vec<StreamAutoClaimReply> = self.redis.query(&pipe).await?;
        Ok(replies
            .into_iter()
            .enumerate()
            .flat_map(|(shard, r)| r.claimed.into_iter().map(move |e| (shard, e)))
            .collect())
    }

    /// Acknowledges and deletes written entries; if Redis does not answer, another node
    /// writes them again later (idempotent).
    async fn done(&self, entries: &Read) {
        let mut pipe = redis::pipe();
        for (shard, e) in entries {
            let key = &self.shards[*shard];
            pipe.cmd("XACK").arg(key).arg(GROUP).arg(&e.id).ignore();
            pipe.cmd("XDEL").arg(key).arg(&e.id).ignore();
        }
        if let Err(e) = self.redis.query::<()>(&pipe).await {
            tracing::warn!(cause = %e, "archive: cannot acknowledge written entries; they will be written again");
        }
    }

    /// Makes entries this node gives up look idle for `claim_after`: the next node to look
    /// takes them.
    async fn release(&self, entries: &Read) {
        let mut pipe = redis::pipe();
        for (shard, e) in entries {
            pipe.cmd("XCLAIM")
                .arg(&self.shards[*shard])
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(0)
                .arg(&e.id)
                .arg("IDLE")
                .arg(self.claim_after.as_millis() as u64)
                .arg("JUSTID")
                .ignore();
        }
        if let Err(e) = self.redis.query::<()>(&pipe).await {
            tracing::debug!(cause = %e, "archive: cannot release entries");
        }
    }

    /// Creates the consumer group (and the stream) of every shard, if missing.
    async fn create_groups(&self) -> Result<(), RedisError> {
        for key in &self.shards {
            let cmd = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .to_owned();
            match self.redis.query::<()>(&cmd).await {
                Err(e) if e.code() != Some("BUSYGROUP") => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The backlog (entries in every shard) and lag (the age of the oldest) gauges.
    async fn look(&self) {
        let mut pipe = redis::pipe();
        for key in &self.shards {
            pipe.cmd("XLEN").arg(key);
            pipe.cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1);
        }
        let Ok(replies) = self.redis.query::<Vec<redis::Value>>(&pipe).await else {
            return;
        };
        let (mut backlog, mut oldest) = (0u64, None::<u64>);
        for pair in replies.chunks(2) {
            let [len, first] = pair else { continue };
            backlog += redis::from_redis_value::<u64>(len.clone()).unwrap_or(0);
            let first: Option<StreamRangeReply> = redis::from_redis_value(first.clone()).ok();
            let ms = first
                .and_then(|r| r.ids.into_iter().next())
                .and_then(|e| e.id.split('-').next().and_then(|ms| ms.parse().ok()));
            oldest = match (oldest, ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.metrics.backlog.set(backlog as f64);
        self.metrics.set_lag(oldest);
    }
}
