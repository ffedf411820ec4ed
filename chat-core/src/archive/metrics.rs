//! The archive families (`chat_archive_*`, docs/metrics.md).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

/// The archive families.
#[derive(Debug, Clone)]
pub struct ArchiveMetrics {
    queued: Counter,
    written: Counter,
    /// `ok`, `error`.
    writes: [Counter; 2],
    write_duration: Histogram,
    reclaimed: Counter,
    pub(crate) backlog: Gauge,
    lag: Gauge,
    /// When the oldest waiting message was stored (ms; 0: none waits), so that the lag
    /// grows between two updates while a write hangs.
    oldest: Arc<AtomicU64>,
}

impl ArchiveMetrics {
    /// Resolves the archive families against the current recorder.
    pub fn resolve() -> Self {
        describe_counter!(
            "chat_archive_queued_total",
            "Messages queued for the archive by this node (a resent duplicate is queued again)."
        );
        describe_counter!(
            "chat_archive_written_total",
            "Messages this node wrote to the archive (a message written twice counts twice; the archive keeps one)."
        );
        describe_counter!(
            "chat_archive_writes_total",
            "Batches this node wrote to the archive, by result: `ok` or `error` (retried)."
        );
        describe_histogram!(
            "chat_archive_write_duration_seconds",
            Unit::Seconds,
            "How long writing one batch to the archive took, failures included."
        );
        describe_counter!(
            "chat_archive_reclaimed_total",
            "Cluster: queued messages this node took over from a node that held them too long (a dead one)."
        );
        describe_gauge!(
            "chat_archive_backlog",
            "Messages waiting for the archive: in this node's queue (embedded) or in the cluster's streams (as of this node's last look)."
        );
        describe_gauge!(
            "chat_archive_lag_seconds",
            Unit::Seconds,
            "How long the oldest message waiting for the archive has waited (0 when none waits)."
        );
        Self {
            queued: counter!("chat_archive_queued_total"),
            written: counter!("chat_archive_written_total"),
            writes: ["ok", "error"].map(|r| counter!("chat_archive_writes_total", "result" => r)),
            write_duration: histogram!("chat_archive_write_duration_seconds"),
            reclaimed: counter!("chat_archive_reclaimed_total"),
            backlog: gauge!("chat_archive_backlog"),
            lag: gauge!("chat_archive_lag_seconds"),
            oldest: Arc::default(),
        }
    }

    pub(crate) fn queued(&self) {
        self.queued.increment(1);
    }

    /// One batch of `n` messages written (`ok`) or not.
    pub(crate) fn wrote(&self, n: usize, ok: bool, took: Duration) {
        self.writes[usize::from(!ok)].increment(1);
        self.write_duration.record(took.as_secs_f64());
        if ok {
            self.written.increment(n as u64);
        }
    }

    pub(crate) fn reclaimed(&self, n: usize) {
        self.reclaimed.increment(n as u64);
    }

    /// The oldest waiting message was stored at `oldest_ms` (none waits: `None`).
    pub(crate) fn set_lag(&self, oldest_ms: Option<u64>) {
        self.oldest.store(oldest_ms.unwrap_or(0), Ordering::Relaxed);
        self.refresh();
    }

    /// The lag gauge as of now (before a scrape).
    pub(crate) fn refresh(&self) {
        let lag = match self.oldest.load(Ordering::Relaxed) {
            0 => 0.0,
            ms => crate::protocol::now_ms().saturating_sub(ms) as f64 / 1000.0,
        };
        self.lag.set(lag);
    }
}
