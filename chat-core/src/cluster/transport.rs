//! Node-to-node transport over Redis streams: one inbox stream per node.
//!
//! A sender appends one entry per target node (`XADD chat:inbox:<uid>`), from one task that
//! keeps order and retries a failed batch until Redis takes it. A node reads its own inbox
//! with a blocking `XREAD` from the last id it processed, so a Redis outage or failover
//! delays delivery but loses nothing; after a reconnect it resumes where it stopped.
//! Entries carry the sender's id and a sequence number: a retried batch that Redis had in
//! fact stored is recognised and skipped, so nothing is handled twice.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ::redis::{
    Value as RValue,
    streams::{StreamReadOptions, StreamReadReply},
};
use socketioxide_core::Uid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Stats;
use crate::{keys::Keys, redis::Redis};

/// Version of the entry layout below.
pub(crate) const WIRE_VERSION: u8 = 1;

/// What an inbox entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An adapter request (socketioxide-core `RequestOut`, msgpack).
    Request,
    /// A response to a request (`(request id, Response)`, msgpack).
    Response,
    /// A chat-level message between nodes (chat-core's own
    /// [`Envelope`](super::envelope::Envelope), msgpack), handed to the chat as an event.
    Chat,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "q",
            Kind::Response => "r",
            Kind::Chat => "c",
        }
    }
}

/// One entry to append to a node's inbox.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub target: Uid,
    pub kind: Kind,
    pub ns: String,
    pub data: Arc<Vec<u8>>,
}

/// One entry read from this node's inbox.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub origin: Uid,
    pub kind: Kind,
    pub ns: String,
    pub data: Vec<u8>,
}

/// Most entries appended in one pipeline.
const BATCH: usize = 256;
/// Most entries read per `XREAD`.
const READ_COUNT: usize = 512;
/// Handled entries are trimmed from the inbox once this many have piled up, or a second after
/// the last trim, or when the inbox is idle: not after every read, which at low rates would
/// double the round trips per entry.
const TRIM_EVERY: usize = 1024;
const TRIM_INTERVAL: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The sending side: a bounded queue in front of one ordered sender task.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<(u64, Outgoing)>,
    seq: AtomicU64,
}

impl Outbox {
    /// Starts the sender task; it stops when `stop` fires and the queue is drained (or
    /// after `drain_deadline` if Redis is unreachable by then).
    pub fn spawn(
        redis: Redis,
        keys: Keys,
        uid: Uid,
        capacity: usize,
        max_len: usize,
        stats: Arc<Stats>,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let task = tokio::spawn(send_loop(redis, keys, uid, max_len, rx, stats, stop));
        (
            Self {
                tx,
                seq: AtomicU64::new(0),
            },
            task,
        )
    }

    /// Queues an entry, waiting for room when the queue is full (back-pressure).
    pub async fn send(&self, out: Outgoing) -> Result<(), TransportClosed> {
        // Sequence numbers are taken under the channel's order: a permit first, then the
        // number, so entries reach the sender task in sequence order.
        let permit = self.tx.reserve().await.map_err(|_| TransportClosed)?;
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        permit.send((seq, out));
        Ok(())
    }

    /// Entries queued and not yet taken by the sender task.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues an entry if there is room; otherwise drops it and says so. For volatile packets.
    pub fn try_send(&self, out: Outgoing, stats: &Stats) -> bool {
        match self.tx.try_reserve() {
            Ok(permit) => {
                let seq = self.seq.fetch_add(1, Ordering::SeqCst);
                permit.send((seq, out));
                true
            }
            Err(_) => {
                let n = stats.shed.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(shed = n, "outbox full: volatile packets dropped");
                }
                false
            }
        }
    }
}

/// The transport has shut down.
#[derive(Debug, thiserror::Error)]
#[error("cluster transport is closed")]
pub struct TransportClosed;

async fn send_loop(
    redis: Redis,
    keys: Keys,
    uid: Uid,
    max_len: usize,
    mut rx: mpsc::Receiver<(u64, Outgoing)>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let origin = uid.to_string();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        let first = tokio::select! {
            item = rx.recv() => item,
            () = stop.cancelled(), if rx.is_empty() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut pipe = ::redis::pipe();
        for (seq, out) in &batch {
            pipe.cmd("XADD")
                .arg(keys.inbox(out.target))
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*")
                .arg("v")
                .arg(WIRE_VERSION)
                .arg("o")
                .arg(&origin)
                .arg("s")
                .arg(*seq)
                .arg("k")
                .arg(out.kind.as_str())
                .arg("n")
                .arg(&out.ns)
                .arg("d")
                .arg(out.data.as_slice())
                .ignore();
        }
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0u32;
        loop {
            match redis.query::<()>(&pipe).await {
                Ok(()) => {
                    stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    if failures > 0 {
                        tracing::info!(failures, "cluster transport: sending again");
                    }
                    break;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(cause = %e, failures, pending = batch.len() + rx.len(), "cluster transport: send failed; retrying");
                    }
                    // On shutdown, give up after a few tries rather than hang the exit.
                    if stop.is_cancelled() && failures >= 5 {
                        let lost = batch.len() + rx.len();
                        stats.shed.fetch_add(lost as u64, Ordering::Relaxed);
                        tracing::error!(
                            lost,
                            "cluster transport: redis unreachable at shutdown; entries not sent"
                        );
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Reads this node's inbox (`key`) until `stop` fires, handing each new entry to `handle`
/// and waiting for it: a handler that waits holds back the reading, not the entries.
pub(crate) async fn read_loop<F>(
    redis: Redis,
    key: String,
    block: Duration,
    stats: Arc<Stats>,
    lag: ::metrics::Histogram,
    stop: CancellationToken,
    handle: impl Fn(Incoming) -> F + Send + 'static,
) where
    F: Future<Output = ()> + Send,
{
    let mut last_id = "0-0".to_owned();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut conn = None;
    let mut backoff = BACKOFF_MIN;
    let mut untrimmed = 0usize;
    let mut last_trim = tokio::time::Instant::now();
    let opts = StreamReadOptions::default()
        .count(READ_COUNT)
        .block(block.as_millis() as usize);
    while !stop.is_cancelled() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match redis.dedicated(block + Duration::from_secs(5)).await {
                Ok(c) => {
                    backoff = BACKOFF_MIN;
                    conn.insert(c)
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "cluster inbox: cannot connect; retrying");
                    sleep_or_stop(&stop, &mut backoff).await;
                    continue;
                }
            },
        };
        let (keys, ids) = ([&key], [&last_id]);
        let read = tokio::select! {
            r = ::redis::AsyncCommands::xread_options::<_, _, StreamReadReply>(c, &keys, &ids, &opts) => r,
            () = stop.cancelled() => break,
        };
        let reply = match read {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(cause = %e, "cluster inbox: read failed; reconnecting");
                conn = None;
                sleep_or_stop(&stop, &mut backoff).await;
                continue;
            }
        };
        let mut got = 0;
        for stream in reply.keys {
            for entry in stream.ids {
                got += 1;
                // A stream id starts with the Redis time of the append, in ms.
                if let Some(ms) = entry.id.split('-').next().and_then(|t| t.parse().ok()) {
                    lag.record(crate::protocol::now_ms().saturating_sub(ms) as f64 / 1000.0);
                }
                last_id = entry.id.clone();
                match parse_entry(&entry.map) {
                    Some((seq, incoming)) => {
                        let origin = incoming.origin.to_string();
                        let newest = seen.entry(origin).or_insert(0);
                        if seq < *newest {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        *newest = seq + 1;
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        handle(incoming).await;
                    }
                    None => {
                        tracing::warn!(id = %entry.id, "cluster inbox: malformed entry skipped")
                    }
                }
            }
        }
        untrimmed += got;
        if untrimmed > 0
            && (got == 0 || untrimmed >= TRIM_EVERY || last_trim.elapsed() >= TRIM_INTERVAL)
        {
            untrimmed = 0;
            last_trim = tokio::time::Instant::now();
            // Everything up to last_id is handled; only this node reads its inbox.
            let trim = ::redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(&last_id)
                .to_owned();
            if let Err(e) = redis.query::<i64>(&trim).await {
                tracing::debug!(cause = %e, "cluster inbox: trim failed");
            }
        }
    }
}

async fn sleep_or_stop(stop: &CancellationToken, backoff: &mut Duration) {
    tokio::select! {
        () = tokio::time::sleep(*backoff) => {}
        () = stop.cancelled() => {}
    }
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

fn parse_entry(map: &HashMap<String, RValue>) -> Option<(u64, Incoming)> {
    let text = |k: &str| match map.get(k)? {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    if text("v")?.parse::<u8>().ok()? != WIRE_VERSION {
        return None;
    }
    let kind = match text("k")?.as_str() {
        "q" => Kind::Request,
        "r" => Kind::Response,
        "c" => Kind::Chat,
        _ => return None,
    };
    let data = match map.get("d")? {
        RValue::BulkString(b) => b.clone(),
        _ => return None,
    };
    Some((
        text("s")?.parse().ok()?,
        Incoming {
            origin: text("o")?.parse().ok()?,
            kind,
            ns: text("n")?,
            data,
        },
    ))
}
