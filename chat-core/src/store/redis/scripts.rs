//! The Lua scripts of the Redis store: each is one atomic step (see the store traits).
//!
//! Keys are passed as KEYS where the caller knows them; keys that depend on data only the
//! script reads (the DM lists of a conversation's first message, presence of a dead node's
//! users) are built in the script from a key prefix in ARGV, which the caller takes from
//! [`Keys`](crate::keys::Keys) (`dms_prefix`, `conv_prefix`, `presence_prefix`): the names
//! stay in one place.

/// Shared by the message scripts: stream ids and entries.
pub(super) const ID_LIB: &str = r"
-- Parsed ids, per call: sync compares the same few ids many times.
local parsed = {}
local function parse(id)
  local p = parsed[id]
  if not p then
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    p = {tonumber(ms), tonumber(seq)}
    parsed[id] = p
  end
  return p[1], p[2]
end
local function less(x, y)
  local xm, xs = parse(x)
  local ym, ys = parse(y)
  return xm < ym or (xm == ym and xs < ys)
end
local function sender(e)
  for j = 1, #e[2], 2 do if e[2][j] == 'f' then return e[2][j + 1] end end
end
-- HMGET in chunks: unpack has a limit, and a user may have thousands of conversations.
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end
";

/// Appends a message after its checks (see `MessageLog::append`). KEYS: 1 the conversation,
/// 2 the sender's idempotency key, 3 the blocks of the DM's other user or the group's
/// members, 4 the group (for a DM, unused), 5 the clock, 6 `last`, 7 `count`, 8 the sender's
/// `sent`, then the budget's buckets (the last ARGV[11]). ARGV: 1 sender, 2 body, 3 ts,
/// 4 clientId or '', 5 history cap, 6 idempotency TTL, 7 conversation id, 8 '1' for a DM,
/// 9 the `dms` key prefix ([`Keys::dms_prefix`](crate::keys::Keys::dms_prefix)), 10 the
/// DM's other user or '', 11 bucket count, then rate and burst per
/// bucket. Returns `{'new', id, audience, the conversation's previous id or ''}`, or a
/// refusal.
///
/// Nothing is written per recipient: a group message costs the same whatever the group's
/// size. Readers find it through `last` (sync) and count it through `count` and `sent`.
pub(super) const APPEND: &str = r"
local nb = tonumber(ARGV[11])
if take(#KEYS - nb + 1, nb, 11) == 0 then return {'limited'} end
local conv, dm = ARGV[7], ARGV[8] == '1'
local audience
if dm then
  if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {'blocked'} end
  audience = 2
else
  -- The system sender (protocol::SYSTEM_SENDER) posts to any group that exists.
  if ARGV[1] == '@system' then
    if redis.call('EXISTS', KEYS[4]) == 0 then return {'nogroup'} end
  elseif not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    if redis.call('EXISTS', KEYS[4]) == 0 then return {'nogroup'} end
    return {'notmember'}
  end
  audience = redis.call('ZCARD', KEYS[3])
end
local cid = ARGV[4]
if cid ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'dup', prev} end
end
-- Ids come from one clock for every conversation (KEYS[5], the newest id handed out), so
-- that one cursor orders all of a user's conversations (see SYNC). Like XADD's own ids they
-- follow Redis time and never go backwards, after a failover to a master with a slower
-- clock too: the clock key is replicated with the messages.
local now = now_ms()
local function after(last)
  if last then
    local ms, seq = parse(last)
    if now <= ms then return string.format('%.0f-%.0f', ms, seq + 1) end
  end
  return string.format('%.0f-0', now)
end
local id = after(redis.call('GET', KEYS[5]))
local entry = {'f', ARGV[1], 'b', ARGV[2], 't', ARGV[3], 'c', cid}
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[5], id, unpack(entry))
if type(added) == 'table' then
  -- The stream already ends at or after that id (its entries predate the clock): go after it.
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #top == 0 then return redis.error_reply(added.err) end
  id = after(top[1][1])
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], id, unpack(entry))
end
redis.call('SET', KEYS[5], id)
-- A conversation's first message makes its `last` field, and only then does a DM need
-- recording in its users' DM lists.
local previous = redis.call('HGET', KEYS[6], conv)
redis.call('HSET', KEYS[6], conv, id)
local first = not previous
redis.call('HINCRBY', KEYS[7], conv, 1)
redis.call('HINCRBY', KEYS[8], conv, 1)
if first and dm then
  redis.call('SADD', ARGV[9] .. ARGV[1], conv)
  redis.call('SADD', ARGV[9] .. ARGV[10], conv)
end
if cid ~= '' then
  redis.call('SET', KEYS[2], cjson.encode({id = id, c = conv, b = ARGV[2], t = ARGV[3]}), 'EX', ARGV[6])
end
return {'new', id, audience, previous or ''}
";

/// Moves one user's read or delivered mark. KEYS: 1 the conversation, 2 the user's `marks`,
/// 3 the conversation's `delivered`, 4 `count`, 5 the user's `sent`. ARGV: 1 upto, 2 'r' or
/// 'd', 3 conversation id, 4 user, 5 most entries looked at. Returns sender, newest newly
/// covered id, sender, id... (newest first, the user's own messages left out).
///
/// A read mark also records what the conversation's unread count is from then on: the
/// messages from others after the mark now, and `count` and `sent` now, so that later
/// messages add to it without a scan (see `conversations`).
pub(super) const ADVANCE: &str = r"
local upto, kind, conv, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local old
if kind == 'r' then
  old = redis.call('HGET', KEYS[2], 'r:' .. conv)
else
  old = redis.call('HGET', KEYS[3], user)
end
local covered = redis.call('XREVRANGE', KEYS[1], upto, '(' .. (old or '0-0'), 'COUNT', ARGV[5])
if #covered == 0 then return {} end
local mark = covered[1][1]
local out, seen = {}, {}
for _, e in ipairs(covered) do
  local from = sender(e)
  if from ~= user and not seen[from] then
    seen[from] = true
    table.insert(out, from)
    table.insert(out, e[1])
  end
end
if kind == 'r' then
  redis.call('HSET', KEYS[2], 'r:' .. conv, mark)
  local d = redis.call('HGET', KEYS[3], user)
  if not d or less(d, mark) then redis.call('HSET', KEYS[3], user, mark) end
  local n = 0
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. mark, '+')) do
    if sender(e) ~= user then n = n + 1 end
  end
  local count = redis.call('HGET', KEYS[4], conv) or '0'
  local sent = redis.call('HGET', KEYS[5], conv) or '0'
  redis.call('HSET', KEYS[2], 'u:' .. conv, n .. ',' .. count .. ',' .. sent)
else
  redis.call('HSET', KEYS[3], user, mark)
end
return out
";

/// A user's messages across all their conversations (see `MessageLog::sync`). KEYS: 1 the
/// user's `dms`, 2 the user's `usergroups`, 3 `last`, 4 the user's `marks`. ARGV: 1 the
/// `conv` key prefix,
/// 2 cursor, or '' for the unread messages, 3 limit (at least 1), 4 user, 5 history cap.
///
/// Only conversations whose `last` is after the start are read: after the cursor, or after
/// the user's read mark. Each gives its first limit + 1 messages after the start (for the
/// unread messages, the user's own are skipped and reading goes on past them), which holds
/// the first `limit` of the merged list and tells whether more follow.
/// Returns: cursor, has more (0/1), truncated (0/1), the conversation of each message, the
/// messages as stream entries.
pub(super) const SYNC: &str = r"
local p, cursor, limit, user = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local hmax = tonumber(ARGV[5])
local convs = redis.call('SMEMBERS', KEYS[1])
for _, g in ipairs(redis.call('SMEMBERS', KEYS[2])) do table.insert(convs, 'group:' .. g) end
local unread = cursor == ''
if #convs == 0 then return {unread and '0-0' or cursor, 0, 0, {}, {}} end
local lasts = hmget(KEYS[3], convs)
local starts
if unread then
  local fields = {}
  for i, c in ipairs(convs) do fields[i] = 'r:' .. c end
  starts = hmget(KEYS[4], fields)
end
local newest = unread and '0-0' or cursor
local picked, truncated = {}, 0
for i, c in ipairs(convs) do
  local last = lasts[i]
  if last then
    if less(newest, last) then newest = last end
    local from = unread and (starts[i] or '0-0') or cursor
    if less(from, last) then
      local key = p .. c
      -- The cursor is older than what a full stream (one that trims) kept.
      if not unread and truncated == 0 and redis.call('XLEN', key) >= hmax then
        local oldest = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
        if #oldest > 0 and less(cursor, oldest[1][1]) then truncated = 1 end
      end
      local kept, at = 0, from
      while kept <= limit do
        local want = limit + 1 - kept
        local entries = redis.call('XRANGE', key, '(' .. at, '+', 'COUNT', want)
        for _, e in ipairs(entries) do
          if not unread or sender(e) ~= user then
            local ms, seq = parse(e[1])
            table.insert(picked, {ms = ms, seq = seq, c = c, e = e})
            kept = kept + 1
          end
        end
        if #entries < want then break end
        at = entries[#entries][1]
      end
    end
  end
end
table.sort(picked, function(x, y) return x.ms < y.ms or (x.ms == y.ms and x.seq < y.seq) end)
local cs, es = {}, {}
for i = 1, math.min(limit, #picked) do
  table.insert(cs, picked[i].c)
  table.insert(es, picked[i].e)
end
local more = #picked > limit
local next = newest
if more then next = es[#es][1] end
return {next, more and 1 or 0, truncated, cs, es}
";

pub(super) const JOIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'notfound' end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 'member' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 'full' end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'toomany' end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
return 'added'
";

pub(super) const LEAVE: &str = r"
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[1], 'a:' .. ARGV[1])
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  local members = redis.call('ZRANGE', KEYS[2], 0, -1)
  local next = members[1]
  for _, m in ipairs(members) do
    if redis.call('HEXISTS', KEYS[1], 'a:' .. m) == 1 then
      next = m
      break
    end
  end
  if next then
    redis.call('HSET', KEYS[1], 'owner', next)
    redis.call('HDEL', KEYS[1], 'a:' .. next)
  end
end
return 1
";

/// Changes group KEYS[1] if it exists: ARGV[1] the new name (empty: unchanged); ARGV[2]
/// `set` (topic ARGV[3]), `clear` or `keep` the topic; ARGV[4] `public`, `private` or empty
/// (unchanged). Returns 1, or 0 for no such group.
pub(super) const GROUP_UPDATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[1]) end
if ARGV[2] == 'set' then redis.call('HSET', KEYS[1], 'topic', ARGV[3])
elseif ARGV[2] == 'clear' then redis.call('HDEL', KEYS[1], 'topic') end
if ARGV[4] == 'private' then redis.call('HSET', KEYS[1], 'visibility', 'private')
elseif ARGV[4] == 'public' then redis.call('HDEL', KEYS[1], 'visibility') end
return 1
";

/// Sets (ARGV[2] = 1) or clears the admin role of ARGV[1] in group KEYS[1], if it exists.
/// Returns 1, or 0 for no such group. Membership is checked before, on its own key.
pub(super) const GROUP_ADMIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'a:' .. ARGV[1], 1)
else redis.call('HDEL', KEYS[1], 'a:' .. ARGV[1]) end
return 1
";

/// Shared by the presence scripts: Redis time, and whether a node's lease runs.
pub(super) const PRESENCE_LIB: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(nodes, uid)
  local score = redis.call('ZSCORE', nodes, uid)
  return score and tonumber(score) >= now
end
-- Whether the user has a device on a live node. Entries of dead nodes are left for the
-- dead node's cleanup (REAP), which tells the chat who went offline: deleting them here
-- would make that cleanup miss the user.
local function online(key, nodes, except)
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if all[i] ~= except and live(nodes, all[i + 1]) then return true end
  end
  return false
end
";

/// Records socket ARGV[1] of user ARGV[3] on node ARGV[2]. KEYS: 1 the user's `presence`,
/// 2 `nodes`, 3 the node's `nodeusers`. Returns 1 if the user had no live socket, this one
/// included: a socket recorded twice is still one device.
pub(super) const CONNECT: &str = r"
local first = not online(KEYS[1], KEYS[2], '')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
if first then return 1 else return 0 end
";

pub(super) const DISCONNECT: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
if online(KEYS[1], KEYS[2], '') then return -1 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return tonumber(ARGV[3])
";

pub(super) const PRESENCE: &str = r"
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
/// 1..n if every one has a token, else none. Returns 1 or 0. `now_ms()` is Redis time, read
/// once per call. A bucket is a string `tokens ms`, which expires once it would be full again
/// (one `GET` and one `SET` per bucket: a hash took three commands).
pub(super) const RATE_LIB: &str = r"
local now_at
local function now_ms()
  if not now_at then
    local t = redis.call('TIME')
    now_at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_at
end
local function take(first, n, at)
  if n == 0 then return 1 end
  local now = now_ms()
  local tokens, ok = {}, 1
  for i = 1, n do
    local rate, burst = tonumber(ARGV[at + 2 * i - 1]), tonumber(ARGV[at + 2 * i])
    local tk, ts = burst, now
    local v = redis.call('GET', KEYS[first + i - 1])
    if v then
      local a, b = string.match(v, '^(%S+) (%S+)$')
      tk, ts = tonumber(a) or burst, tonumber(b) or now
    end
    tokens[i] = math.min(burst, tk + math.max(0, now - ts) / 1000 * rate)
    if tokens[i] < 1 then ok = 0 end
  end
  for i = 1, n do
    local rate, burst = tonumber(ARGV[at + 2 * i - 1]), tonumber(ARGV[at + 2 * i])
    local left = tokens[i] - ok
    local full_in = math.ceil((burst - left) / rate * 1000) + 1000
    redis.call('SET', KEYS[first + i - 1], string.format('%.6f %.0f', left, now), 'PX', full_in)
  end
  return ok
end
";

/// Token buckets KEYS[i] with rate ARGV[2i-1] and burst ARGV[2i], all or none.
pub(super) const RATE: &str = "return take(1, #KEYS, 0)";

/// Forgets the presence entries of a dead node: its users' sockets on it are gone. Entries
/// already count only while their node's lease runs; this removes them for good, records
/// `lastSeen` for users left with no device and adds them to the node's lost users. With
/// ARGV[5] = `take`, it then returns the lost users with their `lastSeen` and forgets them
/// (the chat announces them offline), whoever ran the cleanup first: the chat's lost-node
/// handling or the health checker's reaping. Idempotent.
/// KEYS: 1 the node's users, 2 its lost users. ARGV: 1 presence key prefix, 2 node uid,
/// 3 now (ms, or '' for Redis time), 4 the `lastseen` key, 5 `take` or ''.
pub(super) const REAP: &str = r"
local now = ARGV[3]
if now == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local p, uid = ARGV[1], ARGV[2]
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = p .. user
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
    redis.call('HSET', ARGV[4], user, now)
    redis.call('SADD', KEYS[2], user)
  end
end
redis.call('DEL', KEYS[1])
if ARGV[5] ~= 'take' then
  redis.call('PEXPIRE', KEYS[2], 600000)
  return {}
end
local out = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  table.insert(out, user)
  table.insert(out, redis.call('HGET', ARGV[4], user) or tostring(now))
end
redis.call('DEL', KEYS[2])
return out
";
