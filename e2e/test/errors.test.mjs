// Error codes, limits and robustness against malformed or abusive clients (default limits).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, closeAll, as, uid, dmId, send, emitAck, expectError, expectErrors, record,
  waitDisconnect, eventually,
} from './helpers.mjs';

let server;
before(async () => {
  // Default rate limits on purpose: message:send 10/s burst 20, acked events 30/s burst 60.
  server = await startServer();
});
afterEach(closeAll);
after(async () => {
  closeAll();
  await server?.stop();
});

const ACKED_EVENTS = [
  'message:send', 'group:create', 'group:join', 'group:leave', 'group:members', 'history', 'sync',
  'conversations', 'read', 'presence:subscribe', 'block', 'unblock',
];

// Payloads of the wrong type, or missing, are bad_request for message:send, and never disconnect.
test('message:send with wrong types is bad_request', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const cases = [
    { to: bob, body: 5 },
    { to: bob, body: null },
    { to: bob, body: ['hi'] },
    { to: 7, body: 'hi' },
    { to: bob },
    { body: 'to nobody' },
    { to: bob, group: 'G1', body: 'both targets' },
    { to: 'not a user', body: 'hi' },
    { to: bob, body: 'hi', clientId: 42 },
    { to: bob, body: 'hi', clientId: '' },
    'hello',
    42,
    null,
    true,
    [bob, 'hi'],
    [{ to: bob, body: 'hi' }],
    // A binary attachment (a Socket.IO BINARY_EVENT) is not a string body.
    { to: bob, body: Buffer.from('hi') },
  ];
  await expectErrors(sa, [...cases, undefined].map((p) => ['message:send', p, 'bad_request']));
  assert.ok(sa.connected);
  await send(sa, { to: bob, body: 'still fine' });
});

// Every acked event answers bad_request to a payload of the wrong type.
test('every acked event rejects wrong payload types with bad_request', async () => {
  const sa = await connect(server.url, as(uid('alice')));
  const cases = ACKED_EVENTS.flatMap((event) => ['text', 12, [1, 2]].map((p) => [event, p, 'bad_request']));
  await expectErrors(sa, cases);
  assert.ok(sa.connected);
});

// Unknown fields are bad_request ("missing or unknown field"), so typos do not pass silently.
test('unknown fields are bad_request', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const g = (await emitAck(sa, 'group:create', { name: 'Fields' })).group;
  await expectErrors(sa, [
    ['message:send', { to: bob, body: 'hi', extra: true }, 'bad_request'],
    ['message:send', { to: bob, text: 'hi' }, 'bad_request'],
    ['group:create', { name: 'X', member: [bob] }, 'bad_request'],
    ['group:join', { group: g.id, as: 'owner' }, 'bad_request'],
    ['history', { conversation: dmId(alice, bob), limt: 5 }, 'bad_request'],
    ['sync', { cursr: 'x' }, 'bad_request'],
    ['conversations', { all: true }, 'bad_request'],
    ['read', { conversation: dmId(alice, bob), messageId: '1-0', also: 1 }, 'bad_request'],
    ['presence:subscribe', { users: [bob], more: [] }, 'bad_request'],
    ['block', { user: bob, forever: true }, 'bad_request'],
  ]);
  // Nothing was stored by the refused send.
  const hist = await emitAck(sa, 'history', { conversation: dmId(alice, bob) });
  assert.deepEqual(hist.messages, []);
});

// Body limits: empty is bad_request, over 4000 characters is too_large, 4000 (even 2-byte) is fine.
test('body length limits', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  await expectError(sa, 'message:send', { to: bob, body: '' }, 'bad_request');
  await expectError(sa, 'message:send', { to: bob, body: 'x'.repeat(4001) }, 'too_large');
  await expectError(sa, 'message:send', { to: bob, body: 'é'.repeat(4001) }, 'too_large');
  await expectError(sa, 'message:send', { to: bob, body: 'x'.repeat(20000) }, 'too_large');
  const g = (await emitAck(sa, 'group:create', { name: 'Limits' })).group;
  await expectError(sa, 'message:send', { group: g.id, body: 'y'.repeat(4001) }, 'too_large');
  const max = await send(sa, { to: bob, body: 'x'.repeat(4000) });
  assert.equal(max.body.length, 4000);
  const wide = await send(sa, { to: bob, body: 'é'.repeat(4000) });
  assert.equal(wide.body, 'é'.repeat(4000));
});

// Events nobody handles answer bad_request when they ask for an ack, and are ignored otherwise.
test('unknown events', async () => {
  const sa = await connect(server.url, as(uid('alice')));
  await expectError(sa, 'no:such:event', { a: 1 }, 'bad_request');
  await expectError(sa, 'message', { to: 'x', body: 'y' }, 'bad_request');
  sa.emit('no:such:event', { a: 1 });
  sa.emit('another', 'thing');
  assert.deepEqual((await emitAck(sa, 'conversations', {})).ok, true);
  assert.ok(sa.connected);
});

// A DM to yourself is bad_request.
test('dm to yourself is bad_request', async () => {
  const alice = uid('alice');
  const sa = await connect(server.url, as(alice));
  await expectError(sa, 'message:send', { to: alice, body: 'note to self' }, 'bad_request');
});

// A flood of sends is partly rate_limited, the socket stays open, and sending works again later.
test('message flood is rate_limited, then recovers', async () => {
  const alice = uid('flooder');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const results = await Promise.all(
    Array.from({ length: 60 }, (_, i) => emitAck(sa, 'message:send', { to: bob, body: `spam ${i}` })),
  );
  const ok = results.filter((r) => r.ok).length;
  const limited = results.filter((r) => r.error?.code === 'rate_limited').length;
  assert.equal(ok + limited, 60, JSON.stringify(results.filter((r) => !r.ok && r.error?.code !== 'rate_limited')));
  assert.ok(limited > 0, 'some sends are rate_limited');
  assert.ok(ok >= 1 && ok < 60, `ok ${ok}`);
  assert.ok(sa.connected);
  // Bucket refills at 10/s: a send succeeds again soon.
  await eventually(async () => (await emitAck(sa, 'message:send', { to: bob, body: 'calm now' })).ok, {
    timeoutMs: 5000, intervalMs: 200, what: 'a send to succeed after the flood',
  });
});

// The message limit is per user: two devices share one bucket.
test('rate limit is shared across a user\'s devices', async () => {
  const alice = uid('twin');
  const bob = uid('bob');
  const d1 = await connect(server.url, as(alice));
  const d2 = await connect(server.url, as(alice), { transports: ['polling'] });
  // 15 per device is under the burst of 20 for one socket, 30 together are over it.
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) => emitAck(i % 2 ? d1 : d2, 'message:send', { to: bob, body: `x${i}` })),
  );
  const ok = results.filter((r) => r.ok).length;
  assert.ok(results.some((r) => r.error?.code === 'rate_limited'), `all ${ok} accepted`);
  assert.ok(ok >= 15 && ok < 30, `ok ${ok}`);
});

// Any acked event counts towards the per-user event limit (30/s, burst 60).
test('acked event flood is rate_limited, then recovers', async () => {
  const sa = await connect(server.url, as(uid('chatty')));
  const results = await Promise.all(Array.from({ length: 100 }, () => emitAck(sa, 'conversations', {})));
  const limited = results.filter((r) => r.error?.code === 'rate_limited').length;
  assert.ok(limited > 0, 'some events are rate_limited');
  assert.equal(results.filter((r) => r.ok).length + limited, 100);
  await eventually(async () => (await emitAck(sa, 'conversations', {})).ok, {
    timeoutMs: 5000, intervalMs: 200, what: 'events to be accepted again',
  });
  assert.ok(sa.connected);
});

// presence:subscribe takes at most 100 users per call and 1000 per socket.
test('presence subscription limits are too_large', async () => {
  const sa = await connect(server.url, as(uid('watcher')));
  const users = (n, p) => Array.from({ length: n }, (_, i) => `${p}-${i}`);
  const tag = uid('p');
  await expectError(sa, 'presence:subscribe', { users: users(101, tag) }, 'too_large');
  await expectError(sa, 'presence:subscribe', { users: ['ok', 'not ok'] }, 'bad_request');
  await expectError(sa, 'presence:subscribe', { users: 'bob' }, 'bad_request');
  for (let i = 0; i < 10; i++) {
    const res = await emitAck(sa, 'presence:subscribe', { users: users(100, `${tag}-${i}`) });
    assert.equal(res.ok, true, `batch ${i}: ${JSON.stringify(res.error)}`);
    assert.equal(Object.keys(res.presence).length, 100);
  }
  await expectError(sa, 'presence:subscribe', { users: [`${tag}-one-more`] }, 'too_large');
  // The limit is per socket.
  const fresh = await connect(server.url, as(uid('watcher')));
  assert.equal((await emitAck(fresh, 'presence:subscribe', { users: users(100, tag) })).ok, true);
});

// A packet over the Engine.IO max payload closes that connection only; others go on.
test('oversized packet closes only that connection', async () => {
  const victimWs = await connect(server.url, as(uid('big')), { transports: ['websocket'] });
  const victimPoll = await connect(server.url, as(uid('big')), { transports: ['polling'] });
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice), { transports: ['websocket'] });
  const sb = await connect(server.url, as(bob), { transports: ['polling'] });

  const huge = 'z'.repeat(70 * 1024);
  const goneWs = waitDisconnect(victimWs, 10000);
  victimWs.emit('message:send', { to: bob, body: huge });
  await goneWs;
  const gonePoll = waitDisconnect(victimPoll, 10000);
  victimPoll.emit('message:send', { to: bob, body: huge });
  await gonePoll;

  assert.ok(sa.connected && sb.connected, 'bystanders stay connected');
  const atBob = record(sb, 'message');
  const m = await send(sa, { to: bob, body: 'still here?' });
  await atBob.waitFor((x) => x.id === m.id);
  const back = await send(sb, { to: alice, body: 'yes' });
  assert.equal(back.from, bob);
  const late = await connect(server.url, as(uid('late')));
  assert.equal((await emitAck(late, 'conversations', {})).ok, true);
  // Under the limit but over the body limit is an ordinary too_large answer.
  await expectError(sa, 'message:send', { to: bob, body: 'z'.repeat(30 * 1024) }, 'too_large');
});

// Missing payloads for events that need one are bad_request.
test('missing payloads are bad_request', async () => {
  const sa = await connect(server.url, as(uid('alice')));
  const events = ['message:send', 'group:create', 'group:join', 'group:leave', 'group:members', 'history', 'read', 'presence:subscribe', 'block', 'unblock'];
  await expectErrors(sa, events.map((e) => [e, undefined, 'bad_request']));
});

// CHAT_MAX_BODY and CHAT_MAX_PAYLOAD set the limits: over the body limit is too_large, over the
// packet limit closes the connection.
test('body and payload limits follow their settings', async (t) => {
  const small = await startServer({ CHAT_MAX_BODY: '10', CHAT_MAX_PAYLOAD: '2048' });
  t.after(() => small.stop());
  const bob = uid('bob');
  const sa = await connect(small.url, as(uid('alice')));
  await send(sa, { to: bob, body: '0123456789' });
  await expectError(sa, 'message:send', { to: bob, body: '0123456789A' }, 'too_large');
  await expectError(sa, 'message:send', { to: bob, body: 'x'.repeat(1500) }, 'too_large');
  const gone = waitDisconnect(sa, 10000);
  sa.emit('message:send', { to: bob, body: 'x'.repeat(3000) });
  await gone;
  const sb = await connect(small.url, as(bob), { transports: ['polling'] });
  assert.equal((await emitAck(sb, 'conversations', {})).ok, true);
});
