// History paging, sync cursors (offline catch-up), conversations list and read positions.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, closeAll, as, uid, dmId, send, emitAck, expectError, increasing,
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

const ids = (ms) => ms.map((m) => m.id);

async function history(socket, payload) {
  const res = await emitAck(socket, 'history', payload);
  assert.equal(res.ok, true, `history ${JSON.stringify(payload)}: ${JSON.stringify(res)}`);
  assert.equal(typeof res.hasMore, 'boolean');
  assert.ok(increasing(ids(res.messages)), 'history is oldest first');
  return res;
}

async function sync(socket, cursor) {
  const res = await emitAck(socket, 'sync', cursor === undefined ? {} : { cursor });
  assert.equal(res.ok, true, `sync: ${JSON.stringify(res)}`);
  assert.equal(typeof res.cursor, 'string');
  assert.equal(typeof res.hasMore, 'boolean');
  return res;
}

// History pages backwards with `before`/`limit`, oldest first, and hasMore tells if older exist.
test('history paging with before and limit', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const sent = [];
  for (let i = 1; i <= 7; i++) sent.push(await send(i === 4 ? sb : sa, { to: i === 4 ? alice : bob, body: `m${i}` }));
  assert.ok(increasing(ids(sent)));
  const conversation = dmId(alice, bob);

  const p1 = await history(sb, { conversation, limit: 3 });
  assert.deepEqual(p1.messages, sent.slice(4, 7));
  assert.equal(p1.hasMore, true);
  const p2 = await history(sb, { conversation, limit: 3, before: p1.messages[0].id });
  assert.deepEqual(ids(p2.messages), ids(sent.slice(1, 4)));
  assert.equal(p2.hasMore, true);
  const p3 = await history(sa, { conversation, limit: 3, before: p2.messages[0].id });
  assert.deepEqual(ids(p3.messages), ids(sent.slice(0, 1)));
  assert.equal(p3.hasMore, false);

  // A full page with nothing older: hasMore is false.
  const exact = await history(sa, { conversation, limit: 3, before: sent[3].id });
  assert.deepEqual(ids(exact.messages), ids(sent.slice(0, 3)));
  assert.equal(exact.hasMore, false);

  const all = await history(sa, { conversation });
  assert.deepEqual(all.messages, sent);
  assert.equal(all.hasMore, false);
  const six = await history(sa, { conversation, limit: 6 });
  assert.deepEqual(ids(six.messages), ids(sent.slice(1)));
  assert.equal(six.hasMore, true);
  assert.equal((await history(sa, { conversation, limit: 100 })).messages.length, 7);
  assert.equal((await history(sa, { conversation, limit: 1 })).messages[0].id, sent[6].id);
  // `before` need not be an existing id.
  const future = await history(sa, { conversation, before: `${Date.now() + 3_600_000}-0` });
  assert.equal(future.messages.length, 7);
  const past = await history(sa, { conversation, before: '1-0' });
  assert.deepEqual(past.messages, []);
  assert.equal(past.hasMore, false);

  // A DM without messages yet is an empty page.
  const empty = await history(sa, { conversation: dmId(alice, uid('nobody')) });
  assert.deepEqual(empty.messages, []);
  assert.equal(empty.hasMore, false);
});

// Out-of-range limits and bad ids are bad_request; reading someone else's DM is forbidden.
test('history validation and access', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(server.url, as(alice));
  const sc = await connect(server.url, as(carol));
  await send(sa, { to: bob, body: 'private' });
  const conversation = dmId(alice, bob);
  for (const limit of [0, 101, -1, 2.5, '3']) {
    await expectError(sa, 'history', { conversation, limit }, 'bad_request');
  }
  await expectError(sa, 'history', { conversation, before: 'yesterday' }, 'bad_request');
  await expectError(sa, 'history', { conversation: 'dm:nope' }, 'bad_request');
  await expectError(sa, 'history', { conversation: 'chat:xyz' }, 'bad_request');
  await expectError(sa, 'history', {}, 'bad_request');
  await expectError(sc, 'history', { conversation }, 'forbidden');
});

// Group history works for members like DM history.
test('group history for members', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const g = (await emitAck(sa, 'group:create', { name: 'Log', members: [bob] })).group;
  const sent = [];
  for (let i = 0; i < 4; i++) sent.push(await send(i % 2 ? sb : sa, { group: g.id, body: `g${i}` }));
  const h = await history(sb, { conversation: `group:${g.id}`, limit: 2 });
  assert.deepEqual(h.messages, sent.slice(2));
  assert.equal(h.hasMore, true);
});

// An offline user catches up with sync: first the unread messages, then only what is new,
// never a message twice, across DMs and groups, including their own sends from other devices.
test('sync catches up offline users without duplicates', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const carol = uid('carol');
  const sa = await connect(server.url, as(alice));
  const sc = await connect(server.url, as(carol));
  // Bob's own message, sent before he went offline, is not unread for him.
  const b0 = await connect(server.url, as(bob));
  const own = await send(b0, { to: alice, body: 'from bob' });
  b0.close();

  const g = (await emitAck(sa, 'group:create', { name: 'Sync', members: [bob, carol] })).group;
  const batch1 = [
    await send(sa, { to: bob, body: 'a1' }),
    await send(sc, { to: bob, body: 'c1' }),
    await send(sa, { group: g.id, body: 'g1' }),
    await send(sa, { to: bob, body: 'a2' }),
    await send(sc, { group: g.id, body: 'g2' }),
    await send(sa, { to: bob, body: 'a3' }),
  ];

  const b1 = await connect(server.url, as(bob));
  const s1 = await sync(b1);
  assert.deepEqual(ids(s1.messages), ids(batch1));
  assert.deepEqual(s1.messages, batch1);
  assert.equal(s1.hasMore, false);
  assert.ok(!s1.messages.some((m) => m.id === own.id));
  const s1b = await sync(b1, s1.cursor);
  assert.deepEqual(s1b.messages, []);
  assert.equal(s1b.hasMore, false);
  b1.close();

  // Offline again: only the new messages come with the old cursor.
  const batch2 = [await send(sa, { to: bob, body: 'a4' }), await send(sc, { group: g.id, body: 'g3' })];
  const b2 = await connect(server.url, as(bob), { transports: ['polling'] });
  const s2 = await sync(b2, s1b.cursor);
  assert.deepEqual(ids(s2.messages), ids(batch2));
  assert.equal(s2.hasMore, false);
  assert.deepEqual((await sync(b2, s2.cursor)).messages, []);

  // With a cursor, the user's own sends from another device are included.
  const b3 = await connect(server.url, as(bob));
  const mine = await send(b3, { to: carol, body: 'from my laptop' });
  const s3 = await sync(b2, s2.cursor);
  assert.deepEqual(ids(s3.messages), [mine.id]);

  // A new device without a cursor gets only what is after bob's read positions.
  assert.deepEqual(await emitAck(b3, 'read', { conversation: dmId(alice, bob), messageId: batch1[3].id }), { ok: true });
  const b4 = await connect(server.url, as(bob));
  const s4 = await sync(b4);
  const [, c1, g1, , g2, a3] = batch1;
  const [a4, g3] = batch2;
  assert.deepEqual(ids(s4.messages), ids([c1, g1, g2, a3, a4, g3]));
});

// More than 100 pending messages come in pages: hasMore until the last page, nothing twice.
test('sync pages 130 messages with hasMore', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sent = [];
  for (let i = 0; i < 130; i++) sent.push((await send(sa, { to: bob, body: `p${i}` })).id);

  const sb = await connect(server.url, as(bob));
  const got = [];
  let cursor;
  const pages = [];
  for (let calls = 0; calls < 10; calls++) {
    const res = await sync(sb, cursor);
    assert.ok(res.messages.length <= 100);
    pages.push(res.messages.length);
    got.push(...ids(res.messages));
    cursor = res.cursor;
    if (!res.hasMore) break;
  }
  assert.deepEqual(pages, [100, 30]);
  assert.deepEqual(got, sent);
  assert.deepEqual((await sync(sb, cursor)).messages, []);
});

// A cursor the server never issued is bad_request.
test('sync with a malformed cursor is bad_request', async () => {
  const sb = await connect(server.url, as(uid('bob')));
  await expectError(sb, 'sync', { cursor: 'definitely not a cursor' }, 'bad_request');
  await expectError(sb, 'sync', { cursor: 12 }, 'bad_request');
  await expectError(sb, 'sync', { cursor: { a: 1 } }, 'bad_request');
});

// A cursor older than a conversation's retained history (CHAT_HISTORY_MAX) answers
// truncated: true with the oldest messages kept.
test('sync reports truncated when the cursor is older than the history kept', async (t) => {
  const small = await startServer({ ...HIGH_LIMITS, CHAT_HISTORY_MAX: '5' });
  t.after(() => small.stop());
  const alice = uid('alice');
  const bob = uid('bob');
  const sb = await connect(small.url, as(bob));
  const sa = await connect(small.url, as(alice));
  await send(sa, { to: bob, body: 'first' });
  const start = await sync(sb);
  assert.equal(start.messages.length, 1);
  assert.ok(!start.truncated);
  const sent = [];
  for (let i = 0; i < 8; i++) sent.push((await send(sa, { to: bob, body: `t${i}` })).id);
  const res = await sync(sb, start.cursor);
  assert.equal(res.truncated, true);
  const got = ids(res.messages);
  assert.ok(got.length > 0 && got.length <= 5, `got ${got.length}`);
  assert.deepEqual(got, sent.slice(sent.length - got.length), 'the newest, in order');
  const again = await sync(sb, res.cursor);
  assert.deepEqual(again.messages, []);
  assert.ok(!again.truncated);
});

// conversations lists DMs and groups with lastMessage and unread; read clears unread, never backwards.
test('conversations and read', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sb = await connect(server.url, as(bob));
  const quiet = (await emitAck(sa, 'group:create', { name: 'Quiet', members: [bob] })).group;
  const team = (await emitAck(sa, 'group:create', { name: 'Team', members: [bob] })).group;
  const d1 = await send(sa, { to: bob, body: 'one' });
  const d2 = await send(sa, { to: bob, body: 'two' });
  const t1 = await send(sa, { group: team.id, body: 'team news' });

  const list = async (s) => {
    const res = await emitAck(s, 'conversations', {});
    assert.equal(res.ok, true, JSON.stringify(res));
    return res.conversations;
  };
  const byId = (cs) => Object.fromEntries(cs.map((c) => [c.id, c]));
  const dm = dmId(alice, bob);

  let cs = await list(sb);
  assert.deepEqual(cs.map((c) => c.id).sort(), [dm, `group:${quiet.id}`, `group:${team.id}`].sort());
  let c = byId(cs);
  assert.deepEqual(c[dm].lastMessage, d2);
  assert.equal(c[dm].unread, 2);
  assert.equal(c[`group:${team.id}`].name, 'Team');
  assert.deepEqual(c[`group:${team.id}`].lastMessage, t1);
  assert.equal(c[`group:${team.id}`].unread, 1);
  assert.equal(c[`group:${quiet.id}`].name, 'Quiet');
  assert.equal(c[`group:${quiet.id}`].lastMessage, null);
  assert.equal(c[`group:${quiet.id}`].unread, 0);
  // Most recently active first (when the two last messages are not in the same millisecond).
  const order = cs.map((x) => x.id);
  if (t1.ts > d2.ts) assert.ok(order.indexOf(`group:${team.id}`) < order.indexOf(dm), `order ${order}`);

  // The sender's own messages are not unread for her.
  c = byId(await list(sa));
  assert.equal(c[dm].unread, 0);
  assert.equal(c[`group:${team.id}`].unread, 0);

  assert.deepEqual(await emitAck(sb, 'read', { conversation: dm, messageId: d2.id }), { ok: true });
  c = byId(await list(sb));
  assert.equal(c[dm].unread, 0);
  assert.equal(c[`group:${team.id}`].unread, 1);

  // Reading an older id does not move the position back.
  assert.deepEqual(await emitAck(sb, 'read', { conversation: dm, messageId: d1.id }), { ok: true });
  const d3 = await send(sa, { to: bob, body: 'three' });
  c = byId(await list(sb));
  assert.equal(c[dm].unread, 1);
  assert.deepEqual(c[dm].lastMessage, d3);

  assert.deepEqual(await emitAck(sb, 'read', { conversation: `group:${team.id}`, messageId: t1.id }), { ok: true });
  c = byId(await list(sb));
  assert.equal(c[`group:${team.id}`].unread, 0);

  // A user with no DM messages and no groups has no conversations.
  const sc = await connect(server.url, as(uid('carol')));
  assert.deepEqual(await list(sc), []);
  await expectError(sc, 'read', { conversation: dm, messageId: d1.id }, 'forbidden');
  await expectError(sb, 'read', { conversation: dm, messageId: 'latest' }, 'bad_request');
  await expectError(sb, 'read', { conversation: dm }, 'bad_request');
});

// Messages sent concurrently by many users, some while the recipient is syncing, all come
// through sync exactly once (the cursor never skips or repeats across conversations).
test('sync during concurrent sends misses nothing and repeats nothing', async () => {
  const bob = uid('bob');
  const senders = await Promise.all(Array.from({ length: 6 }, () => connect(server.url, as(uid('s')))));
  const g = (await emitAck(senders[0], 'group:create', { name: 'Busy', members: [bob, ...senders.slice(1).map((s) => s.ready.user)] })).group;
  const sb = await connect(server.url, as(bob));
  let cursor = (await sync(sb)).cursor;

  const got = [];
  const sending = Promise.all(
    senders.map(async (s, i) => {
      const mine = [];
      for (let k = 0; k < 8; k++) {
        const target = k % 2 ? { group: g.id } : { to: bob };
        mine.push((await send(s, { ...target, body: `s${i}-${k}` })).id);
      }
      return mine;
    }),
  );
  // Sync repeatedly while the senders are busy, then once more after they are done.
  let done = false;
  sending.finally(() => {
    done = true;
  });
  for (let rounds = 0; rounds < 500; rounds++) {
    const finished = done;
    const res = await sync(sb, cursor);
    got.push(...res.messages.map((m) => `${m.conversation}/${m.id}`));
    cursor = res.cursor;
    if (finished && !res.hasMore) break;
  }
  await sending;
  assert.equal(new Set(got).size, got.length, 'a message came twice');
  assert.equal(got.length, senders.length * 8);
  const bodies = (await emitAck(sb, 'history', { conversation: `group:${g.id}`, limit: 100 })).messages.length;
  assert.equal(bodies, senders.length * 4);
});

// Without a limit, history returns the newest 50.
test('history default limit is 50', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(server.url, as(alice));
  const sent = [];
  for (let i = 0; i < 53; i++) sent.push((await send(sa, { to: bob, body: `d${i}` })).id);
  const res = await history(sa, { conversation: dmId(alice, bob) });
  assert.deepEqual(ids(res.messages), sent.slice(3));
  assert.equal(res.hasMore, true);
});
