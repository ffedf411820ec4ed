// Groups: create, join, leave, members, membership checks, fan-out, size limit.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, closeAll, as, uid, send, emitAck, expectError, record, HIGH_LIMITS,
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

const sorted = (xs) => [...xs].sort();

// group:create answers the group; each initial non-owner member hears "joined" once, for
// itself (n events for a group of n, not n²); the owner has the ack.
test('create with members: ack shape and group:member joined events', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob), { transports: ['polling'] });
  const sc = await connect(server.url, as(carol), { transports: ['websocket'] });
  const recs = [sa, sb, sc].map((s) => record(s, 'group:member'));

  const res = await emitAck(sa, 'group:create', { name: 'Team', members: [bob, carol] });
  assert.equal(res.ok, true, JSON.stringify(res));
  const g = res.group;
  assert.equal(typeof g.id, 'string');
  assert.ok(g.id.length > 0);
  assert.equal(g.name, 'Team');
  assert.equal(g.owner, alice);
  assert.deepEqual(sorted(g.members), sorted([alice, bob, carol]));

  for (const [i, user] of [[1, bob], [2, carol]]) {
    const ev = await recs[i].waitFor((e) => e.group === g.id && e.user === user);
    assert.deepEqual(ev, { group: g.id, user, event: 'joined' }, `socket ${i}`);
  }
  // A later event proves ordering: nothing for the owner, each member only its own, once.
  const dave = uid('dave');
  const sd = await connect(server.url, as(dave));
  await emitAck(sd, 'group:join', { group: g.id });
  for (const [i, r] of recs.entries()) {
    await r.waitFor((e) => e.group === g.id && e.user === dave);
    assert.equal(r.count((e) => e.user === alice), 0, 'no joined event for the owner');
    assert.equal(r.count((e) => e.user === bob), i === 1 ? 1 : 0, `socket ${i}`);
    assert.equal(r.count((e) => e.user === carol), i === 2 ? 1 : 0, `socket ${i}`);
  }

  // Repeated ids and the owner in `members` are listed once.
  const dup = await emitAck(sa, 'group:create', { name: 'Dups', members: [bob, bob, alice] });
  assert.equal(dup.ok, true);
  assert.deepEqual(sorted(dup.group.members), sorted([alice, bob]));

  // A group without members is just the owner.
  const solo = await emitAck(sa, 'group:create', { name: 'Solo' });
  assert.equal(solo.ok, true);
  assert.deepEqual(solo.group.members, [alice]);
  assert.notEqual(solo.group.id, g.id);
});

// Anyone joins by id; members (and the joiner's devices) hear it; joining twice changes nothing.
test('join by id, members list, idempotent join', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb1 = await connect(server.url, as(bob));
  const sb2 = await connect(server.url, as(bob), { transports: ['polling'] });
  const g = (await emitAck(sa, 'group:create', { name: 'Open' })).group;
  const atAlice = record(sa, 'group:member');
  const atB2 = record(sb2, 'group:member');

  const j = await emitAck(sb1, 'group:join', { group: g.id });
  assert.equal(j.ok, true, JSON.stringify(j));
  assert.equal(j.group.id, g.id);
  assert.equal(j.group.name, 'Open');
  assert.equal(j.group.owner, alice);
  assert.deepEqual(sorted(j.group.members), sorted([alice, bob]));
  const joined = { group: g.id, user: bob, event: 'joined' };
  assert.deepEqual(await atAlice.waitFor((e) => e.user === bob), joined);
  assert.deepEqual(await atB2.waitFor((e) => e.user === bob), joined);

  const again = await emitAck(sb2, 'group:join', { group: g.id });
  assert.equal(again.ok, true);
  assert.deepEqual(sorted(again.group.members), sorted([alice, bob]));

  const mem = await emitAck(sb1, 'group:members', { group: g.id });
  assert.equal(mem.ok, true);
  assert.deepEqual(sorted(mem.members), sorted([alice, bob]));
});

// Leaving stops delivery; the leaver is then a non-member for send, history and members.
test('leave: members hear it, leaver gets nothing more and loses access', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const sc = await connect(server.url, as(carol), { transports: ['polling'] });
  const g = (await emitAck(sa, 'group:create', { name: 'Leavers', members: [bob, carol] })).group;
  const atAlice = record(sa, 'group:member');
  const atBob = record(sb, 'message');
  const atCarol = record(sc, 'message');

  assert.deepEqual(await emitAck(sc, 'group:leave', { group: g.id }), { ok: true });
  assert.deepEqual(await atAlice.waitFor((e) => e.user === carol), { group: g.id, user: carol, event: 'left' });
  assert.deepEqual(await emitAck(sc, 'group:leave', { group: g.id }), { ok: true }, 'leaving twice is ok');

  const gm = await send(sa, { group: g.id, body: 'carol is gone' });
  await atBob.waitFor((m) => m.id === gm.id);
  // A DM sent after the group message reaches carol, so the group message would have too.
  const dm = await send(sa, { to: carol, body: 'psst' });
  await atCarol.waitFor((m) => m.id === dm.id);
  assert.equal(atCarol.count((m) => m.conversation === `group:${g.id}`), 0);

  await expectError(sc, 'message:send', { group: g.id, body: 'let me back' }, 'forbidden');
  await expectError(sc, 'history', { conversation: `group:${g.id}` }, 'forbidden');
  await expectError(sc, 'group:members', { group: g.id }, 'forbidden');
  const mem = await emitAck(sa, 'group:members', { group: g.id });
  assert.deepEqual(sorted(mem.members), sorted([alice, bob]));
  const convs = await emitAck(sc, 'conversations', {});
  assert.ok(!convs.conversations.some((c) => c.id === `group:${g.id}`), 'left group still listed');
});

// Non-members cannot send, read history or list members; unknown groups are not_found.
test('non-member is forbidden, unknown group is not_found', async () => {
  const alice = uid('alice');
  const eve = uid('eve');
  const sa = await connect(server.url, as(alice));
  const se = await connect(server.url, as(eve));
  const g = (await emitAck(sa, 'group:create', { name: 'Private' })).group;
  await send(sa, { group: g.id, body: 'secret' });

  await expectError(se, 'message:send', { group: g.id, body: 'hi' }, 'forbidden');
  await expectError(se, 'history', { conversation: `group:${g.id}` }, 'forbidden');
  await expectError(se, 'group:members', { group: g.id }, 'forbidden');

  const missing = `${g.id}zz`;
  await expectError(sa, 'message:send', { group: missing, body: 'hi' }, 'not_found');
  await expectError(sa, 'group:join', { group: missing }, 'not_found');
});

// A group message reaches every device of every member, on either transport, once.
test('group message fan-out across members and devices (ws and polling)', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const dave = uid('dave');
  const a1 = await connect(server.url, as(alice), { transports: ['websocket'] });
  const a2 = await connect(server.url, as(alice), { transports: ['polling'] });
  const b1 = await connect(server.url, as(bob), { transports: ['polling'] });
  const d1 = await connect(server.url, as(dave), { transports: ['websocket'] });
  const d2 = await connect(server.url, as(dave));
  const g = (await emitAck(a1, 'group:create', { name: 'Mixed', members: [bob] })).group;
  assert.equal((await emitAck(d2, 'group:join', { group: g.id })).ok, true);
  const recs = { a1, a2, b1, d1, d2 };
  for (const k of Object.keys(recs)) recs[k] = record(recs[k], 'message');

  const res = await emitAck(a1, 'message:send', { group: g.id, body: 'hello all' });
  assert.equal(res.ok, true);
  assert.equal(res.duplicate, false);
  const m = res.message;
  assert.equal(m.conversation, `group:${g.id}`);
  assert.equal(m.from, alice);
  for (const k of ['a2', 'b1', 'd1', 'd2']) assert.deepEqual(await recs[k].waitFor((x) => x.id === m.id), m, k);

  const reply = await send(b1, { group: g.id, body: 'hi alice' });
  for (const k of ['a1', 'a2', 'd1', 'd2']) await recs[k].waitFor((x) => x.id === reply.id);
  assert.equal(recs.a1.count((x) => x.id === m.id), 0, 'sender socket got its own message');
  for (const k of ['a2', 'b1', 'd1', 'd2']) assert.equal(recs[k].count((x) => x.id === m.id), 1, k);
});

// When the owner leaves, the longest-standing remaining member becomes the owner.
test('owner leaving hands ownership to the longest-standing member', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const dave = uid('dave');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const sc = await connect(server.url, as(carol));
  const sd = await connect(server.url, as(dave));
  const g = (await emitAck(sa, 'group:create', { name: 'Relay' })).group;
  await emitAck(sb, 'group:join', { group: g.id });
  await emitAck(sc, 'group:join', { group: g.id });
  assert.deepEqual(await emitAck(sa, 'group:leave', { group: g.id }), { ok: true });
  const j = await emitAck(sd, 'group:join', { group: g.id });
  assert.equal(j.ok, true);
  assert.equal(j.group.owner, bob);
  assert.deepEqual(sorted(j.group.members), sorted([bob, carol, dave]));
});

// Blocks only concern DMs: a blocked user's group messages still arrive.
test('group messages are not affected by blocks', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const g = (await emitAck(sa, 'group:create', { name: 'Frenemies', members: [bob] })).group;
  assert.deepEqual(await emitAck(sb, 'block', { user: alice }), { ok: true });
  await expectError(sa, 'message:send', { to: bob, body: 'dm' }, 'forbidden');
  const atBob = record(sb, 'message');
  const m = await send(sa, { group: g.id, body: 'in the group' });
  await atBob.waitFor((x) => x.id === m.id);
});

// Bad group payloads are bad_request.
test('group payload validation', async () => {
  const alice = uid('alice');
  const sa = await connect(server.url, as(alice));
  await expectError(sa, 'group:create', { name: '' }, 'bad_request');
  await expectError(sa, 'group:create', { members: [] }, 'bad_request');
  await expectError(sa, 'group:create', { name: 'X', members: ['not valid'] }, 'bad_request');
  await expectError(sa, 'group:create', { name: 'X', members: 'bob' }, 'bad_request');
  await expectError(sa, 'group:join', {}, 'bad_request');
  await expectError(sa, 'group:join', { group: 42 }, 'bad_request');
  await expectError(sa, 'group:leave', { group: null }, 'bad_request');
  await expectError(sa, 'group:members', {}, 'bad_request');
});

// CHAT_MAX_GROUP_SIZE counts the owner: creating over it is too_large, joining a full group is conflict.
test('group size limit: too_large on create, conflict on join', async (t) => {
  const small = await startServer({ CHAT_MAX_GROUP_SIZE: '3' });
  t.after(() => small.stop());
  const alice = uid('alice');
  const [bob, carol, dave, erin] = ['bob', 'carol', 'dave', 'erin'].map(uid);
  const sa = await connect(small.url, as(alice));
  await expectError(sa, 'group:create', { name: 'Big', members: [bob, carol, dave] }, 'too_large');
  const full = await emitAck(sa, 'group:create', { name: 'Full', members: [bob, carol] });
  assert.equal(full.ok, true, JSON.stringify(full));
  const se = await connect(small.url, as(erin));
  await expectError(se, 'group:join', { group: full.group.id }, 'conflict');
  // A member re-joining a full group changes nothing and is fine.
  const sb = await connect(small.url, as(bob));
  assert.equal((await emitAck(sb, 'group:join', { group: full.group.id })).ok, true);
  // Once someone leaves, there is room again.
  assert.deepEqual(await emitAck(sb, 'group:leave', { group: full.group.id }), { ok: true });
  assert.equal((await emitAck(se, 'group:join', { group: full.group.id })).ok, true);
});
