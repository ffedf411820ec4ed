//! Every store in Redis: cluster mode. Same behaviour as [`super::memory`], shared by all
//! nodes.
//!
//! Keys (after the prefix, `chat:` by default):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `conv:<conversation>` | stream | messages: `f` sender, `b` body, `t` ms, `c` clientId; the stream id is the message id; capped at `CHAT_HISTORY_MAX` |
//! | `feed:<user>` | stream | the user's sync feed: `c` conversation, `m` message id, `f` sender; capped at `CHAT_FEED_MAX` |
//! | `dms:<user>` | set | the user's DM conversations |
//! | `unread:<user>` | hash | conversation → messages from others after the read mark |
//! | `marks:<user>` | hash | `r:<conversation>` read mark, `d:<conversation>` delivered mark |
//! | `idem:<user>:<clientId>` | string | the first message sent with that key (JSON), 24 hours |
//! | `group:<id>` | hash | `name`, `owner`, `seq` (join counter) |
//! | `gmembers:<id>` | sorted set | member → join order |
//! | `usergroups:<user>` | set | the user's groups |
//! | `blocks:<user>` | set | users this user blocked |
//! | `presence:<user>` | hash | socket id → uid of the node holding it |
//! | `lastseen` | hash | user → ms when the last device left |
//! | `nodeusers:<uid>` | set | users who connected through that node |
//! | `rate:<key>` | hash | token bucket `tk`, `ts` |
//!
//! A message append is one Lua script: the idempotency check, the conversation stream, every
//! participant's feed, DM sets and unread counters change together. With replicas it is
//! followed, on the same connection, by `WAIT`, so an acknowledged message survives a
//! failover. Presence entries name their node: an entry counts only while that node's lease
//! in the node table runs, so a crashed node's users go offline without any cleanup.

use std::collections::HashMap;

use ::redis::{
    RedisError, Script, Value as RValue,
    streams::{StreamId as REntry, StreamRangeReply},
};
use async_trait::async_trait;
use serde::Deserialize;
use socketioxide_core::Uid;

use super::{
    Appended, Blocks, GroupRefusal, Groups, Mark, MessageLog, NewMessage, Presence, RateLimiter,
    Refusal, SyncPage,
};
use crate::{
    config::{Limits, Rate, RedisSettings},
    error::StoreError,
    protocol::{
        ConversationId, ConversationSummary, Group, GroupId, Message, MessageId, PresenceState,
        StreamId, UserId,
    },
    redis::Redis,
};

/// Feed entries read per round when looking for unread messages.
const SCAN_CHUNK: usize = 500;

/// Every store trait over one Redis deployment.
#[derive(Debug)]
pub struct RedisStore {
    redis: Redis,
    prefix: String,
    node: Uid,
    history_max: usize,
    feed_max: usize,
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
    advance_delivered: Script,
    join: Script,
    leave: Script,
    connect: Script,
    disconnect: Script,
    presence: Script,
    rate: Script,
    feed: Script,
    reap: Script,
}

/// Appends a message after its checks (see [`MessageLog::append`]). KEYS: 1 the conversation,
/// 2 the sender's idempotency key, 3 the blocks of the DM's other user or the group's
/// members, 4 the group (groups only), then the budget's buckets (the last ARGV[12]).
/// ARGV: 1 sender, 2 body, 3 ts, 4 clientId or '', 5 history cap, 6 feed cap, 7 idempotency
/// TTL, 8 conversation id, 9 '1' for a DM, 10 key prefix, 11 the DM's other user or '',
/// 12 bucket count, then rate and burst per bucket.
const APPEND: &str = r"
local nb = tonumber(ARGV[12])
if take(#KEYS - nb + 1, nb, 12) == 0 then return {'limited'} end
local audience
if ARGV[9] == '1' then
  if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {'blocked'} end
  audience = {ARGV[1], ARGV[11]}
else
  if redis.call('EXISTS', KEYS[4]) == 0 then return {'nogroup'} end
  if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return {'notmember'} end
  audience = redis.call('ZRANGE', KEYS[3], 0, -1)
end
local cid = ARGV[4]
if cid ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'dup', prev} end
end
local entry = {'MAXLEN', ARGV[5], '*', 'f', ARGV[1], 'b', ARGV[2], 't', ARGV[3], 'c', cid}
-- Only a conversation's first message makes its stream, and only then does a DM need
-- recording in its users' DM lists (trimming never removes a stream).
local id = redis.call('XADD', KEYS[1], 'NOMKSTREAM', unpack(entry))
local first = not id
if first then id = redis.call('XADD', KEYS[1], unpack(entry)) end
local p = ARGV[10]
for _, u in ipairs(audience) do
  redis.call('XADD', p .. 'feed:' .. u, 'MAXLEN', ARGV[6], '*', 'c', ARGV[8], 'm', id, 'f', ARGV[1])
  if first and ARGV[9] == '1' then redis.call('SADD', p .. 'dms:' .. u, ARGV[8]) end
  if u ~= ARGV[1] then redis.call('HINCRBY', p .. 'unread:' .. u, ARGV[8], 1) end
end
if cid ~= '' then
  redis.call('SET', KEYS[2], cjson.encode({id = id, c = ARGV[8], b = ARGV[2], t = ARGV[3]}), 'EX', ARGV[7])
end
return {'new', id, #audience}
";

const ADVANCE: &str = r"
local field = ARGV[2] .. ':' .. ARGV[3]
local old = redis.call('HGET', KEYS[2], field) or '0-0'
local covered = redis.call('XRANGE', KEYS[1], '(' .. old, ARGV[1])
if #covered == 0 then return {} end
local mark = covered[#covered][1]
redis.call('HSET', KEYS[2], field, mark)
local function sender(e)
  for j = 1, #e[2], 2 do if e[2][j] == 'f' then return e[2][j + 1] end end
end
local out, seen = {}, {}
for i = #covered, 1, -1 do
  local from = sender(covered[i])
  if from ~= ARGV[4] and not seen[from] then
    seen[from] = true
    table.insert(out, from)
    table.insert(out, covered[i][1])
  end
end
if ARGV[2] == 'r' then
  local dfield = 'd:' .. ARGV[3]
  local d = redis.call('HGET', KEYS[2], dfield) or '0-0'
  if #redis.call('XRANGE', KEYS[1], '(' .. d, mark, 'COUNT', 1) > 0 then
    redis.call('HSET', KEYS[2], dfield, mark)
  end
  local n = 0
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. mark, '+')) do
    if sender(e) ~= ARGV[4] then n = n + 1 end
  end
  redis.call('HSET', KEYS[3], ARGV[3], n)
end
return out
";

/// Delivered marks of many users in many conversations, in one call (a script call costs
/// Redis more than the few commands it runs). Per conversation, in order: KEYS its stream,
/// then the marks hash of each of its n users; ARGV the conversation, n, then (user, upto)
/// per user. One `XRANGE` per conversation over the union of its users' ranges. Returns,
/// per user in order, what ADVANCE returns: sender, newest newly covered id, sender, id...
const ADVANCE_DELIVERED: &str = r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(x, y)
  local xm, xs = parse(x)
  local ym, ys = parse(y)
  return xm < ym or (xm == ym and xs < ys)
end
local function sender(e)
  for j = 1, #e[2], 2 do if e[2][j] == 'f' then return e[2][j + 1] end end
end
local out = {}
local k, a = 1, 1
while a <= #ARGV do
  local stream, field, n = KEYS[k], 'd:' .. ARGV[a], tonumber(ARGV[a + 1])
  local olds, lo, hi = {}, nil, nil
  for i = 1, n do
    local old = redis.call('HGET', KEYS[k + i], field) or '0-0'
    local upto = ARGV[a + 2 * i + 1]
    olds[i] = old
    if lo == nil or less(old, lo) then lo = old end
    if hi == nil or less(hi, upto) then hi = upto end
  end
  local entries = {}
  if less(lo, hi) then entries = redis.call('XRANGE', stream, '(' .. lo, hi) end
  for i = 1, n do
    local user, upto, old = ARGV[a + 2 * i], ARGV[a + 2 * i + 1], olds[i]
    local res, seen, newest = {}, {}, nil
    for j = #entries, 1, -1 do
      local id = entries[j][1]
      if less(old, id) and not less(upto, id) then
        if newest == nil then newest = id end
        local from = sender(entries[j])
        if from ~= user and not seen[from] then
          seen[from] = true
          table.insert(res, from)
          table.insert(res, id)
        end
      end
    end
    if newest then redis.call('HSET', KEYS[k + i], field, newest) end
    table.insert(out, res)
  end
  k, a = k + 1 + n, a + 2 + 2 * n
end
return out
";

const JOIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'notfound' end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 'member' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 'full' end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'toomany' end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
return 'added'
";

const LEAVE: &str = r"
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  local next = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #next > 0 then redis.call('HSET', KEYS[1], 'owner', next[1]) end
end
return 1
";

/// Shared by the presence scripts: Redis time, and whether a node's lease runs.
const PRESENCE_LIB: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(nodes, uid)
  local score = redis.call('ZSCORE', nodes, uid)
  return score and tonumber(score) >= now
end
-- Whether the user has a device on a live node; forgets entries of dead nodes.
local function online(key, nodes, except)
  local found = false
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if all[i] ~= except then
      if live(nodes, all[i + 1]) then found = true else redis.call('HDEL', key, all[i]) end
    end
  end
  return found
end
";

const CONNECT: &str = r"
local first = not online(KEYS[1], KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
if first then return 1 else return 0 end
";

const DISCONNECT: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
if online(KEYS[1], KEYS[2], '') then return -1 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return tonumber(ARGV[3])
";

const PRESENCE: &str = r"
local out = {}
local n = #KEYS - 2
for i = 1, n do
  local on = online(KEYS[i], KEYS[n + 1], '')
  table.insert(out, on and 1 or 0)
  table.insert(out, redis.call('HGET', KEYS[n + 2], ARGV[i]) or '')
end
return out
";

/// Shared by the scripts that spend rate budgets: `take(first, n, at)` takes a token from each
/// token bucket KEYS[first + i - 1] (rate ARGV[at + 2i - 1], burst ARGV[at + 2i]) for i in
/// 1..n if every one has a token, else none. Returns 1 or 0.
const RATE_LIB: &str = r"
local function take(first, n, at)
  if n == 0 then return 1 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local tokens, ok = {}, 1
  for i = 1, n do
    local rate, burst = tonumber(ARGV[at + 2 * i - 1]), tonumber(ARGV[at + 2 * i])
    local v = redis.call('HMGET', KEYS[first + i - 1], 'tk', 'ts')
    local tk, ts = tonumber(v[1]) or burst, tonumber(v[2]) or now
    tokens[i] = math.min(burst, tk + math.max(0, now - ts) * rate)
    if tokens[i] < 1 then ok = 0 end
  end
  for i = 1, n do
    local key = KEYS[first + i - 1]
    local rate, burst = tonumber(ARGV[at + 2 * i - 1]), tonumber(ARGV[at + 2 * i])
    redis.call('HSET', key, 'tk', string.format('%.6f', tokens[i] - ok), 'ts', string.format('%.6f', now))
    redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  end
  return ok
end
";

/// Token buckets KEYS[i] with rate ARGV[2i-1] and burst ARGV[2i], all or none.
const RATE: &str = "return take(1, #KEYS, 0)";

/// A feed page after a cursor, and the newest id ever trimmed from the feed.
const FEED: &str = r"
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local deleted = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
  end
end
return {deleted, entries}
";

fn backend(e: RedisError) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("unexpected data in redis: {what}"))
}

#[derive(Deserialize)]
struct IdemRecord {
    id: String,
    c: String,
    b: String,
    t: String,
}

impl RedisStore {
    /// Stores in `redis` under `settings.prefix`; presence entries name `node`.
    pub fn new(redis: Redis, settings: &RedisSettings, limits: &Limits, node: Uid) -> Self {
        let with_lib = |lib: &str, s: &str| Script::new(&format!("{lib}\n{s}"));
        Self {
            redis,
            prefix: settings.prefix.clone(),
            node,
            history_max: limits.history_max,
            feed_max: limits.feed_max,
            idempotency_ttl_secs: limits.idempotency_ttl.as_secs().max(1),
            wait_replicas: settings.wait_replicas,
            wait_timeout_ms: settings.wait_timeout.as_millis() as u64,
            wait_paused_until: std::sync::Mutex::new(None),
            scripts: Scripts {
                append: with_lib(RATE_LIB, APPEND),
                advance: Script::new(ADVANCE),
                advance_delivered: Script::new(ADVANCE_DELIVERED),
                join: Script::new(JOIN),
                leave: Script::new(LEAVE),
                connect: with_lib(PRESENCE_LIB, CONNECT),
                disconnect: with_lib(PRESENCE_LIB, DISCONNECT),
                presence: with_lib(PRESENCE_LIB, PRESENCE),
                rate: with_lib(RATE_LIB, RATE),
                feed: Script::new(FEED),
                reap: Script::new(REAP),
            },
        }
    }

    fn key(&self, rest: impl std::fmt::Display) -> String {
        format!("{}{rest}", self.prefix)
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

    /// Messages by (conversation, id), in the order asked; trimmed ones are skipped.
    async fn messages(
        &self,
        ids: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Message>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for (c, id) in ids {
            let id = id.to_string();
            pipe.cmd("XRANGE")
                .arg(self.key(format!("conv:{c}")))
                .arg(&id)
                .arg(&id);
        }
        let found: Vec<StreamRangeReply> = self.query(&pipe).await?;
        let mut out = Vec::with_capacity(ids.len());
        for ((c, _), entries) in ids.iter().zip(found) {
            if let Some(e) = entries.ids.first() {
                out.push(parse_message(c, e)?);
            }
        }
        Ok(out)
    }

    async fn read_marks(&self, user: &UserId) -> Result<HashMap<String, StreamId>, StoreError> {
        let marks: HashMap<String, String> = self
            .query(::redis::cmd("HGETALL").arg(self.key(format!("marks:{user}"))))
            .await?;
        Ok(marks
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("r:")?.to_owned(), v.parse().ok()?)))
            .collect())
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self
            .groups_by_id(std::slice::from_ref(id))
            .await?
            .pop()
            .flatten())
    }

    async fn groups_by_id(&self, ids: &[GroupId]) -> Result<Vec<Option<Group>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.hgetall(self.key(format!("group:{id}"))).zrange(
                self.key(format!("gmembers:{id}")),
                0,
                -1,
            );
        }
        let raw: Vec<RValue> = self.query(&pipe).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, pair) in ids.iter().zip(raw.chunks(2)) {
            let info: HashMap<String, String> =
                ::redis::from_redis_value(pair[0].clone()).map_err(|_| corrupt("group"))?;
            let members: Vec<String> =
                ::redis::from_redis_value(pair[1].clone()).map_err(|_| corrupt("members"))?;
            let (Some(name), Some(owner)) = (info.get("name"), info.get("owner")) else {
                out.push(None);
                continue;
            };
            out.push(Some(Group {
                id: id.clone(),
                name: name.clone(),
                owner: UserId::parse(owner.as_str()).map_err(|_| corrupt("owner"))?,
                members: members
                    .into_iter()
                    .map(UserId::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| corrupt("member"))?,
            }));
        }
        Ok(out)
    }
}

fn field(e: &REntry, name: &str) -> Option<String> {
    match e.map.get(name)? {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_message(conversation: &ConversationId, e: &REntry) -> Result<Message, StoreError> {
    let get = |k| field(e, k).ok_or_else(|| corrupt("message"));
    let client_id = get("c")?;
    Ok(Message {
        id: e.id.parse().map_err(|_| corrupt("message id"))?,
        conversation: conversation.clone(),
        from: UserId::parse(get("f")?).map_err(|_| corrupt("sender"))?,
        body: get("b")?,
        ts: get("t")?.parse().map_err(|_| corrupt("ts"))?,
        client_id: (!client_id.is_empty()).then_some(client_id),
    })
}

/// A feed entry: (feed id, conversation, message id, sender).
type FeedEntry = (StreamId, ConversationId, MessageId, UserId);

fn parse_feed(e: &REntry) -> Option<FeedEntry> {
    Some((
        e.id.parse().ok()?,
        field(e, "c")?.parse().ok()?,
        field(e, "m")?.parse().ok()?,
        UserId::parse(field(e, "f")?).ok()?,
    ))
}

#[async_trait]
impl MessageLog for RedisStore {
    async fn append(
        &self,
        msg: NewMessage,
        budget: &[(&str, Rate)],
    ) -> Result<Appended, StoreError> {
        let conv = msg.conversation.to_string();
        let cid = msg.client_id.clone().unwrap_or_default();
        let idem_key = self.key(format!("idem:{}:{}", msg.from, cid));
        let (guard, group, peer) = match &msg.conversation {
            ConversationId::Dm(..) => {
                let Some(peer) = msg.conversation.dm_peer(&msg.from) else {
                    return Ok(Appended::Refused(Refusal::NotMember));
                };
                (self.key(format!("blocks:{peer}")), None, peer.as_str())
            }
            ConversationId::Group(id) => (
                self.key(format!("gmembers:{id}")),
                Some(self.key(format!("group:{id}"))),
                "",
            ),
        };
        // EVALSHA; EVAL with the body only when Redis does not have the script yet (first use,
        // or a new master after a failover), which saves Redis hashing the body every time.
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(self.scripts.append.get_hash())
            .arg(3 + usize::from(group.is_some()) + budget.len())
            .arg(self.key(format!("conv:{conv}")))
            .arg(&idem_key)
            .arg(&guard)
            .arg(group.as_deref());
        for (key, _) in budget {
            eval.arg(self.key(format!("rate:{key}")));
        }
        eval.arg(msg.from.as_str())
            .arg(&msg.body)
            .arg(msg.ts)
            .arg(&cid)
            .arg(self.history_max)
            .arg(self.feed_max)
            .arg(self.idempotency_ttl_secs)
            .arg(&conv)
            .arg(if matches!(msg.conversation, ConversationId::Dm(..)) {
                "1"
            } else {
                "0"
            })
            .arg(&self.prefix)
            .arg(peer)
            .arg(budget.len());
        for (_, rate) in budget {
            eval.arg(rate.per_second).arg(rate.burst);
        }
        let mut pipe = ::redis::pipe();
        pipe.add_command(eval);
        let wait = self.wait_replicas > 0 && {
            let paused = self
                .wait_paused_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            paused.is_none_or(|until| tokio::time::Instant::now() >= until)
        };
        if wait {
            // Same connection as the append: WAIT counts the replicas that have it.
            pipe.cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.wait_timeout_ms);
        }
        let mut reply: Vec<RValue> = self.query_scripted(&self.scripts.append, &pipe).await?;
        if wait {
            let acked: i64 = reply
                .pop()
                .and_then(|v| ::redis::from_redis_value(v).ok())
                .unwrap_or(0);
            if acked < i64::from(self.wait_replicas) {
                tracing::warn!(
                    acked,
                    wanted = self.wait_replicas,
                    pause = ?WAIT_PAUSE,
                    "replicas out of reach: acknowledging without them for a while"
                );
                *self
                    .wait_paused_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    Some(tokio::time::Instant::now() + WAIT_PAUSE);
            }
        }
        // [kind], [kind, id or idempotency record], or [kind, id, audience].
        let mut parts: std::vec::IntoIter<RValue> = reply
            .pop()
            .and_then(|v| ::redis::from_redis_value::<Vec<RValue>>(v).ok())
            .ok_or_else(|| corrupt("append reply"))?
            .into_iter();
        let mut next = |what| {
            parts
                .next()
                .map(::redis::from_redis_value::<String>)
                .transpose()
                .map_err(|_| corrupt(what))
        };
        let kind = next("append reply")?.unwrap_or_default();
        let value = next("append reply")?;
        let audience = next("audience")?.and_then(|n| n.parse::<usize>().ok());
        let refused = |why| Ok(Appended::Refused(why));
        let value = match (kind.as_str(), value) {
            ("limited", _) => return refused(Refusal::RateLimited),
            ("blocked", _) => return refused(Refusal::Blocked),
            ("nogroup", _) => return refused(Refusal::NoGroup),
            ("notmember", _) => return refused(Refusal::NotMember),
            ("new", Some(id)) => {
                return Ok(Appended::New {
                    message: Message {
                        id: id.parse().map_err(|_| corrupt("message id"))?,
                        conversation: msg.conversation,
                        from: msg.from,
                        body: msg.body,
                        ts: msg.ts,
                        client_id: msg.client_id,
                    },
                    audience: audience.ok_or_else(|| corrupt("append reply"))?,
                });
            }
            ("dup", Some(record)) => record,
            _ => return Err(corrupt("append reply")),
        };
        let first: IdemRecord =
            serde_json::from_str(&value).map_err(|_| corrupt("idempotency record"))?;
        if first.c != conv || first.b != msg.body {
            return Ok(Appended::Conflict);
        }
        Ok(Appended::Duplicate(Message {
            id: first.id.parse().map_err(|_| corrupt("message id"))?,
            conversation: msg.conversation,
            from: msg.from,
            body: first.b,
            ts: first.t.parse().map_err(|_| corrupt("ts"))?,
            client_id: msg.client_id,
        }))
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        let mut entries: Vec<REntry> = self
            .query::<StreamRangeReply>(
                ::redis::cmd("XREVRANGE")
                    .arg(self.key(format!("conv:{conversation}")))
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit + 1),
            )
            .await?
            .ids;
        let has_more = entries.len() > limit;
        entries.truncate(limit);
        entries.reverse();
        let messages = entries
            .iter()
            .map(|e| parse_message(conversation, e))
            .collect::<Result<_, _>>()?;
        Ok((messages, has_more))
    }

    async fn sync(
        &self,
        user: &UserId,
        cursor: Option<StreamId>,
        limit: usize,
    ) -> Result<SyncPage, StoreError> {
        let feed = self.key(format!("feed:{user}"));
        let mut wanted: Vec<(ConversationId, MessageId)> = Vec::new();
        let mut next = cursor.unwrap_or_default();
        let mut has_more = false;
        let mut truncated = false;
        match cursor {
            Some(c) => {
                let inv = {
                    let mut i = self.scripts.feed.key(&feed);
                    i.arg(format!("({c}")).arg(limit + 1);
                    i
                };
                let (deleted, entries): (String, StreamRangeReply) =
                    self.redis.script(&inv).await.map_err(backend)?;
                let entries = entries.ids;
                truncated = deleted.parse::<StreamId>().is_ok_and(|d| c < d);
                has_more = entries.len() > limit;
                for e in entries.iter().take(limit) {
                    let (id, conv, msg, _) = parse_feed(e).ok_or_else(|| corrupt("feed entry"))?;
                    next = id;
                    wanted.push((conv, msg));
                }
            }
            None => {
                // The user's unread messages: scan the feed from its start.
                let marks = self.read_marks(user).await?;
                let mut start = "-".to_owned();
                'scan: loop {
                    let entries: Vec<REntry> = self
                        .query::<StreamRangeReply>(
                            ::redis::cmd("XRANGE")
                                .arg(&feed)
                                .arg(&start)
                                .arg("+")
                                .arg("COUNT")
                                .arg(SCAN_CHUNK),
                        )
                        .await?
                        .ids;
                    for e in &entries {
                        if wanted.len() == limit {
                            has_more = true;
                            break 'scan;
                        }
                        let (id, conv, msg, from) =
                            parse_feed(e).ok_or_else(|| corrupt("feed entry"))?;
                        next = id;
                        let read = marks.get(&conv.to_string()).copied().unwrap_or_default();
                        if &from != user && msg > read {
                            wanted.push((conv, msg));
                        }
                    }
                    if entries.len() < SCAN_CHUNK {
                        break;
                    }
                    start = format!("({next}");
                }
            }
        }
        Ok(SyncPage {
            messages: self.messages(&wanted).await?,
            cursor: next,
            has_more,
            truncated,
        })
    }

    async fn dm_peers(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        let dms: Vec<String> = self
            .query(::redis::cmd("SMEMBERS").arg(self.key(format!("dms:{user}"))))
            .await?;
        Ok(dms
            .iter()
            .filter_map(|c| c.parse::<ConversationId>().ok())
            .filter_map(|c| c.dm_peer(user).cloned())
            .collect())
    }

    async fn conversations(
        &self,
        user: &UserId,
        groups: &[Group],
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let dms: Vec<String> = self
            .query(::redis::cmd("SMEMBERS").arg(self.key(format!("dms:{user}"))))
            .await?;
        let mut convs: Vec<(ConversationId, Option<String>)> = dms
            .iter()
            .filter_map(|c| c.parse().ok())
            .map(|c| (c, None))
            .collect();
        convs.extend(
            groups
                .iter()
                .map(|g| (ConversationId::Group(g.id.clone()), Some(g.name.clone()))),
        );
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        let unread_key = self.key(format!("unread:{user}"));
        let mut pipe = ::redis::pipe();
        for (c, _) in &convs {
            pipe.cmd("XREVRANGE")
                .arg(self.key(format!("conv:{c}")))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .hget(&unread_key, c.to_string());
        }
        let raw: Vec<RValue> = self.query(&pipe).await?;
        let mut out = Vec::with_capacity(convs.len());
        for ((id, name), pair) in convs.into_iter().zip(raw.chunks(2)) {
            let last: StreamRangeReply =
                ::redis::from_redis_value(pair[0].clone()).map_err(|_| corrupt("last message"))?;
            let last = last.ids;
            let unread: Option<u64> =
                ::redis::from_redis_value(pair[1].clone()).map_err(|_| corrupt("unread"))?;
            let last_message = last.first().map(|e| parse_message(&id, e)).transpose()?;
            out.push(ConversationSummary {
                id,
                name,
                last_message,
                unread: unread.unwrap_or(0),
            });
        }
        super::sort_recent_first(&mut out);
        Ok(out)
    }

    async fn advance(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        upto: MessageId,
        mark: Mark,
    ) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        let mut inv = self
            .scripts
            .advance
            .key(self.key(format!("conv:{conversation}")));
        inv.key(self.key(format!("marks:{user}")))
            .key(self.key(format!("unread:{user}")))
            .arg(upto.to_string())
            .arg(match mark {
                Mark::Read => "r",
                Mark::Delivered => "d",
            })
            .arg(conversation.to_string())
            .arg(user.as_str());
        let flat: Vec<String> = self.redis.script(&inv).await.map_err(backend)?;
        covered_senders(&flat)
    }

    /// Delivered marks, one script call per conversation, all in one round trip: acks of one
    /// message from many members come in together, and they share one range of the
    /// conversation stream.
    async fn advance_delivered(
        &self,
        marks: &[(UserId, ConversationId, MessageId)],
    ) -> Result<Vec<Vec<(UserId, MessageId)>>, StoreError> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_conversation: Vec<(&ConversationId, Vec<usize>)> = Vec::new();
        for (i, (_, conversation, _)) in marks.iter().enumerate() {
            match by_conversation.iter_mut().find(|(c, _)| *c == conversation) {
                Some((_, indices)) => indices.push(i),
                None => by_conversation.push((conversation, vec![i])),
            }
        }
        let mut inv = self.scripts.advance_delivered.prepare_invoke();
        for (conversation, indices) in &by_conversation {
            inv.key(self.key(format!("conv:{conversation}")))
                .arg(conversation.to_string())
                .arg(indices.len());
            for &i in indices {
                let (user, _, upto) = &marks[i];
                inv.key(self.key(format!("marks:{user}")))
                    .arg(user.as_str())
                    .arg(upto.to_string());
            }
        }
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&inv);
        let (reply,): (Vec<Vec<String>>,) = self
            .query_scripted(&self.scripts.advance_delivered, &pipe)
            .await?;
        if reply.len() != marks.len() {
            return Err(corrupt("delivered marks reply"));
        }
        let mut out = vec![Vec::new(); marks.len()];
        let order = by_conversation.iter().flat_map(|(_, indices)| indices);
        for (&i, flat) in order.zip(reply) {
            out[i] = covered_senders(&flat)?;
        }
        Ok(out)
    }
}

/// The advance script's answer: sender, newest covered id, sender, id...
fn covered_senders(flat: &[String]) -> Result<Vec<(UserId, MessageId)>, StoreError> {
    flat.chunks_exact(2)
        .map(|p| {
            Ok((
                UserId::parse(p[0].as_str()).map_err(|_| corrupt("sender"))?,
                p[1].parse().map_err(|_| corrupt("message id"))?,
            ))
        })
        .collect()
}

#[async_trait]
impl Groups for RedisStore {
    async fn create(&self, group: Group) -> Result<Group, StoreError> {
        let id = &group.id;
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .hset_multiple(
                self.key(format!("group:{id}")),
                &[
                    ("name", group.name.clone()),
                    ("owner", group.owner.to_string()),
                    ("seq", group.members.len().to_string()),
                ],
            )
            .ignore();
        for (i, m) in group.members.iter().enumerate() {
            pipe.zadd(self.key(format!("gmembers:{id}")), m.as_str(), i + 1)
                .ignore()
                .sadd(self.key(format!("usergroups:{m}")), id.as_str())
                .ignore();
        }
        self.query::<()>(&pipe).await?;
        Ok(group)
    }

    async fn get(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        self.group(id).await
    }

    async fn join(
        &self,
        id: &GroupId,
        user: &UserId,
        max_size: usize,
        max_groups: usize,
    ) -> Result<Result<(Group, bool), GroupRefusal>, StoreError> {
        let mut inv = self.scripts.join.key(self.key(format!("group:{id}")));
        inv.key(self.key(format!("gmembers:{id}")))
            .key(self.key(format!("usergroups:{user}")))
            .arg(user.as_str())
            .arg(max_size)
            .arg(max_groups)
            .arg(id.as_str());
        let outcome: String = self.redis.script(&inv).await.map_err(backend)?;
        let added = match outcome.as_str() {
            "notfound" => return Ok(Err(GroupRefusal::NotFound)),
            "full" => return Ok(Err(GroupRefusal::Full)),
            "toomany" => return Ok(Err(GroupRefusal::TooManyGroups)),
            "added" => true,
            _ => false,
        };
        match self.group(id).await? {
            Some(g) => Ok(Ok((g, added))),
            None => Ok(Err(GroupRefusal::NotFound)),
        }
    }

    async fn leave(&self, id: &GroupId, user: &UserId) -> Result<bool, StoreError> {
        let mut inv = self.scripts.leave.key(self.key(format!("group:{id}")));
        inv.key(self.key(format!("gmembers:{id}")))
            .key(self.key(format!("usergroups:{user}")))
            .arg(user.as_str())
            .arg(id.as_str());
        let left: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(left == 1)
    }

    async fn of_user(&self, user: &UserId) -> Result<Vec<Group>, StoreError> {
        let ids: Vec<String> = self
            .query(::redis::cmd("SMEMBERS").arg(self.key(format!("usergroups:{user}"))))
            .await?;
        let mut ids: Vec<GroupId> = ids
            .into_iter()
            .filter_map(|i| GroupId::parse(i).ok())
            .collect();
        ids.sort();
        Ok(self
            .groups_by_id(&ids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}

#[async_trait]
impl Blocks for RedisStore {
    async fn block(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.query(
            ::redis::cmd("SADD")
                .arg(self.key(format!("blocks:{user}")))
                .arg(target.as_str()),
        )
        .await
    }

    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), StoreError> {
        self.query(
            ::redis::cmd("SREM")
                .arg(self.key(format!("blocks:{user}")))
                .arg(target.as_str()),
        )
        .await
    }

    async fn is_blocked(&self, user: &UserId, target: &UserId) -> Result<bool, StoreError> {
        self.query(
            ::redis::cmd("SISMEMBER")
                .arg(self.key(format!("blocks:{user}")))
                .arg(target.as_str()),
        )
        .await
    }
}

#[async_trait]
impl Presence for RedisStore {
    async fn connect(&self, user: &UserId, socket: &str) -> Result<bool, StoreError> {
        let mut inv = self
            .scripts
            .connect
            .key(self.key(format!("presence:{user}")));
        inv.key(self.key("nodes"))
            .key(self.key(format!("nodeusers:{}", self.node)))
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
        let mut inv = self
            .scripts
            .disconnect
            .key(self.key(format!("presence:{user}")));
        inv.key(self.key("nodes"))
            .key(self.key("lastseen"))
            .arg(socket)
            .arg(user.as_str())
            .arg(now_ms);
        let last: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(u64::try_from(last).ok())
    }

    async fn node_lost(&self, node: &str, now_ms: u64) -> Result<Vec<(UserId, u64)>, StoreError> {
        let mut inv = self.scripts.reap.key(self.key(format!("nodeusers:{node}")));
        inv.arg(&self.prefix).arg(node).arg(now_ms);
        let gone: Vec<String> = self.redis.script(&inv).await.map_err(backend)?;
        Ok(gone
            .into_iter()
            .filter_map(|u| UserId::parse(u).ok())
            .map(|u| (u, now_ms))
            .collect())
    }

    async fn get(&self, users: &[UserId]) -> Result<Vec<PresenceState>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.scripts.presence.prepare_invoke();
        for u in users {
            inv.key(self.key(format!("presence:{u}"))).arg(u.as_str());
        }
        inv.key(self.key("nodes")).key(self.key("lastseen"));
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
            inv.key(self.key(format!("rate:{key}")))
                .arg(rate.per_second)
                .arg(rate.burst);
        }
        let ok: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(ok == 1)
    }
}

/// Forgets the presence entries of a dead node: its users' sockets on it are gone. Entries
/// already count only while their node's lease runs; this removes them for good and records
/// `lastSeen` for users left with no device. Idempotent.
const REAP: &str = r"
local now = ARGV[3]
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local p, uid = ARGV[1], ARGV[2]
local gone = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = p .. 'presence:' .. user
  local all = redis.call('HGETALL', key)
  local removed, left = 0, 0
  for i = 1, #all, 2 do
    if all[i + 1] == uid then
      redis.call('HDEL', key, all[i])
      removed = removed + 1
    else
      left = left + 1
    end
  end
  if removed > 0 and left == 0 then
    redis.call('HSET', p .. 'lastseen', user, now)
    table.insert(gone, user)
  end
end
redis.call('DEL', KEYS[1])
return gone
";

/// The health checker's presence cleanup for dead nodes (see [`crate::health::NodeReaper`]).
#[derive(Debug)]
pub struct PresenceReaper {
    redis: Redis,
    prefix: String,
    script: Script,
}

impl PresenceReaper {
    /// Cleans presence under `prefix` in `redis`.
    pub fn new(redis: Redis, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            script: Script::new(REAP),
        }
    }
}

#[async_trait]
impl crate::health::NodeReaper for PresenceReaper {
    async fn reap(&self, uid: &str) -> Result<(), StoreError> {
        let mut inv = self.script.key(format!("{}nodeusers:{uid}", self.prefix));
        inv.arg(&self.prefix).arg(uid);
        self.redis
            .script::<Vec<String>>(&inv)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
