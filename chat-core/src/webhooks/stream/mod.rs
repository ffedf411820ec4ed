//! Cluster mode: webhooks queued in one Redis stream ([`Keys::webhooks`]) that every node
//! reads through one consumer group (`senders`), each node a consumer named by its uid.
//!
//! - The **writer** takes what the hook queued on this node and appends it (a script that
//!   refuses entries past `queue`: the newest are dropped and counted, where `MAXLEN` would
//!   silently trim the oldest, pending ones included).
//! - The **reader** reads new entries (`XREADGROUP ... >`) as delivery slots free up; each
//!   entry stays pending for this node until its delivery ends, then it is `XACK`ed and
//!   `XDEL`ed (delivered, or every attempt failed), so the stream holds only what is left.
//! - While delivering (retries can take minutes), the node renews its entries every quarter
//!   of `claim_after` (`XCLAIM ... JUSTID` resets their idle time) and learns of any another
//!   node took over. Every half of `claim_after` (at most 5 s), it takes over (`XAUTOCLAIM`)
//!   entries idle for longer: those of a node that died or froze, and those a stopping node
//!   released (marked idle that long). The event id is in the entry, so a retry by another
//!   node carries the same id.
//!
//! One key, so every command and script touches one slot; the key has a hash tag of its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::{
    AsyncCommands,
    streams::{StreamId, StreamReadOptions, StreamReadReply},
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinSet,
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    Queued, WebhookConfig,
    send::{Outcome, Sender},
};
use crate::{keys::Keys, redis::Redis};

mod ops;

use ops::is_nogroup;

/// The consumer group every node reads the stream through.
pub(super) const GROUP: &str = "senders";
/// Most events appended at once.
const BATCH: usize = 100;
/// Longest `BLOCK` of a read: the reader also renews and reclaims between reads.
const BLOCK: Duration = Duration::from_secs(1);
/// Longest time between two reclaim passes (else half of `claim_after`): entries a stopping
/// node released are taken over within this.
const CLAIM_EVERY: Duration = Duration::from_secs(5);

/// The cluster's webhook stream, as this node sees it.
#[derive(Debug, Clone)]
pub(crate) struct StreamQueue {
    redis: Redis,
    key: String,
    consumer: String,
}

/// Entries this node is delivering: stream id → what cancels the delivery.
pub(super) type InFlight = Arc<Mutex<HashMap<String, CancellationToken>>>;

impl StreamQueue {
    /// The stream under `keys`, read as `consumer` (the node's uid).
    pub fn new(redis: Redis, keys: &Keys, consumer: String) -> Self {
        Self {
            redis,
            key: keys.webhooks(),
            consumer,
        }
    }

    /// Starts the writer (fed by `rx`, until it closes) and the reader (until `stop`) on
    /// `tasks`.
    pub fn spawn(
        self,
        rx: mpsc::Receiver<Queued>,
        sender: Sender,
        config: &WebhookConfig,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) {
        tasks.spawn(self.clone().write(rx, sender.clone(), config.queue));
        tasks.spawn(self.read(sender, config.clone(), stop));
    }

    /// Appends what the hook queued, in batches; retries while Redis fails (the hook's
    /// queue fills meanwhile, and drops), gives up a batch only once the hook is gone.
    async fn write(self, mut rx: mpsc::Receiver<Queued>, sender: Sender, max: usize) {
        let metrics = sender.metrics();
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let mut backoff = Duration::from_millis(50);
            for tries in 1.. {
                match self.add(&batch, max).await {
                    Ok(added) => {
                        for _ in 0..added {
                            metrics.enqueued(true);
                        }
                        metrics.dropped((batch.len() - added) as u64);
                        break;
                    }
                    Err(e) if rx.is_closed() && tries >= 3 => {
                        tracing::warn!(events = batch.len(), cause = %e, "webhooks lost: cannot queue them in redis");
                        metrics.dropped(batch.len() as u64);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(cause = %e, "cannot queue webhooks in redis; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
            batch.clear();
        }
    }

    /// Reads, renews and reclaims entries, delivering up to `concurrency` at once.
    async fn read(self, sender: Sender, config: WebhookConfig, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        // Stops the deliveries, once this loop has seen what they hold.
        let halt = CancellationToken::new();
        let in_flight: InFlight = Arc::default();
        let mut deliveries = JoinSet::new();
        let mut conn = None;
        let mut group = false;
        let renew_every = (config.claim_after / 4).max(Duration::from_millis(10));
        let claim_every = (config.claim_after / 2).clamp(Duration::from_millis(10), CLAIM_EVERY);
        let (mut next_renew, mut next_claim) = (Instant::now(), Instant::now());
        let mut passes = 0u64;
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            while deliveries.try_join_next().is_some() {}
            if failures > 0 {
                let pause = Duration::from_millis(100 << failures.min(4));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => break,
                }
            }
            if !group {
                match self.create_group().await {
                    Ok(()) => group = true,
                    Err(e) => {
                        tracing::warn!(cause = %e, "webhooks: cannot create the consumer group");
                        failures += 1;
                        continue;
                    }
                }
            }
            let now = Instant::now();
            if now >= next_renew {
                next_renew = now + renew_every;
                self.renew(&in_flight).await;
            }
            if now >= next_claim {
                next_claim = now + claim_every;
                passes += 1;
                let free = slots.available_permits();
                match self.claim(config.claim_after, free).await {
                    Ok(entries) => {
                        let fresh: Vec<StreamId> = {
                            let held = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                            entries
                                .into_iter()
                                .filter(|e| !held.contains_key(&e.id))
                                .collect()
                        };
                        if !fresh.is_empty() {
                            tracing::info!(
                                entries = fresh.len(),
                                "webhooks: took over entries of an unresponsive node"
                            );
                            sender.metrics().reclaimed(fresh.len() as u64);
                        }
                        for entry in fresh {
                            let Ok(slot) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            self.start(&mut deliveries, &sender, &in_flight, entry, slot, &halt);
                        }
                    }
                    Err(e) => {
                        group = !is_nogroup(&e);
                        tracing::warn!(cause = %e, "webhooks: cannot reclaim entries");
                    }
                }
                self.housekeeping(&sender, passes).await;
            }
            let free = slots.available_permits();
            let until_due = next_renew
                .min(next_claim)
                .saturating_duration_since(Instant::now());
            if free == 0 {
                tokio::select! {
                    () = tokio::time::sleep(until_due) => {}
                    _ = deliveries.join_next() => {}
                    () = stop.cancelled() => break,
                }
                continue;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.redis.dedicated(BLOCK + Duration::from_secs(5)).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::warn!(cause = %e, "webhooks: cannot connect to redis");
                        failures += 1;
                        continue;
                    }
                },
            };
            let block = until_due.clamp(Duration::from_millis(1), BLOCK);
            let opts = StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(free)
                .block(block.as_millis() as usize);
            let (keys, ids) = ([&self.key], [">"]);
            let read = tokio::select! {
                r = c.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &opts) => r,
                () = stop.cancelled() => break,
            };
            match read {
                Ok(reply) => {
                    failures = 0;
                    let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
                    for entry in entries {
                        // There is a slot for each: at most `free` were read.
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        self.start(&mut deliveries, &sender, &in_flight, entry, slot, &halt);
                    }
                }
                Err(e) => {
                    group = !is_nogroup(&e);
                    tracing::warn!(cause = %e, "webhooks: read failed; reconnecting");
                    conn = None;
                    failures += 1;
                }
            }
        }
        // What the deliveries hold stays pending, and is released for another node at once
        // rather than after `claim_after`. Taken before they stop, as a stopped one forgets
        // its entry.
        let held: Vec<String> = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        halt.cancel();
        while deliveries.join_next().await.is_some() {}
        self.release(&held, config.claim_after).await;
    }

    /// Delivers one entry on its own task, then acknowledges and deletes it.
    fn start(
        &self,
        deliveries: &mut JoinSet<()>,
        sender: &Sender,
        in_flight: &InFlight,
        entry: StreamId,
        slot: OwnedSemaphorePermit,
        halt: &CancellationToken,
    ) {
        let (this, sender, in_flight) = (self.clone(), sender.clone(), in_flight.clone());
        let cancel = halt.child_token();
        in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.id.clone(), cancel.clone());
        deliveries.spawn(async move {
            let event = match (entry.get::<String>("i"), entry.get::<String>("b")) {
                (Some(id), Some(body)) => Some(Queued { id, body }),
                _ => None,
            };
            let outcome = match &event {
                Some(event) => sender.deliver(event, &cancel).await,
                None => {
                    tracing::warn!(entry = %entry.id, "webhooks: malformed entry dropped");
                    Outcome::Failed
                }
            };
            if outcome != Outcome::Cancelled {
                this.done(&entry.id).await;
            }
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&entry.id);
            drop(slot);
        });
    }
}
