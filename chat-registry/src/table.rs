//! The registry's view of the node table: picking, listing, admin registration and drain,
//! each one Lua script so that it sees and changes the table in one atomic step.
//!
//! Beyond the keys the nodes' heartbeats write (see `chat_core::cluster`), the registry uses:
//! - `node:<uid>` fields `provisional` (picks not yet seen as connections, decayed) and
//!   `provisional_at` (ms, Redis time, of its last update); `drained` (`1` after an admin
//!   drain; the heartbeat never writes it, so it lasts as long as the record); `source`
//!   (`admin` for nodes registered through the API).
//! - `static`: set of the uids of nodes registered through the API (`static-<id>`). They
//!   have no heartbeat: they count as live until the health checker removes them.
//! - `removed`: set of the uids the health checker took out of picking.

use std::{sync::LazyLock, time::Duration};

use ::redis::{RedisError, Script};
use serde::Serialize;
use utoipa::ToSchema;

use chat_core::{
    keys::{Keys, static_uid},
    redis::Redis,
};

/// The node a pick chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Picked {
    /// Where the client connects (the node's `CHAT_PUBLIC_URL`).
    #[schema(example = "http://chat-a.example:3000")]
    pub url: String,
    /// The node's name (`CHAT_NODE_ID`), as in the `ready` event.
    #[schema(example = "chat-a")]
    pub node_id: String,
    /// The node record's unique id (changes when the node restarts).
    pub uid: String,
}

/// What a pick found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// This node, now counted against.
    Picked(Picked),
    /// Every pickable node holds its capacity (`connections >= capacity`, as of its last
    /// heartbeat).
    AtCapacity,
    /// No node is pickable (none live, or all draining, removed, without a URL).
    NoNode,
}

/// How a node got into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// The node registers itself and renews a lease (a chat-server in cluster mode).
    Heartbeat,
    /// An operator registered it through `POST /api/v1/servers`.
    Admin,
}

/// One node as the registry sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// The node's name (`CHAT_NODE_ID`, or the id given at registration).
    pub id: String,
    /// The record's unique id.
    pub uid: String,
    /// Where clients reach it; a node without one is never picked.
    pub url: Option<String>,
    /// `(connections + provisional) / capacity`; what picking minimises.
    pub load: f64,
    /// Sockets connected, as of the node's last heartbeat.
    pub connections: u64,
    /// Recent picks not yet seen as connections (decays with the pick half-life).
    pub provisional: f64,
    /// Connections the node is meant to hold; a node with 0 is never picked.
    pub capacity: u64,
    /// The node is draining (itself, or an admin drain): no new clients.
    pub draining: bool,
    /// Its lease runs (or it was registered by an admin) and the health checker has not
    /// removed it.
    pub live: bool,
    /// The health checker took it out of picking: its `/healthz` stopped answering.
    pub removed: bool,
    /// How it got into the table.
    pub source: Source,
    /// The node's software version, if it said.
    pub version: Option<String>,
}

impl Server {
    /// Whether a pick may choose this node.
    pub fn pickable(&self) -> bool {
        self.live && !self.draining && self.url.is_some() && self.capacity > 0
    }
}

/// A node to register by hand, validated (see the API's `POST /api/v1/servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its name: 1–64 characters of `[A-Za-z0-9_.-]`.
    pub id: String,
    /// An absolute `http` or `https` URL.
    pub url: String,
    /// Connections it is meant to hold, at least 1.
    pub capacity: u64,
}

/// What [`NodeTable::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new record, with this uid.
    Created(String),
    /// The id was registered by an admin before: its record was replaced (drain cleared).
    Updated(String),
    /// A self-registering node has this id.
    Conflict,
}

/// The node table in Redis, as the registry and the health checker use it.
#[derive(Debug, Clone)]
pub struct NodeTable {
    redis: Redis,
    keys: Keys,
    half_life: Duration,
}

/// Fields of one node in the list script's answer, after the uid, the lease and `removed`.
const FIELDS: usize = 9;

/// Redis time in ms, as every script computes it.
const NOW: &str = "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// The provisional load decayed to `now`: `p * 0.5 ^ (age / half_life)`.
const DECAYED: &str = "
local function decayed(p, at, now, half)
  p = tonumber(p)
  if not p then return 0 end
  local age = now - (tonumber(at) or now)
  if age < 0 then age = 0 end
  return p * 0.5 ^ (age / half)
end
";

/// KEYS: nodes, static, removed. ARGV: node hash prefix, half-life (ms).
/// Chooses the least-loaded live, non-draining, not-removed node with a URL and a capacity
/// whose connections are below its capacity (ties: the smallest uid) and adds one pick to
/// its provisional load. Returns `{uid, id, url}`; `{'full'}` when there are such nodes but
/// every one is at capacity; nil when there is none.
static PICK_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{DECAYED}
local half = tonumber(ARGV[2])
local cands = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
for _, u in ipairs(redis.call('SMEMBERS', KEYS[2])) do table.insert(cands, u) end
local best, best_load, best_prov, best_h
local full = false
for _, uid in ipairs(cands) do
  if redis.call('SISMEMBER', KEYS[3], uid) == 0 then
    local h = redis.call('HMGET', ARGV[1] .. uid, 'url', 'capacity', 'connections',
      'draining', 'drained', 'provisional', 'provisional_at', 'id')
    local cap = tonumber(h[2]) or 0
    if h[1] and h[1] ~= '' and cap > 0 and h[4] ~= '1' and h[5] ~= '1' then
      local conns = tonumber(h[3]) or 0
      if conns >= cap then
        full = true
      else
        local prov = decayed(h[6], h[7], now, half)
        local load = (conns + prov) / cap
        if best == nil or load < best_load or (load == best_load and uid < best) then
          best, best_load, best_prov, best_h = uid, load, prov, h
        end
      end
    end
  end
end
if best == nil then
  if full then return {{'full'}} end
  return false
end
redis.call('HSET', ARGV[1] .. best, 'provisional', tostring(best_prov + 1), 'provisional_at', now)
return {{best, best_h[8] or '', best_h[1]}}
"
    ))
});

/// KEYS: nodes, static, removed. ARGV: node hash prefix.
/// Returns Redis time, then per node with a record: uid, lease expiry (empty for admin
/// nodes), removed (`0`/`1`), and the fields id, url, capacity, connections, draining,
/// drained, provisional, provisional_at, version (empty when unset).
static LIST_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}
local out = {{tostring(now)}}
local function add(uid, expiry)
  local key = ARGV[1] .. uid
  if redis.call('EXISTS', key) == 0 then return end
  local h = redis.call('HMGET', key, 'id', 'url', 'capacity', 'connections', 'draining',
    'drained', 'provisional', 'provisional_at', 'version')
  table.insert(out, uid)
  table.insert(out, expiry)
  table.insert(out, tostring(redis.call('SISMEMBER', KEYS[3], uid)))
  for i = 1, {FIELDS} do table.insert(out, h[i] or '') end
end
local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #z, 2 do add(z[i], z[i + 1]) end
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[2])) do add(uid, '') end
return out
"
    ))
});

/// KEYS: nodes, static. ARGV: node hash prefix, uid, id, url, capacity.
/// Registers or replaces an admin node; refuses an id a heartbeat node uses.
static REGISTER_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
for _, u in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('HGET', ARGV[1] .. u, 'id') == ARGV[3] then return 'conflict' end
end
local key = ARGV[1] .. ARGV[2]
local existed = redis.call('SISMEMBER', KEYS[2], ARGV[2])
if existed == 0 then
  redis.call('DEL', key)
  redis.call('HSET', key, 'connections', '0')
end
redis.call('HSET', key, 'id', ARGV[3], 'url', ARGV[4], 'capacity', ARGV[5],
  'source', 'admin', 'draining', '0', 'drained', '0')
redis.call('SADD', KEYS[2], ARGV[2])
if existed == 1 then return 'updated' end
return 'created'
",
    )
});

/// KEYS: nodes, static. ARGV: node hash prefix, id or uid.
/// Marks every existing record whose uid or name matches as drained; returns their uids.
static DRAIN_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "
local hit = {}
local function try(uid)
  local key = ARGV[1] .. uid
  if redis.call('EXISTS', key) == 1
    and (uid == ARGV[2] or redis.call('HGET', key, 'id') == ARGV[2]) then
    redis.call('HSET', key, 'drained', '1')
    table.insert(hit, uid)
  end
end
for _, u in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do try(u) end
for _, u in ipairs(redis.call('SMEMBERS', KEYS[2])) do try(u) end
return hit
",
    )
});

impl NodeTable {
    /// The table under `prefix` (`chat:` by default); picks decay with `half_life`.
    pub fn new(redis: Redis, prefix: &str, half_life: Duration) -> Self {
        Self {
            redis,
            keys: Keys::new(prefix),
            half_life,
        }
    }

    /// The Redis handle.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Picks the least-loaded pickable node below its capacity and counts the pick against
    /// it, atomically: concurrent picks (from any number of registries) see each other's
    /// picks.
    pub async fn pick(&self) -> Result<Pick, RedisError> {
        let mut inv = PICK_SCRIPT.key(self.keys.nodes());
        inv.key(self.keys.statics())
            .key(self.keys.removed())
            .arg(self.keys.node_prefix())
            .arg(self.half_life.as_millis().max(1) as u64);
        let reply: Option<Vec<String>> = self.redis.script(&inv).await?;
        Ok(match reply.map(<[String; 3]>::try_from) {
            Some(Ok([uid, node_id, url])) => Pick::Picked(Picked { url, node_id, uid }),
            Some(Err(r)) if r.first().is_some_and(|f| f == "full") => Pick::AtCapacity,
            _ => Pick::NoNode,
        })
    }

    /// Every node with a record: heartbeat nodes (live, and those whose lease ended less
    /// than twenty leases ago) and admin nodes, sorted by name then uid.
    pub async fn list(&self) -> Result<Vec<Server>, RedisError> {
        let mut inv = LIST_SCRIPT.key(self.keys.nodes());
        inv.key(self.keys.statics())
            .key(self.keys.removed())
            .arg(self.keys.node_prefix());
        let reply: Vec<String> = self.redis.script(&inv).await?;
        let mut servers = parse_list(reply, self.half_life);
        servers.sort_by(|a, b| (&a.id, &a.uid).cmp(&(&b.id, &b.uid)));
        Ok(servers)
    }

    /// Registers (or replaces) a node by hand.
    pub async fn register(&self, r: &Registration) -> Result<Registered, RedisError> {
        let uid = static_uid(&r.id);
        let mut inv = REGISTER_SCRIPT.key(self.keys.nodes());
        inv.key(self.keys.statics())
            .arg(self.keys.node_prefix())
            .arg(&uid)
            .arg(&r.id)
            .arg(&r.url)
            .arg(r.capacity);
        let outcome: String = self.redis.script(&inv).await?;
        Ok(match outcome.as_str() {
            "created" => Registered::Created(uid),
            "updated" => Registered::Updated(uid),
            _ => Registered::Conflict,
        })
    }

    /// Marks the nodes named `id` (or with uid `id`) as drained; returns their uids.
    pub async fn drain(&self, id: &str) -> Result<Vec<String>, RedisError> {
        let mut inv = DRAIN_SCRIPT.key(self.keys.nodes());
        inv.key(self.keys.statics())
            .arg(self.keys.node_prefix())
            .arg(id);
        self.redis.script(&inv).await
    }
}

/// Turns the list script's answer into servers, decaying provisional loads to Redis time.
fn parse_list(reply: Vec<String>, half_life: Duration) -> Vec<Server> {
    let mut items = reply.into_iter();
    let Some(now) = items.next().and_then(|n| n.parse::<f64>().ok()) else {
        return Vec::new();
    };
    let rest: Vec<String> = items.collect();
    let half = half_life.as_millis().max(1) as f64;
    rest.chunks_exact(3 + FIELDS)
        .map(|r| {
            let num = |s: &str| s.parse::<f64>().ok();
            let lease = num(&r[1]);
            let removed = r[2] == "1";
            let [
                id,
                url,
                capacity,
                connections,
                draining,
                drained,
                prov,
                prov_at,
                version,
            ] = [3, 4, 5, 6, 7, 8, 9, 10, 11].map(|i| r[i].as_str());
            let provisional = match (num(prov), num(prov_at)) {
                (Some(p), Some(at)) => p * 0.5f64.powf((now - at).max(0.0) / half),
                _ => 0.0,
            };
            let capacity = capacity.parse::<u64>().unwrap_or(0);
            let connections = connections.parse::<u64>().unwrap_or(0);
            let load = if capacity > 0 {
                (connections as f64 + provisional) / capacity as f64
            } else {
                0.0
            };
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            Server {
                id: id.to_owned(),
                uid: r[0].clone(),
                url: opt(url),
                load,
                connections,
                provisional,
                capacity,
                draining: draining == "1" || drained == "1",
                live: lease.is_none_or(|l| l >= now) && !removed,
                removed,
                source: if lease.is_some() {
                    Source::Heartbeat
                } else {
                    Source::Admin
                },
                version: opt(version),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: &str, lease: &str, removed: &str, fields: [&str; FIELDS]) -> Vec<String> {
        let mut v = vec![uid.to_owned(), lease.to_owned(), removed.to_owned()];
        v.extend(fields.iter().map(|s| s.to_string()));
        v
    }

    #[test]
    fn list_rows_become_servers() {
        let mut reply = vec!["10000".to_owned()];
        reply.extend(row(
            "u1",
            "12000",
            "0",
            ["a", "http://a", "10", "3", "0", "", "4", "8000", "0.1.0"],
        ));
        reply.extend(row(
            "u2",
            "9000",
            "0",
            ["b", "", "10", "", "1", "", "", "", ""],
        ));
        reply.extend(row(
            "static-c",
            "",
            "1",
            ["c", "http://c", "5", "0", "0", "1", "", "", ""],
        ));
        let s = parse_list(reply, Duration::from_secs(2));
        assert_eq!(s.len(), 3);
        // 4 picks, 2s old, half-life 2s: 2 left.
        assert!((s[0].provisional - 2.0).abs() < 1e-9, "{:?}", s[0]);
        assert!((s[0].load - 0.5).abs() < 1e-9);
        assert!(s[0].live && s[0].pickable() && s[0].source == Source::Heartbeat);
        assert_eq!(s[0].version.as_deref(), Some("0.1.0"));
        // Lease over, draining, no URL.
        assert!(!s[1].live && s[1].draining && s[1].url.is_none() && !s[1].pickable());
        // Admin node, removed by the checker and drained.
        assert!(s[2].removed && !s[2].live && s[2].draining && s[2].source == Source::Admin);
        assert!(parse_list(vec![], Duration::from_secs(1)).is_empty());
    }
}
