//! Every store in Redis: cluster mode. Same behaviour as [`super::memory`], shared by all
//! nodes.
//!
//! Its keys (`conv:<conversation>`, `clock`, `last`, `count`, `sent:<user>`, `dms:<user>`,
//! `marks:<user>`, `delivered:<conversation>`, `idem:<user>:<clientId>`, `group:<id>`,
//! `gmembers:<id>`, `usergroups:<user>`, `blocks:<user>`, `contacts:{<user>}`, `status:{<user>}`,
//! `presence:<user>`, `lastseen`,
//! `nodeusers:<uid>`, `lostusers:<uid>`, `bucket:<name>`) are named, typed and described in
//! [`crate::keys`].
//!
//! **Messages are written once and read per user.** An append is one Lua script: the
//! budget, the block or membership check, the idempotency check, the conversation stream and
//! the conversation's counters change together. Nothing is written per recipient, so a
//! message to a group of 1,000 costs Redis what a DM does. Message ids come from one clock
//! (`clock`) for every conversation, so one id orders all of a user's conversations: `sync`
//! reads, after the cursor, the streams of the user's DMs and groups whose `last` is newer,
//! and merges them. A user's unread count in a conversation is what it was at their last
//! read mark, plus the messages sent since (`count`), minus their own (`sent`). With replicas
//! the append is followed, on the same connection, by `WAIT`, so an acknowledged message
//! survives a failover.
//!
//! Presence entries name their node: an entry counts only while that node's lease in the node
//! table runs, so a crashed node's users go offline without any cleanup.

mod contacts;
mod groups;
mod messages;
mod scripts;
mod statuses;

use ::redis::{RedisError, Script, Value as RValue};
use async_trait::async_trait;
use socketioxide_core::Uid;

use super::{Bans, Blocks, Presence, RateLimiter};
use crate::{
    config::{Limits, Rate, RedisSettings},
    error::StoreError,
    keys::Keys,
    protocol::{PresenceState, UserId},
    redis::Redis,
};

/// Every store trait over one Redis deployment.
#[derive(Debug)]
pub struct RedisStore {
    redis: Redis,
    keys: Keys,
    node: Uid,
    history_max: usize,
    idempotency_ttl_secs: u64,
    wait_replicas: u32,
    wait_timeout_ms: u64,
    /// After a `WAIT` came back short (no replica in reach, e.g. right after a failover),
    /// appends skip it until then instead of each paying the whole timeout.
    wait_paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    scripts: Scripts,
}

/// How long appends stop waiting for replicas after a wait came back short.
const WAIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug)]
struct Scripts {
    append: Script,
    advance: Script,
    sync: Script,
    join: Script,
    leave: Script,
    group_update: Script,
    group_admin: Script,
    connect: Script,
    disconnect: Script,
    presence: Script,
    rate: Script,
    reap: Script,
    contact: Script,
    forget_devices: Script,
}

fn backend(e: RedisError) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("unexpected data in redis: {what}"))
}

impl RedisStore {
    /// Stores in `redis` under `settings.prefix`; presence entries name `node`.
    pub fn new(redis: Redis, settings: &RedisSettings, limits: &Limits, node: Uid) -> Self {
        use scripts::*;
        let with = |libs: &[&str], s: &str| Script::new(&format!("{}\n{s}", libs.join("\n")));
        Self {
            redis,
            keys: Keys::new(settings.prefix.clone()),
            node,
            history_max: limits.history_max,
            idempotency_ttl_secs: limits.idempotency_ttl.as_secs().max(1),
            wait_replicas: settings.wait_replicas,
            wait_timeout_ms: settings.wait_timeout.as_millis() as u64,
            wait_paused_until: std::sync::Mutex::new(None),
            scripts: Scripts {
                append: with(&[RATE_LIB, ID_LIB], APPEND),
                advance: with(&[ID_LIB], ADVANCE),
                sync: with(&[ID_LIB], SYNC),
                join: Script::new(JOIN),
                leave: Script::new(LEAVE),
                group_update: Script::new(GROUP_UPDATE),
                group_admin: Script::new(GROUP_ADMIN),
                connect: with(&[PRESENCE_LIB], CONNECT),
                disconnect: with(&[PRESENCE_LIB], DISCONNECT),
                presence: with(&[PRESENCE_LIB], PRESENCE),
                rate: with(&[RATE_LIB], RATE),
                reap: Script::new(REAP),
                contact: Script::new(contacts::CONTACT_SET),
                forget_devices: Script::new(statuses::FORGET_DEVICES),
            },
        }
    }

    async fn query<T: ::redis::FromRedisValue>(
        &self,
        q: &impl crate::redis::Query,
    ) -> Result<T, StoreError> {
        self.redis.query(q).await.map_err(backend)
    }

    /// Runs a pipeline that calls `script` by its hash (`EVALSHA`). When Redis does not have
    /// the script (first use, or a new master after a failover), loads it and runs the
    /// pipeline again: one `SCRIPT LOAD` per script and master rather than per call.
    async fn query_scripted<T: ::redis::FromRedisValue>(
        &self,
        script: &Script,
        pipe: &::redis::Pipeline,
    ) -> Result<T, StoreError> {
        match self.redis.query(pipe).await {
            Err(e)
                if e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
            {
                let mut again = ::redis::pipe();
                again.load_script(script).ignore();
                for cmd in pipe.cmd_iter() {
                    again.add_command(cmd.clone());
                }
                self.query(&again).await
            }
            reply => reply.map_err(backend),
        }
    }
}

#[async_trait]
impl Blocks for RedisStore {
    async fn block(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.query(
            ::redis::cmd("SADD")
                .arg(self.keys.blocks(user))
                .arg(target.as_str()),
        )
        .await
    }

    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.query(
            ::redis::cmd("SREM")
                .arg(self.keys.blocks(user))
                .arg(target.as_str()),
        )
        .await
    }

    async fn is_blocked(&self, user: &UserId, target: &UserId) -> Result<bool, StoreError> {
        self.query(
            ::redis::cmd("SISMEMBER")
                .arg(self.keys.blocks(user))
                .arg(target.as_str()),
        )
        .await
    }

    async fn count(&self, user: &UserId) -> Result<usize, StoreError> {
        self.query(::redis::cmd("SCARD").arg(self.keys.blocks(user)))
            .await
    }

    async fn list(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        let members: Vec<String> = self
            .query(::redis::cmd("SMEMBERS").arg(self.keys.blocks(user)))
            .await?;
        let mut users = members
            .into_iter()
            .map(|m| UserId::parse(m).map_err(|_| corrupt("blocked user")))
            .collect::<Result<Vec<_>, _>>()?;
        users.sort();
        Ok(users)
    }
}

#[async_trait]
impl Bans for RedisStore {
    async fn ban(&self, user: &UserId, until_ms: u64) -> Result<(), StoreError> {
        // Expires with the ban, by Redis time: nothing to clean up.
        self.query(
            ::redis::cmd("SET")
                .arg(self.keys.ban(user))
                .arg(until_ms)
                .arg("PXAT")
                .arg(until_ms),
        )
        .await
    }

    async fn banned_until(&self, user: &UserId, now_ms: u64) -> Result<Option<u64>, StoreError> {
        let until: Option<u64> = self
            .query(::redis::cmd("GET").arg(self.keys.ban(user)))
            .await?;
        Ok(until.filter(|u| *u > now_ms))
    }
}

#[async_trait]
impl Presence for RedisStore {
    async fn connect(&self, user: &UserId, socket: &str) -> Result<bool, StoreError> {
        let mut inv = self.scripts.connect.key(self.keys.presence(user));
        inv.key(self.keys.nodes())
            .key(self.keys.nodeusers(self.node))
            .arg(socket)
            .arg(self.node.to_string())
            .arg(user.as_str());
        let first: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(first == 1)
    }

    async fn disconnect(
        &self,
        user: &UserId,
        socket: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut inv = self.scripts.disconnect.key(self.keys.presence(user));
        inv.key(self.keys.nodes())
            .key(self.keys.lastseen())
            .arg(socket)
            .arg(user.as_str())
            .arg(now_ms);
        let last: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(u64::try_from(last).ok())
    }

    async fn node_lost(&self, node: &str, now_ms: u64) -> Result<Vec<(UserId, u64)>, StoreError> {
        let inv = reap_invocation(&self.scripts.reap, &self.keys, node, Some(now_ms), true);
        let gone: Vec<String> = self.redis.script(&inv).await.map_err(backend)?;
        Ok(gone
            .chunks_exact(2)
            .filter_map(|pair| {
                let user = UserId::parse(pair[0].as_str()).ok()?;
                Some((user, pair[1].parse().unwrap_or(now_ms)))
            })
            .collect())
    }

    async fn devices(&self, user: &UserId) -> Result<usize, StoreError> {
        self.query(::redis::cmd("HLEN").arg(self.keys.presence(user)))
            .await
    }

    async fn get(&self, users: &[UserId]) -> Result<Vec<PresenceState>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.scripts.presence.prepare_invoke();
        for u in users {
            inv.key(self.keys.presence(u)).arg(u.as_str());
        }
        inv.key(self.keys.nodes()).key(self.keys.lastseen());
        let flat: Vec<RValue> = self.redis.script(&inv).await.map_err(backend)?;
        flat.chunks_exact(2)
            .map(|p| {
                let online: i64 =
                    ::redis::from_redis_value(p[0].clone()).map_err(|_| corrupt("presence"))?;
                let seen: String =
                    ::redis::from_redis_value(p[1].clone()).map_err(|_| corrupt("lastseen"))?;
                Ok(PresenceState {
                    online: online == 1,
                    last_seen: seen.parse().ok(),
                })
            })
            .collect()
    }
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn try_acquire_all(&self, buckets: &[(&str, Rate)]) -> Result<bool, StoreError> {
        let mut inv = self.scripts.rate.prepare_invoke();
        for (key, rate) in buckets {
            inv.key(self.keys.bucket(key))
                .arg(rate.per_second)
                .arg(rate.burst);
        }
        let ok: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(ok == 1)
    }
}

/// Presence cleanup for a dead node: the health checker runs it for every node it reaps
/// (`chat_health::NodeReaper`).
#[derive(Debug)]
pub struct PresenceReaper {
    redis: Redis,
    keys: Keys,
    script: Script,
}

impl PresenceReaper {
    /// Cleans presence under `prefix` in `redis`.
    pub fn new(redis: Redis, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            keys: Keys::new(prefix),
            script: Script::new(scripts::REAP),
        }
    }
}

impl PresenceReaper {
    /// Forgets the presence entries of node `uid`'s users; those left offline wait in the
    /// node's lost users until a chat node announces them. Idempotent.
    pub async fn reap(&self, uid: &str) -> Result<(), StoreError> {
        let inv = reap_invocation(&self.script, &self.keys, uid, None, false);
        self.redis
            .script::<Vec<String>>(&inv)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The [`scripts::REAP`] call for `node`; with `take`, it returns the lost users.
fn reap_invocation<'a>(
    script: &'a Script,
    keys: &Keys,
    node: &str,
    now_ms: Option<u64>,
    take: bool,
) -> ::redis::ScriptInvocation<'a> {
    let mut inv = script.key(keys.nodeusers(node));
    inv.key(keys.lostusers(node))
        .arg(keys.presence_prefix())
        .arg(node)
        .arg(now_ms.map(|t| t.to_string()).unwrap_or_default())
        .arg(keys.lastseen())
        .arg(if take { "take" } else { "" });
    inv
}
