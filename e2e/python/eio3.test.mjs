// python-socketio 4.x (Socket.IO protocol v4, Engine.IO 3) chats with a socket.io-client 4.x
// client across two nodes started with CHAT_ALLOW_EIO3=true, over WebSocket and polling.
// Needs the client's virtualenv: `python3 -m venv e2e/python/.venv && e2e/python/.venv/bin/pip
// install -r e2e/python/requirements.txt` (scripts/test.sh does it), or PYTHON_SOCKETIO4 set to
// a Python that has python-socketio 4.x.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, startRedis, connect, closeAll, as, uid, dmId, send, record, withDeadline,
  HIGH_LIMITS,
} from '../test/helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.PYTHON_SOCKETIO4 ?? path.join(here, '.venv', 'bin', 'python');
const CLIENT = path.join(here, 'chat_client.py');

let redis;
let nodes = [];
before(async () => {
  assert.ok(existsSync(PYTHON), `no Python with python-socketio 4.x at ${PYTHON} (see this file's head)`);
  redis = await startRedis();
  const env = {
    ...HIGH_LIMITS,
    CHAT_ALLOW_EIO3: 'true',
    CHAT_REDIS_URL: redis.url,
    CHAT_REDIS_PREFIX: `e2e${randomBytes(4).toString('hex')}:`,
  };
  nodes = await Promise.all([startServer(env), startServer(env)]);
});
afterEach(closeAll);
after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

/**
 * Runs the Python client; `lines.next(key)` resolves with the payload of its next output line
 * that has `key`, `done` with its exit code.
 */
function runClient(...args) {
  const proc = spawn(PYTHON, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const seen = [];
  const waiters = [];
  const stderr = [];
  createInterface({ input: proc.stderr }).on('line', (l) => stderr.push(l));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    seen.push(JSON.parse(line));
    for (const w of waiters.splice(0)) w();
  });
  const done = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  const next = (key) => {
    const find = () => seen.find((o) => key in o)?.[key];
    const found = new Promise((resolve) => {
      const check = () => (find() !== undefined ? resolve(find()) : waiters.push(check));
      check();
    });
    const failed = done.then((code) => {
      throw new Error(`python client exited (${code}) before "${key}":\n${stderr.join('\n')}`);
    });
    return withDeadline(Promise.race([found, failed]), 15000, `python "${key}"`);
  };
  return { proc, next, done: withDeadline(done, 15000, 'python client to exit') };
}

for (const transport of ['websocket', 'polling']) {
  // The Python client on node 0 sends (acked, delivered live to the 4.x client on node 1), gets
  // `bad_request` for an empty body, and receives the 4.x client's reply live.
  test(`python-socketio 4.x over ${transport} chats with 4.x across nodes`, async () => {
    const py = uid('py');
    const cur = uid('cur');
    const b = await connect(nodes[1].url, as(cur));
    const atCur = record(b, 'message', { ack: true });
    const client = runClient(nodes[0].url, py, transport, cur);
    try {
      const ready = await client.next('ready');
      assert.equal(ready.user, py);
      assert.notEqual(ready.node, b.ready.node, 'the clients are on two nodes');
      const sent = await client.next('sent');
      assert.equal(sent.ok, true, JSON.stringify(sent));
      assert.equal(sent.message.conversation, dmId(py, cur));
      assert.deepEqual(await atCur.waitFor((m) => m.id === sent.message.id), sent.message);
      const empty = await client.next('empty');
      assert.equal(empty.error.code, 'bad_request');
      const reply = await send(b, { to: py, body: 'from 4.x' });
      assert.deepEqual(await client.next('message'), reply);
      assert.equal(await client.done, 0);
    } finally {
      client.proc.kill();
    }
  });
}
