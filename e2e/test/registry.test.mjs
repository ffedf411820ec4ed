// The registry in front of a cluster: clients pick a node through it, and when their node
// drains they ask again, land on another node and lose nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  startServer, startRedis, freePort, REGISTRY_BIN, record, eventually, uid, withDeadline,
  closeAll, HIGH_LIMITS,
} from './helpers.mjs';

after(closeAll);

async function pick(registry) {
  const res = await fetch(`${registry.url}/api/v1/servers/pick`);
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

/** Connects through the registry: asks for a node, connects there, resolves on `ready`. */
async function connectPicked(registry, user, opts = {}) {
  const { url } = await pick(registry);
  const socket = io(url, { auth: { user }, forceNew: true, reconnection: false, ...opts });
  await withDeadline(
    new Promise((resolve, reject) => {
      socket.once('ready', resolve);
      socket.once('connect_error', reject);
    }),
    5000,
    `connect to ${url}`,
  );
  return { socket, url };
}

// SIGTERM a node: its clients get `drain`, ask the registry again, are sent to another node
// (the draining one is skipped), and `sync` with their cursor shows nothing lost.
test('drain: clients move to another node through the registry and lose nothing', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const prefix = `reg${Math.random().toString(16).slice(2, 8)}:`;
  const base = { CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: prefix, ...HIGH_LIMITS };
  const nodes = [];
  for (const name of ['a', 'b']) {
    const port = await freePort();
    nodes.push(
      await startServer({
        ...base,
        CHAT_NODE_ID: name,
        CHAT_LISTEN: `127.0.0.1:${port}`,
        CHAT_PUBLIC_URL: `http://127.0.0.1:${port}`,
        CHAT_DRAIN_TIMEOUT: '5s',
      }),
    );
  }
  t.after(() => Promise.all(nodes.map((n) => n.stop())));
  const registry = await startServer(
    { CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: prefix },
    { bin: REGISTRY_BIN, listeningMessage: 'registry listening' },
  );
  t.after(() => registry.stop());
  await eventually(async () => {
    const { servers } = await (await fetch(`${registry.url}/api/v1/servers`)).json();
    return servers.filter((s) => s.live).length === 2;
  }, { timeoutMs: 10000, what: 'both nodes registered' });

  const alice = uid('alice');
  const bob = uid('bob');
  const a = await connectPicked(registry, alice, { transports: ['websocket'] });
  const node = nodes.find((n) => n.url === a.url);
  assert.ok(node, `picked ${a.url}, not one of ours`);
  const other = nodes.find((n) => n !== node);
  const b = io(other.url, { auth: { user: bob }, forceNew: true, reconnection: false });
  await withDeadline(new Promise((r) => b.once('ready', r)), 5000, 'bob ready');
  t.after(() => { a.socket.close(); b.close(); });

  const first = await a.socket.timeout(5000).emitWithAck('sync', {});
  let cursor = first.cursor;
  const seen = new Map();
  const onMessage = (m, ack) => { seen.set(m.clientId, (seen.get(m.clientId) ?? 0) + 1); ack?.(); };
  a.socket.on('message', onMessage);

  const acked = [];
  let n = 0;
  const sendOne = async () => {
    const clientId = `m${n++}`;
    const res = await b.timeout(5000).emitWithAck('message:send', { to: alice, body: clientId, clientId });
    assert.equal(res.ok, true, JSON.stringify(res));
    acked.push(clientId);
  };
  for (let i = 0; i < 5; i++) await sendOne();

  const drained = record(a.socket, 'drain');
  node.proc.kill('SIGTERM');
  assert.deepEqual(await drained.waitFor(), { reconnect: true });
  for (let i = 0; i < 5; i++) await sendOne(); // while alice's node drains

  // What a client does on `drain`: ask the registry again and move.
  a.socket.off('message', onMessage);
  a.socket.close();
  const moved = await connectPicked(registry, alice, { transports: ['polling'] });
  assert.equal(moved.url, other.url, 'the registry sent alice back to the draining node');
  moved.socket.on('message', onMessage);
  t.after(() => moved.socket.close());
  for (let i = 0; i < 5; i++) await sendOne();

  for (;;) {
    const page = await moved.socket.timeout(5000).emitWithAck('sync', { cursor });
    assert.equal(page.ok, true);
    for (const m of page.messages) {
      if (!seen.has(m.clientId)) seen.set(m.clientId, 1);
    }
    cursor = page.cursor;
    if (!page.hasMore) break;
  }
  const lost = acked.filter((id) => !seen.has(id));
  assert.deepEqual(lost, [], 'acknowledged but never delivered');
  for (const [id, count] of seen) assert.equal(count, 1, `${id} delivered ${count} times`);
  assert.equal(acked.length, 15);
  assert.equal((await withDeadline(node.exited, 15000, 'drained node exit')).code, 0);
});
