// Presence, typing indicators and delivery/read receipts.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, closeAll, as, uid, dmId, send, emitAck, record, waitFor,
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

// ------------------------------------------------------------------------------------- receipts

// A device acking a `message` gives the sender `delivered`; `read` gives the sender `read`.
test('receipts: delivered on device ack, read on read', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob), { transports: ['polling'] });
  const receipts = record(sa, 'receipt');
  record(sb, 'message', { ack: true });
  const conversation = dmId(alice, bob);

  const m = await send(sa, { to: bob, body: 'did you get this?' });
  const delivered = await receipts.waitFor((r) => r.status === 'delivered' && r.messageId === m.id);
  assert.deepEqual(delivered, { conversation, user: bob, messageId: m.id, status: 'delivered' });

  assert.deepEqual(await emitAck(sb, 'read', { conversation, messageId: m.id }), { ok: true });
  const read = await receipts.waitFor((r) => r.status === 'read');
  assert.deepEqual(read, { conversation, user: bob, messageId: m.id, status: 'read' });

  // Reading again reads nothing new: no receipt. Reading up to a later message covers the
  // messages before it with one cumulative receipt.
  assert.deepEqual(await emitAck(sb, 'read', { conversation, messageId: m.id }), { ok: true });
  const m2 = await send(sa, { to: bob, body: 'two' });
  const m3 = await send(sa, { to: bob, body: 'three' });
  assert.deepEqual(await emitAck(sb, 'read', { conversation, messageId: m3.id }), { ok: true });
  await receipts.waitFor((r) => r.status === 'read' && r.messageId === m3.id);
  assert.deepEqual(
    receipts.all((r) => r.status === 'read').map((r) => r.messageId),
    [m.id, m3.id],
    `read receipts (m2 is ${m2.id})`,
  );
});

// A device that fetches messages with sync counts as delivered too.
test('receipts: sync of an offline message gives delivered', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const receipts = record(sa, 'receipt');
  const m1 = await send(sa, { to: bob, body: 'while you were out' });
  const m2 = await send(sa, { to: bob, body: 'and this' });
  const sb = await connect(server.url, as(bob));
  const res = await emitAck(sb, 'sync', {});
  assert.deepEqual(res.messages.map((x) => x.id), [m1.id, m2.id]);
  // Receipts are cumulative: the newest id covers the older one.
  const r = await receipts.waitFor((x) => x.status === 'delivered' && x.messageId === m2.id);
  assert.deepEqual(r, { conversation: dmId(alice, bob), user: bob, messageId: m2.id, status: 'delivered' });
});

// The sender's own devices acking the copy they get are not deliveries to anyone.
test('receipts: sender\'s other devices do not produce delivered', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const a1 = await connect(server.url, as(alice));
  const a2 = await connect(server.url, as(alice), { transports: ['polling'] });
  record(a2, 'message', { ack: true });
  const receipts = record(a1, 'receipt');
  const m = await send(a1, { to: bob, body: 'bob is away' });
  // Bob comes online and acks the message: that delivery is the first receipt alice gets.
  const sb = await connect(server.url, as(bob));
  const res = await emitAck(sb, 'sync', {});
  assert.deepEqual(res.messages.map((x) => x.id), [m.id]);
  await receipts.waitFor((r) => r.user === bob && r.status === 'delivered');
  assert.deepEqual(receipts.events.map((r) => r.user), [bob]);
});

// In a small group, the sender gets read receipts from each member who reads.
test('receipts: group read receipt reaches the sender', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(server.url, as(alice));
  await connect(server.url, as(bob));
  const sc = await connect(server.url, as(carol));
  const g = (await emitAck(sa, 'group:create', { name: 'Receipts', members: [bob, carol] })).group;
  const receipts = record(sa, 'receipt');
  const m = await send(sa, { group: g.id, body: 'read me' });
  const conversation = `group:${g.id}`;
  assert.deepEqual(await emitAck(sc, 'read', { conversation, messageId: m.id }), { ok: true });
  const r = await receipts.waitFor((x) => x.status === 'read' && x.user === carol);
  assert.deepEqual(r, { conversation, user: carol, messageId: m.id, status: 'read' });
});

// Groups larger than CHAT_RECEIPT_GROUP_MAX send no receipts, but still count unread.
test('receipts: none in groups over CHAT_RECEIPT_GROUP_MAX', async (t) => {
  const small = await startServer({ ...HIGH_LIMITS, CHAT_RECEIPT_GROUP_MAX: '2' });
  t.after(() => small.stop());
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(small.url, as(alice));
  const sb = await connect(small.url, as(bob));
  record(sb, 'message', { ack: true });
  const g = (await emitAck(sa, 'group:create', { name: 'Three', members: [bob, carol] })).group;
  const receipts = record(sa, 'receipt');
  const dms = record(sa, 'message');
  const m = await send(sa, { group: g.id, body: 'no receipts here' });
  const conversation = `group:${g.id}`;
  const before = (await emitAck(sb, 'conversations', {})).conversations.find((c) => c.id === conversation);
  assert.equal(before.unread, 1);
  assert.deepEqual(await emitAck(sb, 'read', { conversation, messageId: m.id }), { ok: true });
  const after = (await emitAck(sb, 'conversations', {})).conversations.find((c) => c.id === conversation);
  assert.equal(after.unread, 0);
  // A DM from bob after his read reaches alice after any receipt would have.
  const marker = await send(sb, { to: alice, body: 'read it' });
  await dms.waitFor((x) => x.id === marker.id);
  assert.deepEqual(receipts.events, []);
});

// --------------------------------------------------------------------------------------- typing

// Typing in a DM reaches the other participant, both start and stop.
test('typing in a DM reaches the partner', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob), { transports: ['polling'] });
  const conversation = dmId(alice, bob);
  const typing = record(sb, 'typing');
  sa.emit('typing', { conversation, typing: true });
  assert.deepEqual(await typing.waitFor((t) => t.typing === true), { conversation, user: alice, typing: true });
  sa.emit('typing', { conversation, typing: false });
  assert.deepEqual(await typing.waitFor((t) => t.typing === false), { conversation, user: alice, typing: false });
});

// Typing in a group reaches its members; a non-member's typing reaches nobody.
test('typing in a group reaches members, not from non-members', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const eve = uid('eve');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const sc = await connect(server.url, as(carol), { transports: ['polling'] });
  const se = await connect(server.url, as(eve));
  const g = (await emitAck(sa, 'group:create', { name: 'Typists', members: [bob, carol] })).group;
  const conversation = `group:${g.id}`;
  const atBob = record(sb, 'typing');
  const atCarol = record(sc, 'typing');

  sa.emit('typing', { conversation, typing: true });
  const expected = { conversation, user: alice, typing: true };
  assert.deepEqual(await atBob.waitFor((t) => t.user === alice), expected);
  assert.deepEqual(await atCarol.waitFor((t) => t.user === alice), expected);

  // Eve is not a member: her group typing is dropped. Her DM typing, sent right after on the
  // same socket, does arrive, so the group one would have arrived first.
  se.emit('typing', { conversation, typing: true });
  se.emit('typing', { conversation: dmId(eve, bob), typing: true });
  se.emit('typing', { conversation: dmId(eve, carol), typing: true });
  await atBob.waitFor((t) => t.user === eve && t.conversation === dmId(eve, bob));
  await atCarol.waitFor((t) => t.user === eve && t.conversation === dmId(eve, carol));
  assert.equal(atBob.count((t) => t.conversation === conversation && t.user === eve), 0);
  assert.equal(atCarol.count((t) => t.conversation === conversation && t.user === eve), 0);
});

// A blocked user's typing does not reach the blocker; malformed typing is dropped harmlessly.
test('typing from a blocked user or with a bad payload is dropped', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const g = (await emitAck(sa, 'group:create', { name: 'Both', members: [bob] })).group;
  assert.deepEqual(await emitAck(sb, 'block', { user: alice }), { ok: true });
  const atBob = record(sb, 'typing');
  sa.emit('typing', { conversation: dmId(alice, bob), typing: true });
  sa.emit('typing', 'not an object');
  sa.emit('typing', { conversation: dmId(alice, bob), typing: 'yes' });
  sa.emit('typing', { conversation: `group:${g.id}`, typing: true });
  await atBob.waitFor((t) => t.conversation === `group:${g.id}`);
  assert.deepEqual(atBob.events, [{ conversation: `group:${g.id}`, user: alice, typing: true }]);
  assert.ok(sa.connected, 'bad typing payloads do not disconnect');
  assert.equal((await emitAck(sa, 'conversations', {})).ok, true);
});

// Typing is throttled per user (about 5 per second): a burst of 30 mostly gets dropped.
test('typing bursts are throttled', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const conversation = dmId(alice, bob);
  const typing = record(sb, 'typing');
  for (let i = 0; i < 30; i++) sa.emit('typing', { conversation, typing: i % 2 === 0 });
  await typing.waitFor();
  // Handlers run concurrently, so a later message only roughly bounds the burst's deliveries;
  // a late typing event could only make the count smaller.
  const messages = record(sb, 'message');
  const marker = await send(sa, { to: bob, body: 'done typing' });
  await messages.waitFor((m) => m.id === marker.id);
  assert.ok(typing.count() <= 10, `${typing.count()} of 30 typing events arrived`);
});

// ------------------------------------------------------------------------------------- presence

// Subscribers get a snapshot, then online when the first device connects and offline (with
// lastSeen) only when the last one leaves.
test('presence: snapshot, first device online, last device offline', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const ghost = uid('ghost');
  const sa = await connect(server.url, as(alice));
  const res = await emitAck(sa, 'presence:subscribe', { users: [bob, ghost] });
  assert.deepEqual(res, {
    ok: true,
    presence: {
      [bob]: { online: false, lastSeen: null },
      [ghost]: { online: false, lastSeen: null },
    },
  });
  const presence = record(sa, 'presence');
  const dms = record(sa, 'message');

  const b1 = await connect(server.url, as(bob));
  const on = await presence.waitFor((p) => p.user === bob);
  assert.equal(on.online, true);

  const b2 = await connect(server.url, as(bob), { transports: ['polling'] });
  b2.close();
  // Round trips through bob's remaining device and alice's socket after the second device left.
  const m = await send(b1, { to: alice, body: 'still here' });
  await dms.waitFor((x) => x.id === m.id);
  const snap = await emitAck(sa, 'presence:subscribe', { users: [bob] });
  assert.equal(snap.presence[bob].online, true);
  assert.equal(presence.count((p) => p.user === bob), 1, 'no presence event for the second device');

  const before = Date.now();
  b1.close();
  const off = await presence.waitFor((p) => p.user === bob && p.online === false);
  assert.equal(typeof off.lastSeen, 'number');
  assert.ok(off.lastSeen >= before - 1000 && off.lastSeen <= Date.now() + 1000, `lastSeen ${off.lastSeen}`);
  // Alice is both a subscriber and (since bob's DM) a DM partner: still one event each time.
  const carol = uid('carol');
  const sc = await connect(server.url, as(carol));
  const marker = await send(sc, { to: alice, body: 'marker' });
  await dms.waitFor((x) => x.id === marker.id);
  assert.deepEqual(
    presence.all((p) => p.user === bob).map((p) => p.online),
    [true, false],
  );

  const later = await emitAck(sc, 'presence:subscribe', { users: [bob, ghost] });
  assert.equal(later.presence[bob].online, false);
  assert.ok(Math.abs(later.presence[bob].lastSeen - off.lastSeen) <= 1000);
  assert.deepEqual(later.presence[ghost], { online: false, lastSeen: null });
});

// DM partners and fellow members of small groups get presence without subscribing.
test('presence reaches DM partners and small-group members without subscribing', async () => {
  const carol = uid('carol');
  const dave = uid('dave');
  const frank = uid('frank');
  const sc = await connect(server.url, as(carol));
  await send(sc, { to: dave, body: 'ping me when you are on' });
  await emitAck(sc, 'group:create', { name: 'Pair', members: [frank] });
  const presence = record(sc, 'presence');

  const sd = await connect(server.url, as(dave), { transports: ['polling'] });
  assert.equal((await presence.waitFor((p) => p.user === dave)).online, true);
  sd.close();
  const off = await presence.waitFor((p) => p.user === dave && p.online === false);
  assert.equal(typeof off.lastSeen, 'number');

  const sf = await connect(server.url, as(frank));
  assert.equal((await presence.waitFor((p) => p.user === frank)).online, true);
  const gone = waitFor(sc, 'presence', (p) => p.user === frank && p.online === false);
  sf.close();
  await gone;
});
