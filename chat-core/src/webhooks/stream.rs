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
    AsyncCommands, RedisError,
    streams::{
        StreamAutoClaimReply, StreamId, StreamInfoConsumersReply, StreamReadOptions,
        StreamReadReply,
    },
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

/// The consumer group every node reads the stream through.
const GROUP: &str = "senders";
/// Most events appended at once.
const BATCH: usize = 100;
/// Longest `BLOCK` of a read: the reader also renews and reclaims between reads.
const BLOCK: Duration = Duration::from_secs(1);
/// Longest time between two reclaim passes (else half of `claim_after`): entries a stopping
/// node released are taken over within this.
const CLAIM_EVERY: Duration = Duration::from_secs(5);
/// A consumer with nothing pending and idle this long is a node gone for good: removed.
const GONE_AFTER: Duration = Duration::from_secs(3600);

/// Appends up to `ARGV[1] - XLEN` of the (id, body) pairs after it; returns how many.
const ADD: &str = r"
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local added = 0
for i = 2, #ARGV, 2 do
  if added >= room then break end
  redis.call('XADD', KEYS[1], '*', 'i', ARGV[i], 'b', ARGV[i + 1])
  added = added + 1
end
return added
";

/// Resets the idle time of the entries (`ARGV[3..]`) consumer `ARGV[2]` of group `ARGV[1]`
/// still holds; returns those it no longer holds (taken over, or gone).
const RENEW: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
";

/// The cluster's webhook stream, as this node sees it.
#[derive(Debug, Clone)]
pub(crate) struct StreamQueue {
    redis: Redis,
    key: String,
    consumer: String,
}

/// Entries this node is delivering: stream id → what cancels the delivery.
type InFlight = Arc<Mutex<HashMap<String, CancellationToken>>>;

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

    async fn add(&self, batch: &[Queued], max: usize) -> Result<usize, RedisError> {
        let script = redis::Script::new(ADD);
        let mut invocation = script.key(&self.key);
        invocation.arg(max);
        for e in batch {
            invocation.arg(&e.id).arg(&e.body);
        }
        self.redis.script(&invocation).await
    }

    /// Reads, renews and reclaims entries, delivering up to `concurrency` at once.
    async fn read(self, sender: Sender, config: WebhookConfig, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
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
                            self.start(&mut deliveries, &sender, &in_flight, entry, slot, &stop);
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
                        self.start(&mut deliveries, &sender, &in_flight, entry, slot, &stop);
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
        // Deliveries see `stop` too; what they held stays pending, and is released at once
        // for another node rather than after `claim_after`.
        let held: Vec<String> = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        while deliveries.join_next().await.is_some() {}
        self.release(&held, config.claim_after).await;
    }

    /// Makes entries this node gives up look idle for `claim_after`, so that the next
    /// reclaim pass of any node takes them (those already acknowledged are skipped).
    async fn release(&self, entries: &[String], claim_after: Duration) {
        if entries.is_empty() {
            return;
        }
        let cmd = redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(entries)
            .arg("IDLE")
            .arg(claim_after.as_millis() as u64)
            .arg("JUSTID")
            .to_owned();
        if let Err(e) = self.redis.query::<Vec<String>>(&cmd).await {
            tracing::debug!(cause = %e, "webhooks: cannot release entries");
        }
    }

    /// Delivers one entry on its own task, then acknowledges and deletes it.
    fn start(
        &self,
        deliveries: &mut JoinSet<()>,
        sender: &Sender,
        in_flight: &InFlight,
        entry: StreamId,
        slot: OwnedSemaphorePermit,
        stop: &CancellationToken,
    ) {
        let (this, sender, in_flight) = (self.clone(), sender.clone(), in_flight.clone());
        let cancel = stop.child_token();
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

    /// Acknowledges and deletes a finished entry; if Redis does not answer, the entry is
    /// delivered again later (at-least-once).
    async fn done(&self, entry: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.key)
            .arg(GROUP)
            .arg(entry)
            .ignore();
        pipe.cmd("XDEL").arg(&self.key).arg(entry).ignore();
        for tries in 1..=3u32 {
            match self.redis.query::<()>(&pipe).await {
                Ok(()) => return,
                Err(e) if tries == 3 => {
                    tracing::warn!(entry, cause = %e, "webhooks: cannot acknowledge; it will be sent again")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await,
            }
        }
    }

    /// Keeps this node's entries from being taken over; cancels the deliveries of those
    /// another node took over meanwhile (this node froze past `claim_after`).
    async fn renew(&self, in_flight: &InFlight) {
        let ids: Vec<String> = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        if ids.is_empty() {
            return;
        }
        let script = redis::Script::new(RENEW);
        let mut invocation = script.key(&self.key);
        invocation.arg(GROUP).arg(&self.consumer).arg(&ids);
        match self.redis.script::<Vec<String>>(&invocation).await {
            Ok(lost) => {
                let guard = in_flight.lock();
                let held = guard.unwrap_or_else(|p| p.into_inner());
                for id in lost {
                    if let Some(cancel) = held.get(&id) {
                        tracing::info!(entry = %id, "webhooks: entry taken over by another node");
                        cancel.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(cause = %e, "webhooks: cannot renew entries"),
        }
    }

    /// Takes over up to `count` entries idle for `claim_after` or longer.
    async fn claim(
        &self,
        claim_after: Duration,
        count: usize,
    ) -> Result<Vec<StreamId>, RedisError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let cmd = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(claim_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .to_owned();
        let reply: StreamAutoClaimReply = self.redis.query(&cmd).await?;
        Ok(reply.claimed)
    }

    /// Creates the consumer group (and the stream) if missing.
    async fn create_group(&self) -> Result<(), RedisError> {
        let cmd = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .to_owned();
        match self.redis.query::<()>(&cmd).await {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// The backlog gauge; every tenth pass, forgets consumers gone for good.
    async fn housekeeping(&self, sender: &Sender, passes: u64) {
        let len = redis::cmd("XLEN").arg(&self.key).to_owned();
        if let Ok(n) = self.redis.query::<u64>(&len).await {
            sender.metrics().backlog.set(n as f64);
        }
        if passes % 10 != 1 {
            return;
        }
        let info = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.key)
            .arg(GROUP)
            .to_owned();
        let Ok(reply) = self.redis.query::<StreamInfoConsumersReply>(&info).await else {
            return;
        };
        for c in reply.consumers {
            let gone = c.pending == 0 && c.idle as u128 >= GONE_AFTER.as_millis();
            if gone && c.name != self.consumer {
                let del = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&self.key)
                    .arg(GROUP)
                    .arg(&c.name)
                    .to_owned();
                let _ = self.redis.query::<i64>(&del).await;
            }
        }
    }
}

fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}
