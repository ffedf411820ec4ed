// Direct messages: fan-out to devices, ack shape, idempotent retries, blocks.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, closeAll, as, uid, dmId, send, emitAck, expectError, record, increasing, waitFor,
  HIGH_LIMITS,
} from './helpers.mjs';

let server;
before(async () => {
  server = await startServer(HIGH_LIMITS);
});
afterEach(closeAll);
after(async () => {
  closeAll();
  await server?.stop();
});

function assertMessageShape(m, { from, conversation, body, clientId }) {
  assert.match(m.id, /^\d+-\d+$/);
  assert.equal(m.conversation, conversation);
  assert.equal(m.from, from);
  assert.equal(m.body, body);
  assert.equal(typeof m.ts, 'number');
  assert.ok(Math.abs(m.ts - Date.now()) < 60_000, `ts ${m.ts} is not near now`);
  if (clientId === undefined) assert.ok(!('clientId' in m), `clientId must be absent: ${JSON.stringify(m)}`);
  else assert.equal(m.clientId, clientId);
}

// A DM reaches every device of the recipient and the sender's other devices exactly once, never
// the sending socket, and the ack carries the stored message with a sorted conversation id.
test('dm fan-out to all devices once, not back to the sending socket', async () => {
  // "zed" sorts after "amy": the conversation id must still be dm:amy…:zed….
  const zed = uid('zed');
  const amy = uid('amy');
  const z1 = await connect(server.url, as(zed), { transports: ['websocket'] });
  const z2 = await connect(server.url, as(zed), { transports: ['polling'] });
  const a1 = await connect(server.url, as(amy), { transports: ['websocket'] });
  const a2 = await connect(server.url, as(amy), { transports: ['polling'] });
  const rec = Object.fromEntries(
    Object.entries({ z1, z2, a1, a2 }).map(([k, s]) => [k, record(s, 'message')]),
  );

  const res = await emitAck(z1, 'message:send', { to: amy, body: 'hi amy', clientId: 'c-1' });
  assert.equal(res.ok, true);
  assert.equal(res.duplicate, false);
  const conversation = `dm:${amy}:${zed}`;
  assert.equal(conversation, dmId(zed, amy));
  assertMessageShape(res.message, { from: zed, conversation, body: 'hi amy', clientId: 'c-1' });
  const first = res.message;

  for (const k of ['z2', 'a1', 'a2']) {
    assert.deepEqual(await rec[k].waitFor((m) => m.id === first.id), first, `device ${k}`);
  }

  // A later message from the other device of the sender; z1 gets that one, so anything sent to
  // z1 before it has arrived too.
  const second = await send(z2, { to: amy, body: 'from my phone' });
  assertMessageShape(second, { from: zed, conversation, body: 'from my phone' });
  assert.ok(increasing([first.id, second.id]));
  for (const k of ['z1', 'a1', 'a2']) await rec[k].waitFor((m) => m.id === second.id);

  assert.equal(rec.z1.count((m) => m.id === first.id), 0, 'sending socket got its own message');
  assert.equal(rec.z2.count((m) => m.id === second.id), 0, 'sending socket got its own message');
  for (const k of ['z2', 'a1', 'a2']) assert.equal(rec[k].count((m) => m.id === first.id), 1, k);
  for (const k of ['z1', 'a1', 'a2']) assert.equal(rec[k].count((m) => m.id === second.id), 1, k);
});

// Messages in one conversation get increasing ids, whoever sends them.
test('ids grow in send order within a conversation', async () => {
  const a = uid('a');
  const b = uid('b');
  const sa = await connect(server.url, as(a));
  const sb = await connect(server.url, as(b));
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push((await send(i % 2 ? sb : sa, { to: i % 2 ? a : b, body: `m${i}` })).id);
  assert.ok(increasing(ids), `ids not increasing: ${ids}`);
});

// Messages a client emits back to back, without waiting for acks, keep that order: in their ids,
// in history and at the recipient (what a user typing fast would notice).
test('back-to-back sends from one socket keep their order', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob), { transports: ['websocket'] });
  const atBob = record(sb, 'message');
  const bodies = Array.from({ length: 30 }, (_, i) => `fast ${i}`);
  const acks = await Promise.all(bodies.map((body) => emitAck(sa, 'message:send', { to: bob, body })));
  assert.ok(acks.every((r) => r.ok));
  const hist = await emitAck(sb, 'history', { conversation: dmId(alice, bob) });
  assert.deepEqual(hist.messages.map((m) => m.body), bodies, 'history order differs from send order');
  await atBob.waitForCount(() => true, bodies.length);
  assert.deepEqual(atBob.events.map((m) => m.body), bodies, 'delivery order differs from send order');
  assert.ok(increasing(acks.map((r) => r.message.id)), 'ids do not grow in send order');
});

// Retrying with the same clientId returns the first message (duplicate: true) and delivers once.
test('same clientId twice is one message, delivered once', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const atBob = record(sb, 'message');

  const r1 = await emitAck(sa, 'message:send', { to: bob, body: 'once', clientId: 'retry-1' });
  const r2 = await emitAck(sa, 'message:send', { to: bob, body: 'once', clientId: 'retry-1' });
  assert.equal(r1.ok, true);
  assert.equal(r1.duplicate, false);
  assert.equal(r2.ok, true);
  assert.equal(r2.duplicate, true);
  assert.deepEqual(r2.message, r1.message);

  // The retry from another device of the sender is a duplicate too.
  const sa2 = await connect(server.url, as(alice), { transports: ['polling'] });
  const r3 = await emitAck(sa2, 'message:send', { to: bob, body: 'once', clientId: 'retry-1' });
  assert.equal(r3.duplicate, true);
  assert.equal(r3.message.id, r1.message.id);

  const later = await send(sa, { to: bob, body: 'later', clientId: 'retry-2' });
  await atBob.waitFor((m) => m.id === later.id);
  assert.equal(atBob.count((m) => m.id === r1.message.id), 1);
  assert.equal(atBob.count(), 2);

  // The same key from another sender is that sender's own key.
  const other = await emitAck(sb, 'message:send', { to: alice, body: 'mine', clientId: 'retry-1' });
  assert.equal(other.ok, true);
  assert.equal(other.duplicate, false);
  assert.notEqual(other.message.id, r1.message.id);
});

// Two concurrent sends with one clientId store one message: one answer is the original, the
// other a duplicate of it, and the recipient gets it once.
test('concurrent retries with one clientId store one message', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const a1 = await connect(server.url, as(alice));
  const a2 = await connect(server.url, as(alice), { transports: ['polling'] });
  const sb = await connect(server.url, as(bob));
  const atBob = record(sb, 'message');
  const payload = { to: bob, body: 'racy', clientId: 'race-1' };
  const results = await Promise.all([a1, a2, a1, a2].map((s) => emitAck(s, 'message:send', payload)));
  assert.ok(results.every((r) => r.ok), JSON.stringify(results));
  assert.equal(new Set(results.map((r) => r.message.id)).size, 1);
  assert.equal(results.filter((r) => r.duplicate === false).length, 1);
  const marker = await send(a1, { to: bob, body: 'marker' });
  await atBob.waitFor((m) => m.id === marker.id);
  assert.equal(atBob.count((m) => m.body === 'racy'), 1);
  const hist = await emitAck(sb, 'history', { conversation: dmId(alice, bob) });
  assert.deepEqual(hist.messages.map((m) => m.body), ['racy', 'marker']);
});

// Bodies come back byte for byte (unicode, markup), and 64-character user ids work in DMs.
test('bodies round-trip intact; longest user ids work', async () => {
  const long1 = `a${'1'.repeat(55)}${uid('').slice(1)}`.slice(0, 64);
  const long2 = `b${'2'.repeat(55)}${uid('').slice(1)}`.slice(0, 64);
  assert.equal(long1.length, 64);
  const s1 = await connect(server.url, as(long1));
  const s2 = await connect(server.url, as(long2), { transports: ['polling'] });
  const body = 'héllo 👋 <b>bold</b> "quotes" \\ \n new line \u0000 nul ✓';
  const got = waitFor(s2, 'message');
  const m = await send(s1, { to: long2, body });
  assert.equal(m.body, body);
  assert.equal(m.conversation, `dm:${long1}:${long2}`);
  assert.equal((await got).body, body);
  const hist = await emitAck(s2, 'history', { conversation: m.conversation });
  assert.equal(hist.messages[0].body, body);
});

// Reusing a clientId for a different body or target is a conflict, and nothing is stored.
test('same clientId with another body or target is conflict', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(server.url, as(alice));
  const first = await send(sa, { to: bob, body: 'original', clientId: 'k-1' });
  await expectError(sa, 'message:send', { to: bob, body: 'changed', clientId: 'k-1' }, 'conflict');
  await expectError(sa, 'message:send', { to: carol, body: 'original', clientId: 'k-1' }, 'conflict');
  const hist = await emitAck(sa, 'history', { conversation: dmId(alice, bob) });
  assert.equal(hist.ok, true);
  assert.deepEqual(hist.messages.map((m) => m.id), [first.id]);
  const hc = await emitAck(sa, 'history', { conversation: dmId(alice, carol) });
  assert.equal(hc.ok, true);
  assert.deepEqual(hc.messages, []);
});

// A user who blocked the sender gets no DMs from them (forbidden) until unblocking.
test('block refuses DMs with forbidden; unblock restores them', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const atBob = record(sb, 'message');

  assert.deepEqual(await emitAck(sb, 'block', { user: alice }), { ok: true });
  assert.deepEqual(await emitAck(sb, 'block', { user: alice }), { ok: true }, 'block is idempotent');
  await expectError(sa, 'message:send', { to: bob, body: 'let me in' }, 'forbidden');
  // The block is per recipient: alice can still message others, bob can still message alice.
  const carol = uid('carol');
  await send(sa, { to: carol, body: 'hello carol' });
  await send(sb, { to: alice, body: 'one-way' });

  assert.deepEqual(await emitAck(sb, 'unblock', { user: alice }), { ok: true });
  assert.deepEqual(await emitAck(sb, 'unblock', { user: alice }), { ok: true }, 'unblock is idempotent');
  const m = await send(sa, { to: bob, body: 'friends again' });
  await atBob.waitFor((x) => x.id === m.id);
  assert.equal(atBob.count((x) => x.from === alice), 1, 'the refused DM was never delivered');
  const hist = await emitAck(sb, 'history', { conversation: dmId(alice, bob) });
  assert.deepEqual(hist.messages.map((x) => x.body), ['one-way', 'friends again']);

  await expectError(sb, 'block', { user: bob }, 'bad_request');
});
