// Graceful shutdown: SIGTERM drains clients, refuses new work, and exits 0.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, connectError, closeAll, as, uid, send, expectError, record,
  waitFor, waitDisconnect, withDeadline,
} from './helpers.mjs';

afterEach(closeAll);

// On SIGTERM clients get `drain`, sends answer unavailable, new connections are refused with
// unavailable, and after CHAT_DRAIN_TIMEOUT the remaining clients are closed and the exit is 0.
test('SIGTERM drains: drain event, unavailable, refused connects, exit 0', async (t) => {
  const server = await startServer({ CHAT_DRAIN_TIMEOUT: '3s' });
  t.after(() => server.stop());
  const alice = uid('alice');
  const bob = uid('bob');
  const ws = await connect(server.url, as(alice), { transports: ['websocket'] });
  const poll = await connect(server.url, as(bob), { transports: ['polling'] });
  await send(ws, { to: bob, body: 'before shutdown' });
  const drains = [record(ws, 'drain'), record(poll, 'drain')];
  const wsGone = waitDisconnect(ws, 10000);
  const pollGone = waitDisconnect(poll, 10000);

  const termAt = Date.now();
  server.proc.kill('SIGTERM');
  for (const d of drains) assert.deepEqual(await d.waitFor(), { reconnect: true });

  // The in-memory server would lose anything stored now: it refuses it.
  await expectError(ws, 'message:send', { to: bob, body: 'during drain' }, 'unavailable');
  await expectError(poll, 'message:send', { to: alice, body: 'during drain' }, 'unavailable');
  const refused = await connectError(server.url, as(uid('late')));
  assert.match(refused, /^unavailable/, refused);

  await wsGone;
  await pollGone;
  const { code, signal } = await withDeadline(server.exited, 10000, 'server exit');
  assert.equal(signal, null);
  assert.equal(code, 0);
  // The clients that stayed were closed by the server at the drain deadline, not before.
  assert.ok(Date.now() - termAt >= 2500, `exited after ${Date.now() - termAt} ms`);
});

// Clients that leave on `drain` let the server exit well before the drain timeout.
test('server exits early once drained clients have left', async (t) => {
  const server = await startServer({ CHAT_DRAIN_TIMEOUT: '30s' });
  t.after(() => server.stop());
  const socks = [
    await connect(server.url, as(uid('a')), { transports: ['websocket'] }),
    await connect(server.url, as(uid('b')), { transports: ['polling'] }),
    await connect(server.url, as(uid('c'))),
  ];
  for (const s of socks) s.on('drain', () => s.close());
  const drained = socks.map((s) => waitFor(s, 'drain'));
  const termAt = Date.now();
  server.proc.kill('SIGTERM');
  await Promise.all(drained);
  const { code } = await withDeadline(server.exited, 10000, 'server exit well before the 30 s drain timeout');
  assert.equal(code, 0);
  assert.ok(Date.now() - termAt < 10000);
});

// A bad setting stops the server at start with an error that names the variable.
test('bad configuration fails at start naming the variable', async () => {
  for (const [name, value] of [['CHAT_RATE_MESSAGES', 'lots'], ['CHAT_DRAIN_TIMEOUT', 'soon'], ['CHAT_MAX_BODY', '-1']]) {
    await assert.rejects(startServer({ [name]: value }), (err) => {
      assert.match(err.message, /exited before listening \(code [1-9]/);
      assert.ok(err.message.includes(name), `error does not name ${name}:\n${err.message}`);
      return true;
    });
  }
});

// /healthz answers 200 while serving and stops answering 200 once draining.
test('healthz reflects serving and draining', async (t) => {
  const server = await startServer({ CHAT_DRAIN_TIMEOUT: '2s' });
  t.after(() => server.stop());
  const res = await fetch(`${server.url}/healthz`);
  assert.equal(res.status, 200);
  const sock = await connect(server.url, as(uid('holder')));
  const drained = waitFor(sock, 'drain');
  server.proc.kill('SIGTERM');
  await drained;
  const during = await fetch(`${server.url}/healthz`);
  assert.notEqual(during.status, 200);
  sock.close();
  assert.equal((await withDeadline(server.exited, 10000, 'server exit')).code, 0);
});

// A client that never finishes its HTTP request cannot keep a stopping server alive: once the
// drain is over, open requests get a short grace period and the process exits 0.
test('an unfinished request does not hold up the exit', async (t) => {
  const server = await startServer({ CHAT_DRAIN_TIMEOUT: '1s' });
  t.after(() => server.stop());
  const net = await import('node:net');
  const [host, port] = server.addr.split(':');
  const sock = net.connect({ host, port: Number(port) });
  // The exiting server may reset the connection; only the exit is under test.
  sock.on('error', () => {});
  t.after(() => sock.destroy());
  await new Promise((resolve) => sock.once('connect', resolve));
  // Headers never finished.
  sock.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`);
  const exited = new Promise((resolve) => server.proc.once('exit', (code) => resolve(code)));
  server.proc.kill('SIGTERM');
  assert.equal(await withDeadline(exited, 8000, 'exit after SIGTERM'), 0);
});
