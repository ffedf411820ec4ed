//! Embedded mode: the archive's queue in memory, written by one task in batches, drained
//! at shutdown.

use std::{sync::Arc, time::Duration};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Archive, ArchiveConfig, ArchiveMetrics};
use crate::{
    error::{ChatError, ErrorCode},
    protocol::Message,
};

/// How long a send waits for room in a full queue before it fails.
const FULL_WAIT: Duration = Duration::from_secs(5);
/// How long the queue is drained at shutdown while the archive fails.
const DRAIN: Duration = Duration::from_secs(8);
/// Longest pause between two attempts at a failing batch.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The sending side of the queue.
#[derive(Debug, Clone)]
pub(super) struct MemoryQueue {
    tx: mpsc::Sender<Message>,
    metrics: ArchiveMetrics,
}

impl MemoryQueue {
    /// The queue, and its writer on `tasks` until `stop` (then it drains what is left).
    pub fn start(
        archive: Arc<dyn Archive>,
        config: &ArchiveConfig,
        metrics: ArchiveMetrics,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let writer = Writer {
            archive,
            batch: config.batch.max(1),
            metrics: metrics.clone(),
        };
        tasks.spawn(writer.run(rx, stop));
        Self { tx, metrics }
    }

    pub async fn enqueue(&self, message: &Message) -> Result<(), ChatError> {
        match self.tx.send_timeout(message.clone(), FULL_WAIT).await {
            Ok(()) => {
                self.metrics.queued();
                self.metrics.backlog.increment(1.0);
                Ok(())
            }
            Err(_) => {
                tracing::warn!("archive queue full: a send is refused");
                Err(ChatError::new(
                    ErrorCode::Unavailable,
                    "the archive is behind; try again",
                ))
            }
        }
    }
}

struct Writer {
    archive: Arc<dyn Archive>,
    batch: usize,
    metrics: ArchiveMetrics,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Message>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch);
        let mut backoff = Duration::from_millis(100);
        loop {
            if batch.is_empty() {
                tokio::select! {
                    n = rx.recv_many(&mut batch, self.batch) => if n == 0 { break },
                    () = stop.cancelled() => break,
                }
            }
            if self.write(&batch, &rx).await {
                batch.clear();
                backoff = Duration::from_millis(100);
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
        // Nothing is stored any more (the store is closed before the stop): what is queued
        // is all there is.
        rx.close();
        let deadline = Instant::now() + DRAIN;
        loop {
            if batch.is_empty() && rx.recv_many(&mut batch, self.batch).await == 0 {
                break;
            }
            if self.write(&batch, &rx).await {
                batch.clear();
            } else if Instant::now() >= deadline {
                let lost = batch.len() + rx.len();
                tracing::error!(
                    messages = lost,
                    "archive unavailable at shutdown: these messages are not archived (backfill can add those still in the store)"
                );
                break;
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Writes `batch`; `rx` is what waits behind it (for the gauges).
    async fn write(&self, batch: &[Message], rx: &mpsc::Receiver<Message>) -> bool {
        self.metrics.set_lag(batch.first().map(|m| m.ts));
        let started = Instant::now();
        let result = super::write(self.archive.as_ref(), batch).await;
        self.metrics
            .wrote(batch.len(), result.is_ok(), started.elapsed());
        match result {
            Ok(()) => {
                self.metrics.backlog.decrement(batch.len() as f64);
                if rx.is_empty() {
                    self.metrics.set_lag(None);
                }
                true
            }
            Err(e) => {
                tracing::warn!(messages = batch.len(), cause = %e, "cannot write to the archive; retrying");
                false
            }
        }
    }
}
