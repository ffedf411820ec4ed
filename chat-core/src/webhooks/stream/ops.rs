//! The Redis side of the webhook stream: appending, acknowledging, renewing, reclaiming and
//! releasing entries, and the consumer group's housekeeping. Every command and script names
//! the one stream key.

use std::time::Duration;

use redis::{
    RedisError,
    streams::{StreamAutoClaimReply, StreamId, StreamInfoConsumersReply},
};

use super::{GROUP, InFlight, StreamQueue};
use crate::webhooks::{Queued, send::Sender};

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

impl StreamQueue {
    /// Appends `batch` as far as the stream has room for (`max` entries); returns how many.
    pub(super) async fn add(&self, batch: &[Queued], max: usize) -> Result<usize, RedisError> {
        let script = redis::Script::new(ADD);
        let mut invocation = script.key(&self.key);
        invocation.arg(max);
        for e in batch {
            invocation.arg(&e.id).arg(&e.body);
        }
        self.redis.script(&invocation).await
    }

    /// Makes entries this node gives up look idle for `claim_after`, so that the next
    /// reclaim pass of any node takes them (those already acknowledged are skipped).
    pub(super) async fn release(&self, entries: &[String], claim_after: Duration) {
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

    /// Acknowledges and deletes a finished entry; if Redis does not answer, the entry is
    /// delivered again later (at-least-once).
    pub(super) async fn done(&self, entry: &str) {
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
    pub(super) async fn renew(&self, in_flight: &InFlight) {
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
    pub(super) async fn claim(
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
    pub(super) async fn create_group(&self) -> Result<(), RedisError> {
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
    pub(super) async fn housekeeping(&self, sender: &Sender, passes: u64) {
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

/// Whether Redis lost the consumer group (a restart without persistence, a flush).
pub(super) fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}
