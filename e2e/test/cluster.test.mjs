// Cluster mode: several chat-server processes sharing one Redis behave as one chat, across
// transports, node deaths (SIGKILL) and graceful drains (SIGTERM).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, startRedis, connect, connectError, closeAll, as, uid, dmId, send, emitAck,
  expectError, record, waitDisconnect, withDeadline, eventually, increasing, redisCommand,
  HIGH_LIMITS, clusterUid, presenceOf,
} from './helpers.mjs';

const WS = { transports: ['websocket'] };
const POLL = { transports: ['polling'] };
const sorted = (xs) => [...xs].sort();
const ids = (msgs) => msgs.map((m) => m.id);

let redis;
let prefix;
let clusterEnv;
/** The three nodes every test shares; tests that kill a node start their own extra one. */
let nodes = [];

before(async () => {
  redis = await startRedis();
  prefix = `e2e${randomBytes(4).toString('hex')}:`;
  clusterEnv = { ...HIGH_LIMITS, CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: prefix };
  nodes = await Promise.all([0, 1, 2].map(() => startServer(clusterEnv)));
});

// Close the test's sockets and wait until every shared node has processed the disconnects,
// so connection counts and presence start clean in the next test.
afterEach(async () => {
  closeAll();
  await eventually(async () => (await Promise.all(nodes.map(connections))).every((n) => n === 0), {
    what: 'shared nodes to report 0 connections',
  });
});

after(async () => {
  closeAll();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

/** Live sockets on a node, from its /healthz. */
async function connections(node) {
  const res = await fetch(`${node.url}/healthz`);
  return (await res.json()).connections;
}

async function sync(socket, cursor) {
  const res = await emitAck(socket, 'sync', cursor === undefined ? {} : { cursor });
  assert.equal(res.ok, true, `sync: ${JSON.stringify(res)}`);
  return res;
}



// --------------------------------------------------------------------------------------- 1. DMs

// A DM reaches every device of the recipient on every node once, and the sender's other
// devices once, in both directions, with WebSocket-only, polling-only and upgrading clients.
test('DMs fan out across nodes and transports, each device once', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const a1 = await connect(nodes[0].url, as(alice), WS);
  const a2 = await connect(nodes[2].url, as(alice), POLL);
  const b1 = await connect(nodes[1].url, as(bob), POLL);
  const b2 = await connect(nodes[2].url, as(bob), WS);
  const b3 = await connect(nodes[0].url, as(bob)); // polling, then upgrade
  const devices = { a1, a2, b1, b2, b3 };
  // The sockets really are spread over three nodes.
  assert.equal(new Set([a1, b1, b2].map((s) => s.ready.node)).size, 3);
  assert.deepEqual(a1.ready, { user: alice, node: a1.ready.node });
  const recs = Object.fromEntries(Object.entries(devices).map(([k, s]) => [k, record(s, 'message', { ack: true })]));
  const expect = { a1: [], a2: [], b1: [], b2: [], b3: [] };

  /** Sends from `name`'s socket and waits until every device in `to` has the message. */
  async function step(name, payload, to) {
    const m = await send(devices[name], payload);
    for (const d of to) {
      const got = await recs[d].waitFor((x) => x.id === m.id);
      assert.deepEqual(got, m, `${d} got the message as acked`);
      expect[d].push(m.id);
    }
    return m;
  }
  const m1 = await step('a1', { to: bob, body: 'hello from node 0' }, ['b1', 'b2', 'b3', 'a2']);
  assert.equal(m1.conversation, dmId(alice, bob));
  assert.equal(m1.from, alice);
  await step('b1', { to: alice, body: 'hi back from node 1 (polling)' }, ['a1', 'a2', 'b2', 'b3']);
  await step('b2', { to: alice, body: 'and from node 2 (websocket)' }, ['a1', 'a2', 'b1', 'b3']);
  await step('a2', { to: bob, body: 'polling on node 2' }, ['a1', 'b1', 'b2', 'b3']);
  // Markers in both directions: a duplicate of anything earlier would have arrived before them.
  await step('a1', { to: bob, body: 'marker 1' }, ['b1', 'b2', 'b3', 'a2']);
  await step('b3', { to: alice, body: 'marker 2' }, ['a1', 'a2', 'b1', 'b2']);
  for (const [d, r] of Object.entries(recs)) {
    assert.deepEqual(ids(r.events), expect[d], `messages at ${d}, each once, in order`);
  }
});

// ------------------------------------------------------------------------------------ 1. groups

// A group created on one node with members on others: membership events and group messages
// reach every member device on every node once; joins and leaves made on any node take effect
// cluster-wide.
test('groups span nodes: create, member events, messages, join, leave', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const dave = uid('dave');
  const sa = await connect(nodes[0].url, as(alice), WS);
  const sb = await connect(nodes[1].url, as(bob), POLL);
  const sc1 = await connect(nodes[2].url, as(carol), WS);
  const sc2 = await connect(nodes[0].url, as(carol), POLL);
  const sd = await connect(nodes[1].url, as(dave), WS);
  const all = { sa, sb, sc1, sc2, sd };
  const members = Object.fromEntries(Object.entries(all).map(([k, s]) => [k, record(s, 'group:member')]));
  const msgs = Object.fromEntries(Object.entries(all).map(([k, s]) => [k, record(s, 'message', { ack: true })]));

  const res = await emitAck(sa, 'group:create', { name: 'Spread', members: [bob, carol] });
  assert.equal(res.ok, true, JSON.stringify(res));
  const g = res.group;
  assert.deepEqual(sorted(g.members), sorted([alice, bob, carol]));
  const conversation = `group:${g.id}`;
  for (const [k, user] of [['sb', bob], ['sc1', carol], ['sc2', carol]]) {
    assert.deepEqual(
      await members[k].waitFor((e) => e.group === g.id && e.user === user),
      { group: g.id, user, event: 'joined' },
      `${k} hears ${user} joined`,
    );
  }

  // Bob, on node 1, was added by alice on node 0: his socket is in the group room.
  const m1 = await send(sb, { group: g.id, body: 'bob on node 1 writes' });
  assert.equal(m1.conversation, conversation);
  for (const k of ['sa', 'sc1', 'sc2']) assert.deepEqual(await msgs[k].waitFor((x) => x.id === m1.id), m1);

  // Dave joins on node 1; everyone, on every node, hears it and his messages.
  const j = await emitAck(sd, 'group:join', { group: g.id });
  assert.equal(j.ok, true, JSON.stringify(j));
  for (const k of ['sa', 'sb', 'sc1', 'sc2', 'sd']) {
    assert.deepEqual(await members[k].waitFor((e) => e.user === dave), { group: g.id, user: dave, event: 'joined' });
  }
  const m2 = await send(sc1, { group: g.id, body: 'carol on node 2 welcomes dave' });
  for (const k of ['sa', 'sb', 'sc2', 'sd']) assert.deepEqual(await msgs[k].waitFor((x) => x.id === m2.id), m2);

  // The member list is the same from every node.
  for (const s of [sa, sb, sc2, sd]) {
    const mem = await emitAck(s, 'group:members', { group: g.id });
    assert.deepEqual(sorted(mem.members), sorted([alice, bob, carol, dave]));
  }

  // Bob leaves through node 1: the others hear it and he gets no more group messages.
  assert.deepEqual(await emitAck(sb, 'group:leave', { group: g.id }), { ok: true });
  for (const k of ['sa', 'sc1', 'sd']) {
    await members[k].waitFor((e) => e.user === bob && e.event === 'left');
  }
  const m3 = await send(sd, { group: g.id, body: 'after bob left' });
  for (const k of ['sa', 'sc1', 'sc2']) await msgs[k].waitFor((x) => x.id === m3.id);
  await expectError(sb, 'message:send', { group: g.id, body: 'let me back' }, 'forbidden');
  // A DM to bob after m3 is the marker that m3 would have reached him by now.
  const marker = await send(sa, { to: bob, body: 'marker' });
  await msgs.sb.waitFor((x) => x.id === marker.id);

  assert.deepEqual(ids(msgs.sa.events), [m1.id, m2.id, m3.id]);
  assert.deepEqual(ids(msgs.sb.events), [m2.id, marker.id], 'bob: m2 once, nothing after leaving');
  assert.deepEqual(ids(msgs.sc1.events), [m1.id, m3.id]);
  assert.deepEqual(ids(msgs.sc2.events), [m1.id, m2.id, m3.id]);
  assert.deepEqual(ids(msgs.sd.events), [m2.id]);
  // Membership events, each once: each initial member its own joining (every device), dave's
  // join at every member device (his own included), bob's leave at the remaining members.
  const counts = (k) =>
    [bob, carol, dave].map((u) => members[k].count((e) => e.user === u && e.event === 'joined')).concat(
      members[k].count((e) => e.user === bob && e.event === 'left'),
    );
  assert.deepEqual(counts('sa'), [0, 0, 1, 1], 'sa');
  for (const k of ['sc1', 'sc2']) assert.deepEqual(counts(k), [0, 1, 1, 1], k);
  assert.deepEqual(counts('sb').slice(0, 3), [1, 0, 1], 'sb');
  assert.deepEqual(counts('sd'), [0, 0, 1, 1], 'sd');
  assert.equal(members.sa.count((e) => e.user === alice), 0, 'no event for the owner');
});

// ------------------------------------------------------------------------- 1. typing, receipts

// Typing (DM and group) and delivered/read receipts travel between nodes; receipts reach
// every device of the sender.
test('typing and receipts cross nodes', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const a1 = await connect(nodes[0].url, as(alice), WS);
  const a2 = await connect(nodes[2].url, as(alice), POLL);
  const b1 = await connect(nodes[1].url, as(bob), POLL);
  const b2 = await connect(nodes[2].url, as(bob), WS);
  const sc = await connect(nodes[2].url, as(carol), WS);
  const conversation = dmId(alice, bob);

  const typingAtBob = record(b1, 'typing');
  const typingAtA2 = record(a2, 'typing');
  a1.emit('typing', { conversation, typing: true });
  assert.deepEqual(await typingAtBob.waitFor((t) => t.typing), { conversation, user: alice, typing: true });
  b2.emit('typing', { conversation, typing: false });
  assert.deepEqual(await typingAtA2.waitFor((t) => t.user === bob), { conversation, user: bob, typing: false });

  const g = (await emitAck(a1, 'group:create', { name: 'Typists', members: [bob, carol] })).group;
  const typingAtCarol = record(sc, 'typing');
  a1.emit('typing', { conversation: `group:${g.id}`, typing: true });
  const groupTyping = { conversation: `group:${g.id}`, user: alice, typing: true };
  assert.deepEqual(await typingAtCarol.waitFor((t) => t.user === alice), groupTyping);
  assert.deepEqual(await typingAtBob.waitFor((t) => t.conversation === `group:${g.id}`), groupTyping);

  // Delivered: bob's polling device on node 1 acks the message sent on node 0.
  const r1 = record(a1, 'receipt');
  const r2 = record(a2, 'receipt');
  record(b1, 'message', { ack: true });
  const m = await send(a1, { to: bob, body: 'tell me when you have it' });
  const delivered = { conversation, user: bob, messageId: m.id, status: 'delivered' };
  assert.deepEqual(await r1.waitFor((r) => r.status === 'delivered'), delivered);
  assert.deepEqual(await r2.waitFor((r) => r.status === 'delivered'), delivered);

  // Read: bob reads on node 2; both of alice's devices (nodes 0 and 2) get the receipt.
  assert.deepEqual(await emitAck(b2, 'read', { conversation, messageId: m.id }), { ok: true });
  const read = { conversation, user: bob, messageId: m.id, status: 'read' };
  assert.deepEqual(await r1.waitFor((r) => r.status === 'read'), read);
  assert.deepEqual(await r2.waitFor((r) => r.status === 'read'), read);

  // Group read receipt from carol on node 2 to alice on node 0.
  const gm = await send(a1, { group: g.id, body: 'read me' });
  assert.deepEqual(await emitAck(sc, 'read', { conversation: `group:${g.id}`, messageId: gm.id }), { ok: true });
  assert.deepEqual(
    await r1.waitFor((r) => r.status === 'read' && r.user === carol),
    { conversation: `group:${g.id}`, user: carol, messageId: gm.id, status: 'read' },
  );
});

// ------------------------------------------------------------------------------------ 1. presence

// Presence is cluster-wide: a subscriber on one node sees a user on other nodes come online
// with the first device and go offline (with lastSeen) only when the last device, on another
// node, leaves; snapshots agree from every node.
test('presence across nodes: first device online, last device offline', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(nodes[0].url, as(alice), WS);
  assert.deepEqual(await presenceOf(sa, [bob]), { [bob]: { online: false, lastSeen: null } });
  const presence = record(sa, 'presence');

  const b1 = await connect(nodes[1].url, as(bob), POLL);
  assert.deepEqual(await presence.waitFor((p) => p.user === bob), { user: bob, online: true, lastSeen: null });
  const b2 = await connect(nodes[2].url, as(bob), WS);
  for (const n of nodes) {
    const watcher = await connect(n.url, as(uid('watcher')), POLL);
    assert.equal((await presenceOf(watcher, [bob]))[bob].online, true, `online seen from ${n.url}`);
    watcher.close();
  }

  // Bob's node-1 device leaves; once node 1 has processed that (its only socket is gone), he is
  // still online through node 2.
  await eventually(async () => (await connections(nodes[1])) === 1, { what: 'node 1 to hold only bob\'s socket' });
  b1.close();
  await eventually(async () => (await connections(nodes[1])) === 0, { what: 'node 1 to drop bob\'s socket' });
  assert.equal((await presenceOf(sa, [bob]))[bob].online, true);

  const before = Date.now();
  b2.close();
  const off = await presence.waitFor((p) => p.user === bob && p.online === false);
  assert.equal(typeof off.lastSeen, 'number');
  assert.ok(off.lastSeen >= before - 2000 && off.lastSeen <= Date.now() + 2000, `lastSeen ${off.lastSeen}`);
  // One online and one offline event in all: closing the first device announced nothing.
  assert.deepEqual(presence.all((p) => p.user === bob).map((p) => p.online), [true, false]);
  for (const n of nodes) {
    const watcher = await connect(n.url, as(uid('watcher')), WS);
    const snap = (await presenceOf(watcher, [bob]))[bob];
    assert.equal(snap.online, false);
    assert.ok(Math.abs(snap.lastSeen - off.lastSeen) <= 1000, `lastSeen from ${n.url}: ${snap.lastSeen}`);
  }
});

// -------------------------------------------------------------------------- 1. blocks, retries

// A block made on one node is enforced on every node; unblocking on another node lifts it.
test('blocks are enforced across nodes', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const a1 = await connect(nodes[0].url, as(alice), WS);
  const a2 = await connect(nodes[2].url, as(alice), POLL);
  const b1 = await connect(nodes[1].url, as(bob), POLL);
  const b2 = await connect(nodes[2].url, as(bob), WS);
  const atBob = record(b2, 'message');

  assert.deepEqual(await emitAck(b1, 'block', { user: alice }), { ok: true });
  await expectError(a1, 'message:send', { to: bob, body: 'from node 0' }, 'forbidden');
  await expectError(a2, 'message:send', { to: bob, body: 'from node 2' }, 'forbidden');
  // Bob can still write to alice.
  await send(b1, { to: alice, body: 'I can still talk' });

  assert.deepEqual(await emitAck(b2, 'unblock', { user: alice }), { ok: true });
  const m = await send(a1, { to: bob, body: 'unblocked' });
  await atBob.waitFor((x) => x.id === m.id);
  assert.equal(atBob.count((x) => x.from === alice), 1, 'only the message after unblock arrived');
});

// Retrying a clientId through another node answers the first message with duplicate:true and
// delivers nothing twice; a different body under that clientId is a conflict on any node.
test('idempotent clientId retries through another node', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const a1 = await connect(nodes[0].url, as(alice), WS);
  const a2 = await connect(nodes[1].url, as(alice), POLL);
  const b1 = await connect(nodes[2].url, as(bob), WS);
  const b2 = await connect(nodes[1].url, as(bob), POLL);
  const atB1 = record(b1, 'message', { ack: true });
  const atB2 = record(b2, 'message', { ack: true });
  const atA2 = record(a2, 'message');
  const clientId = `c-${randomBytes(6).toString('hex')}`;
  const payload = { to: bob, body: 'exactly once', clientId };

  const first = await emitAck(a1, 'message:send', payload);
  assert.equal(first.ok, true, JSON.stringify(first));
  assert.equal(first.duplicate, false);
  assert.equal(first.message.clientId, clientId);
  const retry = await emitAck(a2, 'message:send', payload);
  assert.deepEqual(retry, { ok: true, message: first.message, duplicate: true });
  const a3 = await connect(nodes[2].url, as(alice), WS);
  const third = await emitAck(a3, 'message:send', payload);
  assert.deepEqual(third, { ok: true, message: first.message, duplicate: true });
  await expectError(a2, 'message:send', { ...payload, body: 'something else' }, 'conflict');

  const marker = await send(a1, { to: bob, body: 'marker' });
  for (const r of [atB1, atB2, atA2]) {
    await r.waitFor((x) => x.id === marker.id);
    assert.deepEqual(ids(r.events), [first.message.id, marker.id]);
  }
  const h = await emitAck(b1, 'history', { conversation: dmId(alice, bob) });
  assert.deepEqual(ids(h.messages), [first.message.id, marker.id]);

  // The same new clientId sent at once through three nodes: one stored, the rest duplicates.
  const raced = { to: bob, body: 'raced', clientId: `${clientId}-race` };
  const answers = await Promise.all([a1, a2, a3].map((s) => emitAck(s, 'message:send', raced)));
  assert.ok(answers.every((x) => x.ok), JSON.stringify(answers));
  assert.equal(answers.filter((x) => !x.duplicate).length, 1, JSON.stringify(answers));
  assert.equal(new Set(answers.map((x) => x.message.id)).size, 1);
  const marker2 = await send(a1, { to: bob, body: 'marker 2' });
  await atB2.waitFor((x) => x.id === marker2.id);
  assert.deepEqual(ids(atB2.events), [first.message.id, marker.id, answers[0].message.id, marker2.id]);
});

// ------------------------------------------------------------------------------- 1. read models

// History, conversations (with unread counts) and first sync answer the same from every node.
test('history, conversations and unread are identical from every node', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(nodes[0].url, as(alice), WS);
  const sb = await connect(nodes[1].url, as(bob), POLL);
  const sc = await connect(nodes[2].url, as(carol), WS);
  const g = (await emitAck(sa, 'group:create', { name: 'Readers', members: [bob, carol] })).group;
  const sent = [];
  sent.push(await send(sb, { to: alice, body: 'b1' }));
  sent.push(await send(sc, { group: g.id, body: 'c1' }));
  sent.push(await send(sb, { to: alice, body: 'b2' }));
  sent.push(await send(sa, { to: bob, body: 'a1' }));
  sent.push(await send(sb, { group: g.id, body: 'b3' }));
  sent.push(await send(sc, { to: alice, body: 'c2' }));
  // Alice reads the first DM from bob through node 2.
  const a2 = await connect(nodes[2].url, as(alice), POLL);
  assert.deepEqual(await emitAck(a2, 'read', { conversation: dmId(alice, bob), messageId: sent[0].id }), { ok: true });

  const views = [];
  for (const [i, n] of nodes.entries()) {
    const s = await connect(n.url, as(alice), i === 1 ? POLL : WS);
    const dmBob = await emitAck(s, 'history', { conversation: dmId(alice, bob) });
    const group = await emitAck(s, 'history', { conversation: `group:${g.id}`, limit: 1 });
    const convs = await emitAck(s, 'conversations', {});
    views.push({ dmBob, group, convs });
  }
  assert.deepEqual(ids(views[0].dmBob.messages), [sent[0].id, sent[2].id, sent[3].id]);
  assert.deepEqual(views[0].group, { ok: true, messages: [sent[4]], hasMore: true });
  const expected = [
    { id: dmId(alice, carol), lastMessage: sent[5], unread: 1 },
    { id: `group:${g.id}`, lastMessage: sent[4], unread: 2 },
    { id: dmId(alice, bob), lastMessage: sent[3], unread: 1 },
  ];
  assert.equal(views[0].convs.ok, true);
  assert.deepEqual(
    views[0].convs.conversations.map(({ id, lastMessage, unread }) => ({ id, lastMessage, unread })),
    expected,
  );
  assert.equal(views[0].convs.conversations[1].name, 'Readers');
  assert.deepEqual(views[1], views[0], 'node 1 answers like node 0');
  assert.deepEqual(views[2], views[0], 'node 2 answers like node 0');
  // Unread is the same first sync from any node: bob's b2 and carol's two messages.
  const syncs = [];
  for (const n of nodes) syncs.push(ids((await sync(await connect(n.url, as(alice), WS))).messages));
  assert.deepEqual(sorted(syncs[0]), sorted([sent[1].id, sent[2].id, sent[4].id, sent[5].id]));
  assert.deepEqual(syncs[1], syncs[0]);
  assert.deepEqual(syncs[2], syncs[0]);
});

// ------------------------------------------------------------------------------------ 2. sync

// A user who left node 0 and comes back on node 2 gets, with the cursor they kept, exactly the
// messages sent while they were away, once and in order; a second sync brings nothing new.
test('offline user syncs on a different node than the one they left', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(nodes[1].url, as(alice), POLL);
  const sc = await connect(nodes[2].url, as(carol), WS);
  let sb = await connect(nodes[0].url, as(bob), WS);
  const g = (await emitAck(sa, 'group:create', { name: 'Away', members: [bob, carol] })).group;
  const live = record(sb, 'message', { ack: true });
  const before = await send(sa, { to: bob, body: 'before you left' });
  await live.waitFor((x) => x.id === before.id);
  const first = await sync(sb);
  assert.deepEqual(ids(first.messages), [before.id]);
  const cursor = first.cursor;
  sb.close();
  await eventually(async () => (await presenceOf(sa, [bob]))[bob].online === false, { what: 'bob offline' });

  const away = [];
  away.push(await send(sa, { to: bob, body: 'one' }));
  away.push(await send(sc, { group: g.id, body: 'two' }));
  away.push(await send(sc, { to: bob, body: 'three' }));
  away.push(await send(sa, { group: g.id, body: 'four' }));
  // Bob's own send from a device on another node while his phone was away.
  const bobTablet = await connect(nodes[1].url, as(bob), WS);
  away.push(await send(bobTablet, { to: carol, body: 'five, from my tablet' }));
  bobTablet.close();

  sb = await connect(nodes[2].url, as(bob), POLL);
  const caughtUp = await sync(sb, cursor);
  assert.deepEqual(caughtUp.messages, away, 'every message once, in order, as sent');
  assert.equal(caughtUp.hasMore, false);
  assert.ok(increasing(ids(caughtUp.messages.filter((m) => m.conversation === `group:${g.id}`))));
  const again = await sync(sb, caughtUp.cursor);
  assert.deepEqual(again.messages, []);
  assert.equal(again.hasMore, false);
  // The old cursor still works from yet another node and answers the same.
  const other = await connect(nodes[0].url, as(bob), WS);
  assert.deepEqual((await sync(other, cursor)).messages, away);
});

// ------------------------------------------------------------------------------- 3. rate limits

// The per-user message rate is shared by a user's devices on different nodes: with a burst of
// 3 the 4th send, whichever node it goes through, is rate_limited; other users are unaffected.
test('rate limits hold across a user\'s devices on two nodes', async (t) => {
  const env = {
    ...clusterEnv,
    CHAT_REDIS_PREFIX: `${prefix}rl:`,
    CHAT_RATE_MESSAGES: '0.1',
    CHAT_RATE_MESSAGES_BURST: '3',
  };
  const limited = await Promise.all([startServer(env), startServer(env)]);
  t.after(() => Promise.all(limited.map((n) => n.stop())));
  const alice = uid('alice');
  const bob = uid('bob');
  const d1 = await connect(limited[0].url, as(alice), WS);
  const d2 = await connect(limited[1].url, as(alice), POLL);
  await send(d1, { to: bob, body: '1' });
  await send(d2, { to: bob, body: '2' });
  await send(d1, { to: bob, body: '3' });
  await expectError(d2, 'message:send', { to: bob, body: '4' }, 'rate_limited');
  await expectError(d1, 'message:send', { to: bob, body: '5' }, 'rate_limited');
  assert.ok(d1.connected && d2.connected, 'rate_limited keeps the connections open');
  // Concurrent sends of another user through both nodes: exactly the burst gets through.
  const carol = uid('carol');
  const c1 = await connect(limited[0].url, as(carol), POLL);
  const c2 = await connect(limited[1].url, as(carol), WS);
  const burst = await Promise.all(
    Array.from({ length: 8 }, (_, i) => emitAck(i % 2 ? c1 : c2, 'message:send', { to: bob, body: `burst ${i}` })),
  );
  assert.equal(burst.filter((x) => x.ok).length, 3, JSON.stringify(burst));
  assert.ok(burst.every((x) => x.ok || x.error.code === 'rate_limited'), JSON.stringify(burst));
  // Bob has his own budget, on either node.
  const sb = await connect(limited[1].url, as(bob), WS);
  await send(sb, { to: alice, body: 'my own budget' });
  const h = await emitAck(sb, 'history', { conversation: dmId(alice, bob) });
  assert.deepEqual(h.messages.map((m) => m.body), ['1', '2', '3', 'my own budget']);
});

// ---------------------------------------------------------------------------------- 4. SIGKILL

// When a node dies (SIGKILL) its clients are cut off, reconnect to another node and get every
// message sent meanwhile once through sync; peers see its users offline once its lease lapses.
test('a killed node: clients reconnect elsewhere and sync, users go offline', async (t) => {
  const doomed = await startServer(clusterEnv);
  t.after(() => doomed.stop());
  const dave = uid('dave');
  const carol = uid('carol');
  const erin = uid('erin');
  const sd = await connect(nodes[0].url, as(dave), WS);
  assert.deepEqual(await presenceOf(sd, [carol, erin]), {
    [carol]: { online: false, lastSeen: null },
    [erin]: { online: false, lastSeen: null },
  });
  const c1 = await connect(doomed.url, as(carol), WS);
  const c2 = await connect(doomed.url, as(carol), POLL);
  const se = await connect(doomed.url, as(erin), POLL);
  await eventually(
    async () => Object.values(await presenceOf(sd, [carol, erin])).every((p) => p.online),
    { what: 'carol and erin online' },
  );
  const g = (await emitAck(sd, 'group:create', { name: 'Survivors', members: [carol, erin] })).group;
  const atC1 = record(c1, 'message', { ack: true });
  const m0 = await send(sd, { to: carol, body: 'before the crash' });
  await atC1.waitFor((x) => x.id === m0.id);
  const { cursor } = await sync(c1);

  const gone = [c1, c2, se].map((s) => waitDisconnect(s, 10000));
  doomed.proc.kill('SIGKILL');
  assert.equal((await withDeadline(doomed.exited, 5000, 'killed node to exit')).signal, 'SIGKILL');
  await Promise.all(gone);

  // Sends while the node is dead succeed and are stored.
  const meanwhile = [];
  meanwhile.push(await send(sd, { to: carol, body: 'are you there?' }));
  meanwhile.push(await send(sd, { group: g.id, body: 'group while down' }));
  meanwhile.push(await send(sd, { to: carol, body: 'hello?' }));

  // Peers see the dead node's users offline once its lease has run out.
  const snap = await eventually(
    async () => {
      const p = await presenceOf(sd, [carol, erin]);
      return !p[carol].online && !p[erin].online && p;
    },
    { timeoutMs: 10000, intervalMs: 250, what: 'carol and erin offline after their node died' },
  );
  assert.equal(snap[carol].online, false);
  assert.equal(snap[erin].online, false);

  // Carol reconnects to another node and catches up once, in order.
  const presence = record(sd, 'presence');
  const back = await connect(nodes[1].url, as(carol), POLL);
  const res = await sync(back, cursor);
  assert.deepEqual(res.messages, meanwhile);
  assert.deepEqual((await sync(back, res.cursor)).messages, []);
  // She is online again for her peers, and live delivery reaches her new node.
  assert.equal((await presence.waitFor((p) => p.user === carol && p.online)).online, true);
  const atBack = record(back, 'message');
  const live = await send(sd, { group: g.id, body: 'welcome back' });
  assert.deepEqual(await atBack.waitFor((x) => x.id === live.id), live);
  const marker = await send(sd, { to: carol, body: 'marker' });
  await atBack.waitFor((x) => x.id === marker.id);
  assert.deepEqual(ids(atBack.events), [live.id, marker.id]);
});

// --------------------------------------------------------------------------------- 5. SIGTERM

// SIGTERM on a cluster node: its clients get drain {reconnect:true}; writes during the drain
// still succeed and reach recipients on other nodes (Redis keeps them); the process exits 0.
test('SIGTERM in cluster mode drains, keeps accepting writes, exits 0', async (t) => {
  const leaving = await startServer({ ...clusterEnv, CHAT_DRAIN_TIMEOUT: '10s' });
  t.after(() => leaving.stop());
  const frank = uid('frank');
  const gina = uid('gina');
  const f1 = await connect(leaving.url, as(frank), WS);
  const f2 = await connect(leaving.url, as(frank), POLL);
  const sg = await connect(nodes[1].url, as(gina), WS);
  const atGina = record(sg, 'message', { ack: true });
  const atF1 = record(f1, 'message', { ack: true });
  const drains = [record(f1, 'drain'), record(f2, 'drain')];

  const nodeKey = `${prefix}node:${clusterUid(leaving)}`;
  assert.equal(await redisCommand(redis.port, ['HGET', nodeKey, 'draining']), '0');

  leaving.proc.kill('SIGTERM');
  for (const d of drains) assert.deepEqual(await d.waitFor(), { reconnect: true });
  // The node table says it is draining (at its next heartbeat), so nobody picks it.
  await eventually(async () => (await redisCommand(redis.port, ['HGET', nodeKey, 'draining'])) === '1', {
    what: `${nodeKey} draining=1`,
  });

  // Writes during the drain: acked ok, delivered across nodes, both ways.
  const during = await emitAck(f1, 'message:send', { to: gina, body: 'written during drain (ws)' });
  assert.equal(during.ok, true, JSON.stringify(during));
  assert.deepEqual(await atGina.waitFor((x) => x.id === during.message.id), during.message);
  const during2 = await send(f2, { to: gina, body: 'written during drain (polling)' });
  assert.deepEqual(await atGina.waitFor((x) => x.id === during2.id), during2);
  const reply = await send(sg, { to: frank, body: 'reply to a draining node' });
  assert.deepEqual(await atF1.waitFor((x) => x.id === reply.id), reply);
  // The draining node takes no new connections.
  assert.match(await connectError(leaving.url, as(uid('late'))), /^unavailable/);

  // The clients leave as told, the node exits 0 well before its drain timeout.
  const closedAt = Date.now();
  f1.close();
  f2.close();
  const { code, signal } = await withDeadline(leaving.exited, 8000, 'drained node to exit');
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.ok(Date.now() - closedAt < 8000);
  // It left the node table on the way out.
  assert.equal(await redisCommand(redis.port, ['ZSCORE', `${prefix}nodes`, clusterUid(leaving)]), null);
  assert.equal(await redisCommand(redis.port, ['EXISTS', nodeKey]), 0);

  // Frank reconnects elsewhere: everything written during the drain is there.
  const back = await connect(nodes[2].url, as(frank), POLL);
  const h = await emitAck(back, 'history', { conversation: dmId(frank, gina) });
  assert.deepEqual(h.messages, [during.message, during2, reply]);
});
