// Both Engine.IO transports, and the polling → WebSocket upgrade, carry the chat.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, closeAll, as, uid, dmId, send, record, waitFor, withDeadline } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
});
afterEach(closeAll);
after(async () => {
  closeAll();
  await server?.stop();
});

// A WebSocket-only client and a polling-only client exchange DMs in both directions.
test('websocket-only and polling-only clients chat both ways', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const ws = await connect(server.url, as(alice), { transports: ['websocket'] });
  const poll = await connect(server.url, as(bob), { transports: ['polling'] });
  assert.equal(ws.io.engine.transport.name, 'websocket');
  assert.equal(poll.io.engine.transport.name, 'polling');
  assert.deepEqual(ws.ready.user, alice);
  assert.equal(typeof ws.ready.node, 'string');
  assert.equal(poll.ready.user, bob);

  const atBob = record(poll, 'message');
  const m1 = await send(ws, { to: bob, body: 'over websocket' });
  assert.deepEqual(await atBob.waitFor((m) => m.id === m1.id), m1);

  const atAlice = record(ws, 'message');
  const m2 = await send(poll, { to: alice, body: 'over polling' });
  const got = await atAlice.waitFor((m) => m.id === m2.id);
  assert.deepEqual(got, m2);
  assert.equal(got.conversation, dmId(alice, bob));
  assert.equal(got.from, bob);
  assert.equal(got.body, 'over polling');

  // Still on the transports they asked for.
  assert.equal(poll.io.engine.transport.name, 'polling');
  assert.equal(ws.io.engine.transport.name, 'websocket');
});

// A default client starts on polling, upgrades to WebSocket, and keeps chatting after it.
test('default client upgrades from polling to websocket and still chats', async () => {
  const carol = uid('carol');
  const dave = uid('dave');
  let upgraded;
  const sock = await connect(server.url, as(carol), {
    onCreate: (s) => {
      assert.equal(s.io.engine.transport.name, 'polling');
      upgraded = withDeadline(
        new Promise((resolve) => s.io.engine.once('upgrade', (t) => resolve(t.name))),
        5000,
        'engine "upgrade"',
      );
    },
  });
  assert.equal(await upgraded, 'websocket');
  assert.equal(sock.io.engine.transport.name, 'websocket');

  const other = await connect(server.url, as(dave), { transports: ['polling'] });
  const atDave = record(other, 'message');
  const m = await send(sock, { to: dave, body: 'after upgrade' });
  assert.deepEqual(await atDave.waitFor((x) => x.id === m.id), m);

  const back = waitFor(sock, 'message', (x) => x.from === dave);
  const r = await send(other, { to: carol, body: 'reply' });
  assert.deepEqual(await back, r);
});

// Many messages over polling arrive complete and in order (polling batches packets).
test('polling client receives a burst in send order', async () => {
  const erin = uid('erin');
  const finn = uid('finn');
  const sender = await connect(server.url, as(erin), { transports: ['websocket'] });
  const receiver = await connect(server.url, as(finn), { transports: ['polling'] });
  const got = record(receiver, 'message');
  const sent = [];
  for (let i = 0; i < 10; i++) sent.push(await send(sender, { to: finn, body: `n${i}` }));
  await got.waitForCount(() => true, 10);
  assert.deepEqual(
    got.events.map((m) => m.body),
    sent.map((m) => m.body),
  );
});
