// The checks of scripts/compose-smoke.sh (and a manual check of scripts/cluster.sh), with the
// official socket.io-client from e2e/node_modules:
//
//   1. the web page and the health checker answer; the registry (through nginx) lists the nodes
//   2. alice and bob each get a node from the registry (two different nodes), connect, chat
//   3. both keep sending (retrying with the same clientId until acked) while the Redis master
//      is stopped (SMOKE_FAILOVER_CMD); the Sentinels promote a replica
//   4. every acknowledged message is in the conversation's history exactly once, and was
//      delivered to the peer; the old master comes back as a replica (SMOKE_RESTART_CMD)
//
// Environment: SMOKE_REGISTRY (http://127.0.0.1:8080), SMOKE_WEB (http://127.0.0.1:3000, empty
// to skip), SMOKE_HEALTH (http://127.0.0.1:8090), SMOKE_MASTER_CMD (prints the master's "host
// port", e.g. `redis-cli -p 26379 sentinel get-master-addr-by-name mymaster`),
// SMOKE_FAILOVER_CMD, SMOKE_RESTART_CMD and SMOKE_ROLE_CMD (prints the restarted server's
// `ROLE`; both optional). Exits non-zero with a reason on the first failed check.

import { exec as execCb } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';

const require = createRequire(new URL('../../e2e/package.json', import.meta.url));
const { io } = require('socket.io-client');
const exec = promisify(execCb);

const env = (name, fallback) => process.env[name] ?? fallback;
const REGISTRY = env('SMOKE_REGISTRY', 'http://127.0.0.1:8080');
const WEB = env('SMOKE_WEB', 'http://127.0.0.1:3000');
const HEALTH = env('SMOKE_HEALTH', 'http://127.0.0.1:8090');
const MASTER_CMD = env('SMOKE_MASTER_CMD', 'redis-cli -p 26379 sentinel get-master-addr-by-name mymaster');
const FAILOVER_CMD = env('SMOKE_FAILOVER_CMD', '');
const RESTART_CMD = env('SMOKE_RESTART_CMD', '');
const ROLE_CMD = env('SMOKE_ROLE_CMD', '');
const NODES = Number(env('SMOKE_NODES', '3'));
/** Time between two sends of one user: under the default rate limit (10/s, bursts of 20). */
const SEND_EVERY_MS = 150;
const ACK_TIMEOUT_MS = 5000;

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (msg) => console.log(`[client ${elapsed()}] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(msg) {
  console.error(`[client ${elapsed()}] FAILED: ${msg}`);
  process.exit(1);
}

/** Polls `check` (returning a truthy value when done) until `ms` have passed. */
async function until(what, ms, check, every = 200) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) fail(`${what} within ${ms / 1000}s${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(every);
  }
}

async function getJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = await res.json().catch(() => null);
  return { status: res.status, body };
}

/** Browsers send *.localhost to this machine; Node asks DNS. Do as browsers do. */
function reachable(url) {
  const u = new URL(url);
  if (u.hostname === 'localhost' || u.hostname.endsWith('.localhost')) u.hostname = '127.0.0.1';
  return u.origin;
}

async function pick() {
  const { status, body } = await getJson(`${REGISTRY}/api/v1/servers/pick`);
  if (status !== 200 || typeof body?.url !== 'string') throw new Error(`pick answered ${status} ${JSON.stringify(body)}`);
  return body;
}

async function master() {
  const { stdout } = await exec(MASTER_CMD, { timeout: 5000 });
  const [host, port] = stdout.trim().split(/\s+/);
  if (!host || !port) throw new Error(`no master in ${JSON.stringify(stdout)}`);
  return `${host}:${port}`;
}

/** A user on the node the registry picks, recording every message it receives. */
async function connect(user, avoidNode) {
  let node;
  for (let i = 0; i < 10; i++) {
    node = await until('the registry picks a node', 30_000, pick);
    if (node.nodeId !== avoidNode) break;
  }
  if (node.nodeId === avoidNode) fail(`the registry picked ${avoidNode} for ${user} ten times`);
  const socket = io(reachable(node.url), { auth: { user }, reconnectionDelayMax: 1000, transports: ['websocket'] });
  const received = new Map();
  socket.on('message', (msg, ack) => {
    received.set(msg.id, msg);
    if (typeof ack === 'function') ack();
  });
  let disconnects = 0;
  socket.on('disconnect', () => disconnects++);
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${user}: no ready within 10s`)), 10_000);
    socket.once('ready', (r) => {
      clearTimeout(timer);
      resolve(r);
    });
    socket.once('connect_error', (err) => log(`${user}: connect_error ${err.message} (retrying)`));
  }).catch((err) => fail(err.message));
  // Where this device's sync starts: whatever is sent from now on reaches it live or by sync.
  const { cursor } = await syncFrom(socket, undefined);
  log(`${user} connected to ${ready.node} at ${node.url} (picked through ${REGISTRY})`);
  return { user, socket, node: ready.node, received, cursor, disconnects: () => disconnects };
}

/** Calls `sync` from `cursor` until `hasMore` is false: the messages and the last cursor. */
async function syncFrom(socket, cursor) {
  const messages = [];
  for (;;) {
    const res = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('sync', cursor ? { cursor } : {});
    if (!res?.ok) fail(`sync refused: ${JSON.stringify(res)}`);
    messages.push(...res.messages);
    cursor = res.cursor;
    if (!res.hasMore) return { messages, cursor };
  }
}

/** Sends until acked, with the same clientId, so a retry never stores the message twice. */
async function sendAcked(from, to, body, stats) {
  const clientId = randomUUID();
  const t0 = Date.now();
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await from.socket.timeout(ACK_TIMEOUT_MS).emitWithAck('message:send', { to, body, clientId });
    } catch {
      res = { ok: false, error: { code: 'timeout' } };
    }
    if (res?.ok) {
      stats.acked.push({ id: res.message.id, clientId, at: Date.now(), latency: Date.now() - t0 });
      return res.message;
    }
    const code = res?.error?.code ?? 'no answer';
    stats.retries.set(code, (stats.retries.get(code) ?? 0) + 1);
    if (!['unavailable', 'timeout', 'rate_limited'].includes(code)) fail(`${from.user} → ${to}: refused with ${code}: ${res?.error?.message}`);
    if (Date.now() - t0 > 60_000) fail(`${from.user} → ${to}: not acked within 60s (last: ${code}, ${attempt} attempts)`);
    await sleep(code === 'rate_limited' ? 500 : 100);
  }
}

/** Every message of a conversation, oldest first, paging back with `before`. */
async function history(socket, conversation) {
  const all = [];
  let before;
  for (;;) {
    const res = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('history', { conversation, limit: 100, ...(before ? { before } : {}) });
    if (!res?.ok) fail(`history refused: ${JSON.stringify(res)}`);
    all.unshift(...res.messages);
    if (!res.hasMore || res.messages.length === 0) return all;
    before = res.messages[0].id;
  }
}

// 1. The pieces answer.
if (WEB) {
  const res = await until('the web page answers', 30_000, async () => {
    const r = await fetch(`${WEB}/`, { redirect: 'manual', signal: AbortSignal.timeout(5000) });
    return r.status === 302 ? r : null;
  });
  log(`web page: / redirects to ${res.headers.get('location')}`);
  const page = await fetch(`${WEB}/?registry=${encodeURIComponent(REGISTRY)}`, { signal: AbortSignal.timeout(5000) });
  const html = await page.text();
  if (page.status !== 200 || !html.includes('id="app"')) fail(`web page answered ${page.status}`);
}
if (HEALTH) {
  const { status, body } = await until('the health checker answers', 30_000, () => getJson(`${HEALTH}/healthz`));
  if (status !== 200) fail(`health checker answered ${status}`);
  log(`health checker: ${JSON.stringify(body)}`);
}
const servers = await until(`the registry lists ${NODES} live nodes`, 60_000, async () => {
  const { status, body } = await getJson(`${REGISTRY}/api/v1/servers`);
  const live = (body?.servers ?? []).filter((s) => s.live && !s.draining);
  return status === 200 && live.length >= NODES ? live : null;
});
log(`registry: ${servers.map((s) => `${s.id} ${s.url}`).join(', ')}`);
const master0 = await until('the sentinels name a master', 30_000, master);
log(`sentinels: master is ${master0}`);

// 2. Two users on two nodes chat.
const alice = await connect('alice');
const bob = await connect('bob', alice.node);
const warm = { acked: [], retries: new Map() };
const hi = await sendAcked(alice, 'bob', 'hi bob', warm);
await until('bob receives alice\'s message on the other node', 10_000, () => bob.received.has(hi.id), 50);
const hey = await sendAcked(bob, 'alice', 'hey alice', warm);
await until('alice receives bob\'s message on the other node', 10_000, () => alice.received.has(hey.id), 50);
log(`chat across nodes: alice@${alice.node} ⇄ bob@${bob.node} ok`);

// 3. Traffic through a failover.
const stats = new Map([
  [alice, { acked: [], retries: new Map() }],
  [bob, { acked: [], retries: new Map() }],
]);
let sending = true;
const senders = [...stats].map(async ([user, s]) => {
  const peer = user === alice ? 'bob' : 'alice';
  for (let n = 1; sending; n++) {
    await sendAcked(user, peer, `${user.user} #${n}`, s);
    await sleep(SEND_EVERY_MS);
  }
});
const ackedCount = () => [...stats.values()].reduce((n, s) => n + s.acked.length, 0);

await until('messages flow before the failover', 10_000, () => ackedCount() >= 10, 50);
let failoverAt = null;
let newMaster = null;
if (FAILOVER_CMD) {
  log(`stopping the Redis master (${master0}): ${FAILOVER_CMD}`);
  failoverAt = Date.now();
  const stop = exec(FAILOVER_CMD, { timeout: 60_000 });
  newMaster = await until('the sentinels promote a replica', 60_000, async () => {
    const m = await master();
    return m !== master0 ? m : null;
  }, 250);
  const promotedAfter = (Date.now() - failoverAt) / 1000;
  log(`sentinels: new master ${newMaster} after ${promotedAfter.toFixed(1)}s`);
  await stop.catch((err) => fail(`failover command failed: ${err.message}`));
  const ackedAtPromotion = ackedCount();
  await until('messages flow after the failover', 30_000, () => ackedCount() >= ackedAtPromotion + 20, 50);
}
sending = false;
await Promise.all(senders);

// 4. Nothing acknowledged is lost, nothing is stored twice.
const acked = [...stats.values()].flatMap((s) => s.acked);
const conversation = 'dm:alice:bob';
const stored = await until('the history answers', 30_000, () => history(alice.socket, conversation));
const storedIds = new Set(stored.map((m) => m.id));
const lost = acked.filter((a) => !storedIds.has(a.id));
const perClientId = new Map();
for (const m of stored) if (m.clientId) perClientId.set(m.clientId, (perClientId.get(m.clientId) ?? 0) + 1);
const twice = [...perClientId].filter(([, n]) => n > 1);
// Delivered: received live, or by the peer's `sync` from where it started (the contract for
// a message whose live delivery a failover interrupted).
const live = (a) => (stats.get(alice).acked.includes(a) ? bob : alice).received.has(a.id);
const notLive = () => acked.filter((a) => !live(a));
const deadline = Date.now() + 10_000;
while (notLive().length && Date.now() < deadline) await sleep(100);
const synced = new Set();
for (const peer of [alice, bob]) for (const m of (await syncFrom(peer.socket, peer.cursor)).messages) synced.add(m.id);
const undelivered = notLive().filter((a) => !synced.has(a.id));

let gap = 0;
if (failoverAt) {
  // The longest time after the stop without any ack: how long the chat stalled.
  const times = [failoverAt, ...acked.map((a) => a.at).filter((t) => t > failoverAt)].sort((x, y) => x - y);
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
}
const slowest = Math.max(...acked.map((a) => a.latency));
const retries = new Map();
for (const s of stats.values()) for (const [k, v] of s.retries) retries.set(k, (retries.get(k) ?? 0) + v);
log(
  `messages: ${acked.length} acked, ${lost.length} lost, ${twice.length} stored twice, ` +
    `${acked.length - notLive().length} delivered live, ${notLive().length - undelivered.length} by sync, ` +
    `${undelivered.length} not delivered; retries: ${JSON.stringify(Object.fromEntries(retries))}; ` +
    `slowest ack ${(slowest / 1000).toFixed(1)}s` +
    (failoverAt ? `; longest time without acks after the stop ${(gap / 1000).toFixed(1)}s` : ''),
);
if (notLive().length && failoverAt) {
  const when = notLive().map((a) => `${a.id} acked ${((a.at - failoverAt) / 1000).toFixed(1)}s after the stop`);
  log(`not delivered live (found by sync): ${when.join('; ')}`);
}
log(`sockets: alice disconnected ${alice.disconnects()}×, bob ${bob.disconnects()}×`);
if (lost.length) fail(`acked messages missing from the history: ${lost.map((a) => a.id).join(', ')}`);
if (twice.length) fail(`messages stored twice: ${twice.map(([c]) => c).join(', ')}`);
if (undelivered.length) fail(`acked messages never delivered: ${undelivered.map((a) => a.id).join(', ')}`);

// The old master returns as a replica of the new one; the chat still works.
if (RESTART_CMD) {
  log(`starting the old master again: ${RESTART_CMD}`);
  await exec(RESTART_CMD, { timeout: 60_000 }).catch((err) => fail(`restart command failed: ${err.message}`));
  if (ROLE_CMD) {
    const [host, port] = newMaster.split(':');
    await until('the old master rejoins as a replica', 60_000, async () => {
      const [role, mhost, mport] = (await exec(ROLE_CMD, { timeout: 5000 })).stdout.trim().split(/\s+/);
      return role === 'slave' && mhost === host && mport === port;
    }, 500);
    log(`old master is now a replica of ${newMaster}`);
  }
  const last = await sendAcked(alice, 'bob', 'after the old master came back', warm);
  await until('bob receives it', 10_000, () => bob.received.has(last.id), 50);
  log('chat after the old master came back: ok');
}

alice.socket.close();
bob.socket.close();
log('all checks passed');
process.exit(0);
