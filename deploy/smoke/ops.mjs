// The operations checks of scripts/compose-smoke.sh, with the official socket.io-client:
//
//   1. the nginx ip_hash front (compose profile iphash): a long-polling client and a WebSocket
//      client connect through its one URL, stay on their node (each poll reaches the node
//      that holds the session: sticky), and chat with a client connected straight to another
//      node
//   2. Prometheus: every scrape target is up, the alert rules are loaded, and the messages
//      just sent show in `chat_messages_stored_total`
//
// Environment: SMOKE_FRONT (http://127.0.0.1:8000), SMOKE_NODES (the nodes' URLs, comma
// separated), SMOKE_PROMETHEUS (http://127.0.0.1:9090). Exits non-zero with a reason on the
// first failed check.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../e2e/package.json', import.meta.url));
const { io } = require('socket.io-client');

const FRONT = process.env.SMOKE_FRONT ?? 'http://127.0.0.1:8000';
const NODES = (process.env.SMOKE_NODES ?? 'http://127.0.0.1:3001,http://127.0.0.1:3002,http://127.0.0.1:3003').split(',');
const PROMETHEUS = process.env.SMOKE_PROMETHEUS ?? 'http://127.0.0.1:9090';
/** Targets compose.yaml's Prometheus scrapes: 3 nodes, 2 registries, 1 health checker. */
const TARGETS = 6;

const started = Date.now();
const log = (msg) => console.log(`[ops ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sockets = [];

function fail(msg) {
  console.error(`[ops] FAILED: ${msg}`);
  for (const s of sockets) s.close();
  process.exit(1);
}

async function until(what, ms, check, every = 250) {
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

/** Connects `user` to `url` over `transports`; resolves with the socket and its `ready`. */
function connect(url, user, transports) {
  const socket = io(url, { auth: { user }, transports, reconnection: false, timeout: 5000 });
  sockets.push(socket);
  socket.received = [];
  socket.disconnects = [];
  socket.on('message', (m, ack) => {
    socket.received.push(m);
    if (typeof ack === 'function') ack();
  });
  socket.on('disconnect', (reason) => socket.disconnects.push(reason));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${user}: no ready from ${url}`)), 10_000);
    socket.once('ready', (ready) => {
      clearTimeout(timer);
      resolve({ socket, node: ready.node });
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${user} at ${url}: ${err.message}`));
    });
  });
}

async function send(socket, to, body) {
  const ack = await socket.timeout(5000).emitWithAck('message:send', { to, body });
  if (!ack?.ok) fail(`send ${body}: ${JSON.stringify(ack)}`);
  return ack.message;
}

const tag = Math.random().toString(36).slice(2, 8);
const [poller, websocket, direct] = ['poll', 'ws', 'direct'].map((n) => `${n}-${tag}`);

/** `chat_messages_stored_total` summed over the nodes' own /metrics, now. */
async function storedNow() {
  let sum = 0;
  for (const url of NODES) {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const line = text.split('\n').find((l) => l.startsWith('chat_messages_stored_total '));
    sum += Number(line?.split(' ')[1] ?? 0);
  }
  return sum;
}

// --- 1. the ip_hash front -------------------------------------------------------------------
const storedBefore = await storedNow();
const a = await connect(FRONT, poller, ['polling']).catch((e) => fail(e.message));
const b = await connect(FRONT, websocket, ['websocket']).catch((e) => fail(e.message));
log(`through the front: ${poller} (polling) on ${a.node}, ${websocket} (websocket) on ${b.node}`);
if (a.node !== b.node) fail(`one client address went to two nodes (${a.node}, ${b.node}): ip_hash is not sticky`);
let c;
for (const url of NODES) {
  const tried = await connect(url, direct, ['websocket']).catch((e) => fail(e.message));
  if (tried.node !== a.node) {
    c = tried;
    break;
  }
  tried.socket.close();
}
if (!c) fail(`no node other than ${a.node} among ${NODES}`);
log(`${direct} straight to ${c.node}`);
// Enough round trips that a poll landing on another node would break the session.
const sent = [];
for (let i = 0; i < 10; i++) {
  sent.push((await send(a.socket, direct, `poll ${i}`)).id);
  sent.push((await send(b.socket, direct, `ws ${i}`)).id);
}
await until(`${direct} to receive all 20`, 10_000, () => sent.every((id) => c.socket.received.some((m) => m.id === id)));
const reply = await send(c.socket, poller, 'back through the front');
await until(`${poller} (polling) to receive the reply`, 10_000, () => a.socket.received.some((m) => m.id === reply.id));
if (a.socket.io.engine.transport.name !== 'polling') fail(`the poller upgraded to ${a.socket.io.engine.transport.name}`);
if (a.socket.disconnects.length || b.socket.disconnects.length) {
  fail(`a client through the front was disconnected: ${a.socket.disconnects} ${b.socket.disconnects}`);
}
log('front: 21 messages across nodes, polling session kept on its node');
for (const s of sockets) s.close();

// --- 2. Prometheus --------------------------------------------------------------------------
async function prom(path) {
  const res = await fetch(`${PROMETHEUS}${path}`, { signal: AbortSignal.timeout(5000) });
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`${path}: ${JSON.stringify(body)}`);
  return body.data;
}

const targets = await until(`all ${TARGETS} scrape targets up`, 60_000, async () => {
  const { activeTargets } = await prom('/api/v1/targets');
  const down = activeTargets.filter((t) => t.health !== 'up');
  if (activeTargets.length !== TARGETS || down.length) {
    throw new Error(`${activeTargets.length} targets, down: ${down.map((t) => `${t.scrapeUrl} ${t.lastError}`).join('; ')}`);
  }
  return activeTargets;
});
log(`prometheus: ${targets.length} targets up (${[...new Set(targets.map((t) => t.labels.job))].join(', ')})`);
const { groups } = await prom('/api/v1/rules');
const rules = groups.flatMap((g) => g.rules);
// Every rule of the file compose.yaml mounts.
const defined = readFileSync(new URL('../prometheus/alerts.yml', import.meta.url), 'utf8').match(/^\s*- alert:/gm).length;
if (rules.length !== defined || !rules.some((r) => r.name === 'ChatArchiveLagging')) {
  fail(`${rules.length} alert rules loaded, deploy/prometheus/alerts.yml has ${defined}: ${rules.map((r) => r.name)}`);
}
log(`prometheus: ${rules.length} alert rules loaded`);
// The nodes counted `storedBefore` before the front's 21 messages: a scrape after them has both.
const stored = await until(`chat_messages_stored_total to reach ${storedBefore} + 21`, 30_000, async () => {
  const { result } = await prom(`/api/v1/query?query=${encodeURIComponent('sum(chat_messages_stored_total)')}`);
  const v = Number(result[0]?.value[1] ?? 0);
  return v >= storedBefore + 21 && v;
});
log(`prometheus: sum(chat_messages_stored_total) = ${stored} (the nodes had ${storedBefore} before the front's 21)`);
