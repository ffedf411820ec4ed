//! The node table: which nodes are alive, and which rooms each node hosts.
//!
//! Keys (with the configured prefix, `chat:` by default):
//! - `nodes`: sorted set, member = node uid, score = lease expiry in Redis time (ms). A node
//!   is live while its score is in the future; its heartbeat pushes the score forward.
//! - `node:<uid>`: hash with `id`, `url`, `capacity`, `version`, `draining`, `connections`.
//! - `room:<room>`: set of uids of nodes with sockets in the room (rooms joined through
//!   chat-core only). Added before a join is acknowledged; removed lazily by the heartbeat.
//! - `noderooms:<uid>`: set of the rooms a node registered, for cleanup.

use ::redis::Script;
use socketioxide_core::Uid;

/// Refreshes a node's lease and info, drops long-dead members, and returns Redis time
/// followed by every member whose lease ended less than a grace period ago, with its lease
/// expiry. Uses Redis time so that node clocks do not matter. After the time, flags
/// ([`Renewal`]): `1` if the node's record was missing (its first beat, or the health checker
/// reaped it: the node must record its rooms again), plus `2` if its lease had ended or was
/// gone before this beat (the other nodes may have declared it dead).
pub(crate) fn heartbeat_script() -> Script {
    Script::new(
        r"
local fresh = redis.call('EXISTS', KEYS[2]) == 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
local lapsed = (not prev) or tonumber(prev) < now
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[2], lease * 20)
redis.call('PEXPIRE', KEYS[3], lease * 20)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lease * 20)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now - lease * 10, '+inf', 'WITHSCORES')
table.insert(members, 1, tostring((fresh and 1 or 0) + (lapsed and 2 or 0)))
table.insert(members, 1, tostring(now))
return members
",
    )
}

/// For each uid in ARGV[2..]: 2 if its lease runs, 1 if it ended less than ARGV[1] ms ago,
/// 0 otherwise.
pub(crate) fn lookup_script() -> Script {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  local state = 0
  if score then
    if tonumber(score) >= now then state = 2
    elseif tonumber(score) >= now - tonumber(ARGV[1]) then state = 1 end
  end
  table.insert(out, state)
end
return out
",
    )
}

/// What a heartbeat found about this node's own lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Renewal {
    /// The node's record was missing: first beat, or reaped by the health checker.
    pub fresh: bool,
    /// The lease had ended (or was gone) before this beat: first beat, or the node was
    /// frozen or cut off from Redis past its lease.
    pub lapsed: bool,
}

/// Splits the heartbeat's answer into live nodes (lease running) and recently expired ones,
/// skipping anything malformed; and what it found about this node's own lease.
pub(crate) fn parse_members(reply: Vec<String>) -> (Vec<Uid>, Vec<Uid>, Renewal) {
    let mut items = reply.into_iter();
    let Some(now) = items.next().and_then(|n| n.parse::<f64>().ok()) else {
        return (Vec::new(), Vec::new(), Renewal::default());
    };
    let flags = items.next().and_then(|f| f.parse::<u8>().ok()).unwrap_or(0);
    let renewal = Renewal {
        fresh: flags & 1 != 0,
        lapsed: flags & 2 != 0,
    };
    let (mut live, mut expired) = (Vec::new(), Vec::new());
    let rest: Vec<String> = items.collect();
    for pair in rest.chunks_exact(2) {
        let (Ok(uid), Ok(expiry)) = (pair[0].parse::<Uid>(), pair[1].parse::<f64>()) else {
            continue;
        };
        if expiry >= now {
            live.push(uid);
        } else {
            expired.push(uid);
        }
    }
    (live, expired, renewal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_by_lease_and_skip_garbage() {
        let (a, b) = (Uid::new(), Uid::new());
        let reply = vec![
            "1000".into(),
            "0".into(),
            a.to_string(),
            "1500".into(),
            "garbage!".into(),
            "2000".into(),
            b.to_string(),
            "900".into(),
        ];
        let none = Renewal::default();
        assert_eq!(parse_members(reply.clone()), (vec![a], vec![b], none));
        let mut missing = reply;
        missing[1] = "3".into();
        let both = Renewal {
            fresh: true,
            lapsed: true,
        };
        assert_eq!(parse_members(missing.clone()), (vec![a], vec![b], both));
        missing[1] = "2".into();
        let lapsed = Renewal {
            lapsed: true,
            ..none
        };
        assert_eq!(parse_members(missing), (vec![a], vec![b], lapsed));
        assert_eq!(parse_members(vec![]), (vec![], vec![], none));
    }
}
