// The archive check of scripts/compose-smoke.sh (compose.yaml's PostgreSQL, docs/archive.md),
// with the official socket.io-client:
//
//   1. two users send SMOKE_HISTORY_MAX + 20 messages into their DM through one node; Redis
//      keeps the newest SMOKE_HISTORY_MAX (the conversation's stream, read with
//      SMOKE_REDIS_CMD), so the oldest 20 are only in PostgreSQL
//   2. one of them, on another node, pages `history` back to the beginning: every message
//      exactly once, in the order sent, pages running from Redis on into PostgreSQL
//   3. `search` finds the word only an early (trimmed) message has: that message alone; the
//      word every message has: all of them, newest first, across cursor pages; a user outside
//      the DM finds nothing
//   4. the archive queue drains: `chat_archive_backlog` 0 on every node
//
// Environment: SMOKE_NODES (the nodes' URLs, comma separated), SMOKE_HISTORY_MAX (the nodes'
// CHAT_HISTORY_MAX), SMOKE_REDIS_CMD (runs `redis-cli` on one of the Redis servers, e.g.
// `docker exec <id> redis-cli -p 6379`). Exits non-zero with a reason on the first failed
// check.

import { exec as execCb } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

const require = createRequire(new URL('../../e2e/package.json', import.meta.url));
const { io } = require('socket.io-client');
const exec = promisify(execCb);

const NODES = (process.env.SMOKE_NODES ?? 'http://127.0.0.1:3001,http://127.0.0.1:3002,http://127.0.0.1:3003').split(',');
const HISTORY_MAX = Number(process.env.SMOKE_HISTORY_MAX ?? '100');
const REDIS_CMD = process.env.SMOKE_REDIS_CMD ?? 'redis-cli -p 6379';
/** Messages sent past what Redis keeps: the ones only PostgreSQL has. */
const PAST = 20;
const SENT = HISTORY_MAX + PAST;
/** A history page: not a divisor of HISTORY_MAX, so one page holds both Redis and PostgreSQL. */
const PAGE = 30;
const ACK_TIMEOUT_MS = 5000;

const started = Date.now();
const log = (msg) => console.log(`[archive ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sockets = [];

function fail(msg) {
  console.error(`[archive ${((Date.now() - started) / 1000).toFixed(1)}s] FAILED: ${msg}`);
  for (const s of sockets) s.close();
  process.exit(1);
}

/** Polls `check` (returning a truthy value when done) until `ms` have passed. */
async function until(what, ms, check, every = 250) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) fail(`${what} within ${ms / 1000}s${last ? ` (last: ${last.message})` : ''}`);
    await sleep(every);
  }
}

/** Connects `user` to `url`; resolves with the socket and the node's id. */
function connect(url, user) {
  const socket = io(url, { auth: { user }, transports: ['websocket'], reconnection: false, timeout: 5000 });
  sockets.push(socket);
  socket.on('message', (_m, ack) => {
    if (typeof ack === 'function') ack();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${user}: no ready from ${url}`)), 10_000);
    socket.once('ready', (ready) => {
      clearTimeout(timer);
      resolve({ socket, user, url, node: ready.node });
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${user} at ${url}: ${err.message}`));
    });
  }).catch((err) => fail(err.message));
}

/** An acked event, its answer `{ok: true, ...}`; `rate_limited` throws (the caller retries). */
async function call(client, event, payload) {
  const res = await client.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
  if (res?.ok) return res;
  if (res?.error?.code === 'rate_limited') throw new Error(`${event} rate_limited`);
  fail(`${client.user}: ${event} ${JSON.stringify(payload)} answered ${JSON.stringify(res)}`);
}

/** Sends until acked (the same clientId: stored once); waits out the message rate limit. */
let rateLimited = 0;
async function send(from, to, body) {
  const clientId = randomUUID();
  for (const deadline = Date.now() + 30_000; ; ) {
    const res = await from.socket.timeout(ACK_TIMEOUT_MS).emitWithAck('message:send', { to, body, clientId });
    if (res?.ok) return res.message;
    if (res?.error?.code !== 'rate_limited' || Date.now() > deadline) fail(`send ${body}: ${JSON.stringify(res)}`);
    rateLimited++;
    await sleep(100);
  }
}

/** `chat_archive_*` of one node's /metrics: {written, backlog}. */
async function archiveMetrics(url) {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const value = (name) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`${url}/metrics has no ${name}: is CHAT_DATABASE_URL set?`);
    return Number(line.split(' ')[1]);
  };
  return { written: value('chat_archive_written_total'), backlog: value('chat_archive_backlog') };
}

const tag = Math.random().toString(36).slice(2, 8);
const [alice, bob, eve] = ['a', 'b', 'e'].map((n) => `archive-${n}-${tag}`);
// One word in every message, one word in each: alphanumeric, so one token to the parser.
const common = `all${tag}`;
const only = (i) => `only${tag}n${i}`;
const EARLY = 2;

// --- 1. more messages than Redis keeps, through one node -----------------------------------
const writerA = await connect(NODES[0], alice);
const writerB = await connect(NODES[0], bob);
let reader;
for (const url of NODES.slice(1)) {
  const tried = await connect(url, bob);
  if (tried.node !== writerA.node) {
    reader = tried;
    break;
  }
  tried.socket.close();
}
if (!reader) fail(`no node other than ${writerA.node} among ${NODES}`);
const outsider = await connect(reader.url, eve);
log(`${alice} and ${bob} send on ${writerA.node}; ${bob} reads on ${reader.node} (CHAT_HISTORY_MAX ${HISTORY_MAX})`);

const sent = [];
const t0 = Date.now();
for (let i = 0; i < SENT; i++) {
  const [from, to] = i % 2 ? [writerB, alice] : [writerA, bob];
  sent.push(await send(from, to, `archive ${common} ${only(i)} message ${i}`));
}
const sendSeconds = (Date.now() - t0) / 1000;
const conversation = sent[0].conversation;
if (sent.some((m) => m.conversation !== conversation)) fail(`messages in several conversations: ${[...new Set(sent.map((m) => m.conversation))]}`);

// Redis trimmed the oldest PAST: its stream starts at message PAST (read on a replica maybe:
// wait for it to catch up).
const key = `chat:conv:${conversation}`;
const redis = async (args) => (await exec(`${REDIS_CMD} ${args}`, { timeout: 5000 })).stdout.trim();
const kept = await until(`Redis to keep the newest ${HISTORY_MAX} of ${key}`, 10_000, async () => {
  const len = Number(await redis(`XLEN ${key}`));
  const first = (await redis(`XRANGE ${key} - + COUNT 1`)).split('\n')[0];
  if (len !== HISTORY_MAX || first !== sent[PAST].id) throw new Error(`XLEN ${len}, first ${first}`);
  return len;
});
log(`sent ${SENT} in ${sendSeconds.toFixed(1)}s (${rateLimited} rate_limited retries); Redis keeps ${kept}, from message ${PAST}`);

// --- 2. history from another node, back to the beginning -----------------------------------
/** Every message of the conversation, oldest first, and the number of pages. */
async function history(client) {
  const all = [];
  let before;
  for (let pages = 1; ; pages++) {
    const res = await call(client, 'history', { conversation, limit: PAGE, ...(before ? { before } : {}) });
    all.unshift(...res.messages);
    if (!res.hasMore || res.messages.length === 0) return { all, pages };
    if (pages > SENT) throw new Error(`history does not end after ${pages} pages`);
    before = res.messages[0].id;
  }
}
const want = sent.map((m) => m.id);
const pages = await until(`${bob}'s history on ${reader.node} to hold all ${SENT} in order`, 30_000, async () => {
  const { all, pages } = await history(reader);
  const got = all.map((m) => m.id);
  if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
    const missing = want.filter((id) => !got.includes(id));
    const twice = got.filter((id, i) => got.indexOf(id) !== i);
    throw new Error(`${got.length} messages, missing ${missing.length} (first ${missing[0]}), twice ${twice.length}`);
  }
  const early = all[EARLY];
  if (early.body !== `archive ${common} ${only(EARLY)} message ${EARLY}` || early.from !== alice) {
    throw new Error(`message ${EARLY} reads ${JSON.stringify(early)}`);
  }
  return pages;
});
log(`history on ${reader.node}: all ${SENT} once, in order, ${pages} pages of ${PAGE} (the oldest ${PAST} from PostgreSQL)`);

// --- 3. search ------------------------------------------------------------------------------
const hit = await until(`search to find "${only(EARLY)}" (message ${EARLY}, trimmed from Redis)`, 30_000, async () => {
  const { results } = await call(reader, 'search', { query: only(EARLY) });
  if (results.length !== 1) throw new Error(`${results.length} results`);
  return results[0];
}, 600);
if (hit.message.id !== sent[EARLY].id || hit.conversation.id !== conversation) {
  fail(`search for ${only(EARLY)} found ${JSON.stringify(hit)}, not ${sent[EARLY].id} in ${conversation}`);
}

/** Every result of `query` for `client`, following the cursor: ids, newest first, and pages. */
async function searchAll(client, query) {
  const ids = [];
  let cursor;
  for (let pages = 1; ; pages++) {
    const res = await call(client, 'search', { query, limit: 50, ...(cursor ? { cursor } : {}) });
    for (const r of res.results) {
      if (r.conversation.id !== conversation) throw new Error(`a result from ${r.conversation.id}`);
      ids.push(r.message.id);
    }
    if (!res.cursor) return { ids, pages };
    if (pages > SENT) throw new Error(`search does not end after ${pages} pages`);
    cursor = res.cursor;
  }
}
const newestFirst = [...want].reverse();
const every = await until(`search to find all ${SENT} messages with "${common}"`, 30_000, async () => {
  const found = await searchAll(writerA, common);
  if (found.ids.length !== SENT || found.ids.some((id, i) => id !== newestFirst[i])) {
    throw new Error(`${found.ids.length} results, ${found.ids.filter((id, i) => id !== newestFirst[i]).length} out of place`);
  }
  return found;
}, 1000);
const { results: stranger } = await call(outsider, 'search', { query: common });
if (stranger.length) fail(`${eve}, outside the DM, found ${stranger.length} of its messages`);
log(`search: "${only(EARLY)}" finds message ${EARLY} only; "${common}" all ${SENT}, newest first, in ${every.pages} pages; ${eve} (not in the DM) none`);

// --- 4. the queue drains --------------------------------------------------------------------
const metrics = await until('chat_archive_backlog 0 on every node', 30_000, async () => {
  const all = await Promise.all(NODES.map(archiveMetrics));
  return all.every((m) => m.backlog === 0) && all;
}, 500);
const written = metrics.reduce((n, m) => n + m.written, 0);
if (written < SENT) fail(`the nodes wrote ${written} messages to PostgreSQL, fewer than the ${SENT} sent here`);
log(`archive: backlog 0 on ${NODES.length} nodes, ${written} messages written (${metrics.map((m) => m.written).join(' + ')})`);

for (const s of sockets) s.close();
process.exit(0);
