//! The Redis side of a round: the lock, the list of nodes to probe, and applying verdicts.

use std::sync::LazyLock;

use ::redis::Script;

/// A node to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) uid: String,
    /// Its public URL; `None` for a node that did not give one (it cannot be probed).
    pub(crate) url: Option<String>,
    /// Heartbeat nodes: whether the lease runs. `None` for admin-registered nodes.
    pub(crate) lease_live: Option<bool>,
}

/// What one round decided for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answered; `connections` from its body (recorded for admin nodes only: a
    /// heartbeat node reports its own count).
    Up { connections: Option<u64> },
    /// It did not (or it has no URL and its lease ended).
    Down,
}

/// What applying a round's verdicts changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Uids taken out of picking in this round.
    pub removed: Vec<String>,
    /// Uids put back.
    pub readmitted: Vec<String>,
    /// Heartbeat nodes found dead (lease ended and probes failing): their records and
    /// room memberships are gone, and the cleanup hooks will run for them.
    pub reaped: Vec<String>,
}

/// KEYS: nodes, static. ARGV: node hash prefix.
/// Returns Redis time, then per node: uid, lease expiry (empty for admin nodes), url.
pub(crate) static TARGETS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {tostring(now)}
local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #z, 2 do
  -- A node without a record was reaped: its lease only waits to expire.
  if redis.call('EXISTS', ARGV[1] .. z[i]) == 1 then
    table.insert(out, z[i])
    table.insert(out, z[i + 1])
    table.insert(out, redis.call('HGET', ARGV[1] .. z[i], 'url') or '')
  end
end
for _, u in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  table.insert(out, u)
  table.insert(out, '')
  table.insert(out, redis.call('HGET', ARGV[1] .. u, 'url') or '')
end
return out
",
    )
});

/// Takes the round lock if it is free. KEYS: lock. ARGV: holder, ttl (ms).
pub(crate) fn lock_cmd(key: &str, holder: &str, ttl_ms: u64) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key).arg(holder).arg("NX").arg("PX").arg(ttl_ms);
    cmd
}

/// Deletes the lock if `ARGV[1]` holds it. KEYS: lock.
pub(crate) static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Applies a round's verdicts, if the round's holder still holds the lock (otherwise the
/// round overran and another checker may be acting: nothing changes, returns nil).
///
/// KEYS: lock, failures, removed, nodes, static, reaping.
/// ARGV: holder, failures threshold, node hash prefix, noderooms prefix, room prefix, then
/// per node: uid, `up`/`down`, connections (or empty).
///
/// `up`: failures reset; put back if removed; an admin node's connections recorded.
/// `down`: failures + 1; at the threshold, removed from picking; a heartbeat node whose
/// lease has ended is reaped: its room memberships, room list and record go, and it joins
/// `reaping` for the cleanup hooks. Its lease is left to expire from the table (the nodes'
/// heartbeats drop it): the node that announces lost nodes must still see it. Also drops `removed`/`failures` entries of nodes
/// that have no record any more. Returns `{removed, readmitted, reaped}`.
pub(crate) static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold = tonumber(ARGV[2])
local removed, readmitted, reaped = {}, {}, {}
local function known(uid)
  return redis.call('ZSCORE', KEYS[4], uid) or redis.call('SISMEMBER', KEYS[5], uid) == 1
end
local function reap(uid)
  local rooms = ARGV[4] .. uid
  for _, r in ipairs(redis.call('SMEMBERS', rooms)) do
    redis.call('SREM', ARGV[5] .. r, uid)
  end
  redis.call('DEL', rooms, ARGV[3] .. uid)
  -- The lease stays until the nodes' heartbeats drop it (twenty leases): the live node that
  -- announces lost nodes finds this one among the expired and tells its users' peers.
  redis.call('HDEL', KEYS[2], uid)
  redis.call('SREM', KEYS[3], uid)
  redis.call('SADD', KEYS[6], uid)
  table.insert(reaped, uid)
end
for i = 6, #ARGV, 3 do
  local uid, verdict, conns = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if known(uid) then
    if verdict == 'up' then
      redis.call('HDEL', KEYS[2], uid)
      if redis.call('SREM', KEYS[3], uid) == 1 then table.insert(readmitted, uid) end
      if conns ~= '' and redis.call('SISMEMBER', KEYS[5], uid) == 1 then
        redis.call('HSET', ARGV[3] .. uid, 'connections', conns)
      end
    else
      local n = redis.call('HINCRBY', KEYS[2], uid, 1)
      if n >= threshold then
        local lease = redis.call('ZSCORE', KEYS[4], uid)
        if lease and tonumber(lease) < now then
          -- Reaped already (its record is gone): nothing left to do.
          if redis.call('EXISTS', ARGV[3] .. uid) == 1 then reap(uid) end
        elseif redis.call('SADD', KEYS[3], uid) == 1 then
          table.insert(removed, uid)
        end
      end
    end
  end
end
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not known(uid) then redis.call('SREM', KEYS[3], uid) end
end
for _, uid in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not known(uid) then redis.call('HDEL', KEYS[2], uid) end
end
return {removed, readmitted, reaped}
",
    )
});

/// Parses the targets script's answer.
pub(crate) fn parse_targets(reply: Vec<String>) -> Vec<Target> {
    let mut items = reply.into_iter();
    let Some(now) = items.next().and_then(|n| n.parse::<f64>().ok()) else {
        return Vec::new();
    };
    let rest: Vec<String> = items.collect();
    rest.chunks_exact(3)
        .map(|c| Target {
            uid: c[0].clone(),
            url: (!c[2].is_empty()).then(|| c[2].clone()),
            lease_live: (!c[1].is_empty()).then(|| c[1].parse::<f64>().is_ok_and(|l| l >= now)),
        })
        .collect()
}

/// The apply script's arguments for `verdicts`.
pub(crate) fn verdict_args(verdicts: &[(String, Verdict)]) -> Vec<String> {
    let mut args = Vec::with_capacity(verdicts.len() * 3);
    for (uid, v) in verdicts {
        let (word, conns) = match v {
            Verdict::Up { connections } => ("up", connections.map(|c| c.to_string())),
            Verdict::Down => ("down", None),
        };
        args.extend([uid.clone(), word.to_owned(), conns.unwrap_or_default()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_verdicts_round_trip() {
        let reply = [
            "1000", "a", "1500", "http://a", "b", "900", "", "static-c", "", "http://c",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            parse_targets(reply),
            vec![
                Target {
                    uid: "a".into(),
                    url: Some("http://a".into()),
                    lease_live: Some(true)
                },
                Target {
                    uid: "b".into(),
                    url: None,
                    lease_live: Some(false)
                },
                Target {
                    uid: "static-c".into(),
                    url: Some("http://c".into()),
                    lease_live: None
                },
            ]
        );
        assert!(parse_targets(vec![]).is_empty());
        let args = verdict_args(&[
            (
                "a".into(),
                Verdict::Up {
                    connections: Some(4),
                },
            ),
            ("b".into(), Verdict::Down),
        ]);
        assert_eq!(args, ["a", "up", "4", "b", "down", ""]);
    }
}
