// socket.io-client 2.x (Engine.IO 3, Socket.IO protocol v4), the real package from npm, next to
// 4.x clients: refused unless CHAT_ALLOW_EIO3=true, then chatting across two nodes over
// WebSocket and polling, authenticated by query parameters.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  startServer, startRedis, connect, closeAll, as, uid, dmId, send, emitAck, record,
  withDeadline, makeToken, nowSecs, DEFAULT_TIMEOUT, HIGH_LIMITS,
} from './helpers.mjs';

// socket.io-client 2.x is CommonJS, installed as `socket.io-client-v2` (package.json).
const io2 = createRequire(import.meta.url)('socket.io-client-v2');

const SECRET = randomBytes(24).toString('hex');
let redis;
let nodes = [];
let jwtNode;
let refusing;
const legacy = new Set();

before(async () => {
  redis = await startRedis();
  const env = {
    ...HIGH_LIMITS,
    CHAT_ALLOW_EIO3: 'true',
    CHAT_REDIS_URL: redis.url,
    CHAT_REDIS_PREFIX: `e2e${randomBytes(4).toString('hex')}:`,
  };
  [nodes[0], nodes[1], jwtNode, refusing] = await Promise.all([
    startServer(env),
    startServer(env),
    // Every log line, to show that a token in the query is never logged.
    startServer({ CHAT_ALLOW_EIO3: 'true', CHAT_AUTH_SECRET: SECRET, RUST_LOG: 'trace' }),
    startServer(),
  ]);
});
afterEach(() => {
  closeAll();
  for (const s of legacy) s.close();
  legacy.clear();
});
after(async () => {
  await Promise.all([...nodes, jwtNode, refusing].map((n) => n?.stop()));
  await redis?.stop();
});

/**
 * A 2.x socket with credentials in its query, on one transport (`upgrade`: polling, then
 * WebSocket, the client's default), without reconnection.
 */
function open2(url, query, transport) {
  const transports = transport === 'upgrade' ? ['polling', 'websocket'] : [transport];
  const socket = io2(url, { query, transports, forceNew: true, reconnection: false });
  legacy.add(socket);
  return socket;
}

/**
 * Connects a 2.x client and resolves once `ready` arrives (payload kept as `socket.ready`);
 * rejects with the middleware's refusal (an `error` event: `{message}`) or a transport error.
 */
function connect2(url, query, transport) {
  const socket = open2(url, query, transport);
  const ready = new Promise((resolve, reject) => {
    socket.once('ready', (payload) => {
      socket.ready = payload;
      resolve(socket);
    });
    socket.once('error', (err) => reject(new Error(`refused: ${JSON.stringify(err)}`)));
    socket.once('connect_error', (err) => reject(err));
  });
  return withDeadline(ready, DEFAULT_TIMEOUT, `2.x "ready" for ${JSON.stringify(query)}`);
}

/** The 2.x way to ask for an acknowledgement, with a deadline. */
function ack2(socket, event, ...args) {
  const answer = new Promise((resolve) => socket.emit(event, ...args, resolve));
  return withDeadline(answer, DEFAULT_TIMEOUT, `2.x ack of ${event}`);
}

/** The refusal of a 2.x client that never gets `ready`: the payload of its `error` event. */
function refusal2(socket) {
  const refused = new Promise((resolve) => socket.once('error', resolve));
  socket.once('ready', () => assert.fail('the 2.x client got ready'));
  return withDeadline(refused, DEFAULT_TIMEOUT, '2.x "error" (refusal)');
}

for (const transport of ['websocket', 'polling']) {
  // A 2.x client on node 0 and a 4.x client on node 1 chat: acks, live messages both ways,
  // delivery receipts, history, and an error code, as between two current clients.
  test(`2.x over ${transport} chats with 4.x across nodes`, async () => {
    const old = uid('old');
    const cur = uid('cur');
    const a = await connect2(nodes[0].url, { user: old }, transport);
    assert.equal(a.io.engine.transport.name, transport);
    assert.equal(a.io.engine.transport.query.EIO, 3, 'Engine.IO 3');
    assert.deepEqual(a.ready, { user: old, node: a.ready.node });
    const b = await connect(nodes[1].url, as(cur));
    assert.notEqual(a.ready.node, b.ready.node, 'the clients are on two nodes');

    const atOld = record(a, 'message', { ack: true });
    const atCur = record(b, 'message', { ack: true });
    const receiptsOld = record(a, 'receipt');

    const sent = await ack2(a, 'message:send', { to: cur, body: 'from 2.x', clientId: 'c-1' });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    assert.equal(sent.message.conversation, dmId(old, cur));
    assert.deepEqual(await atCur.waitFor((m) => m.id === sent.message.id), sent.message);
    const delivered = await receiptsOld.waitFor((r) => r.messageId === sent.message.id);
    assert.deepEqual(delivered, { conversation: dmId(old, cur), user: cur, messageId: sent.message.id, status: 'delivered' });

    const reply = await send(b, { to: old, body: 'from 4.x' });
    assert.deepEqual(await atOld.waitFor((m) => m.id === reply.id), reply);

    const again = await ack2(a, 'message:send', { to: cur, body: 'from 2.x', clientId: 'c-1' });
    assert.deepEqual(again, { ...sent, duplicate: true }, 'idempotent retry');
    const page = await ack2(a, 'history', { conversation: dmId(old, cur) });
    assert.deepEqual(page.messages.map((m) => m.body), ['from 2.x', 'from 4.x']);

    const bad = await ack2(a, 'message:send', { to: cur, body: '', clientId: 'c-2' });
    assert.equal(bad.ok, false);
    assert.equal(bad.error.code, 'bad_request');
    assert.equal(typeof bad.error.message, 'string');
    // Binary attachments in v4's format: the packet is understood and answered like a 4.x
    // client's (no event takes binary data), and the connection stays up.
    const payload = { to: cur, body: 'bin', clientId: 'c-3', blob: Buffer.from([1, 2, 3]) };
    const bin = await ack2(a, 'message:send', payload);
    assert.deepEqual(bin, await emitAck(b, 'message:send', { ...payload, to: old }));
    assert.equal(bin.error.code, 'bad_request');
    assert.equal((await ack2(a, 'conversations', {})).ok, true);
  });
}

// A default 2.x client upgrades from polling to WebSocket and goes on chatting with a 4.x
// client on the other node.
test('2.x client upgrades to websocket and chats across nodes', async () => {
  const old = uid('old');
  const cur = uid('cur');
  const a = open2(nodes[0].url, { user: old }, 'upgrade');
  const upgraded = withDeadline(
    new Promise((resolve) => a.io.engine.once('upgrade', (t) => resolve(t.name))),
    DEFAULT_TIMEOUT,
    '2.x engine "upgrade"',
  );
  assert.equal(await upgraded, 'websocket');
  const b = await connect(nodes[1].url, as(cur));
  const atOld = record(a, 'message', { ack: true });
  const atCur = record(b, 'message', { ack: true });
  const sent = await ack2(a, 'message:send', { to: cur, body: 'after upgrade', clientId: 'u-1' });
  assert.equal(sent.ok, true, JSON.stringify(sent));
  assert.deepEqual(await atCur.waitFor((m) => m.id === sent.message.id), sent.message);
  const reply = await send(b, { to: old, body: 'reply' });
  assert.deepEqual(await atOld.waitFor((m) => m.id === reply.id), reply);
  assert.equal(a.io.engine.transport.name, 'websocket');
});

// A 2.x client authenticates with `?token=<JWT>` when the node checks tokens, and is refused
// (an `error` event with the `unauthorized` message) without one; the token is in no log line,
// even at the trace level.
test('2.x client authenticates with a token in the query', async () => {
  const user = uid('jwt');
  const token = makeToken(SECRET, { sub: user, exp: nowSecs() + 600 });
  const ok = await connect2(jwtNode.url, { token }, 'websocket');
  assert.equal(ok.ready.user, user);
  const refused = await refusal2(open2(jwtNode.url, { user }, 'polling'));
  assert.deepEqual(refused, { message: 'unauthorized: missing token in auth' });
  const forged = makeToken('another secret', { sub: user, exp: nowSecs() + 600 });
  const bad = await refusal2(open2(jwtNode.url, { token: forged }, 'websocket'));
  assert.deepEqual(bad, { message: 'unauthorized: invalid token' });
  assert.ok(jwtNode.logs.length > 50, 'the node logs at the trace level');
  for (const secret of [token, forged]) {
    assert.equal(jwtNode.logs.filter((l) => l.includes(secret.split('.')[2])).length, 0);
  }
});

// A 2.x client whose token expires while connected gets `expired` and is disconnected by the
// server, as a current client is.
test('2.x client is disconnected when its token expires', async () => {
  const user = uid('exp');
  const token = makeToken(SECRET, { sub: user, exp: nowSecs() + 2 });
  const socket = await connect2(jwtNode.url, { token }, 'polling');
  const gone = new Promise((resolve) => socket.once('disconnect', resolve));
  const expired = await withDeadline(
    new Promise((resolve) => socket.once('expired', resolve)),
    DEFAULT_TIMEOUT,
    '2.x "expired"',
  );
  assert.equal(typeof expired.reason, 'string');
  assert.equal(await withDeadline(gone, DEFAULT_TIMEOUT, '2.x disconnect'), 'io server disconnect');
});

// Without CHAT_ALLOW_EIO3 the 2.x client never connects: its handshake gets 400 "Unsupported
// protocol version" on both transports, while 4.x clients connect as usual.
test('2.x client is refused when CHAT_ALLOW_EIO3 is off', async () => {
  for (const transport of ['polling', 'websocket']) {
    const res = await fetch(`${refusing.url}/socket.io/?EIO=3&transport=${transport}&user=x`);
    assert.equal(res.status, 400, transport);
    assert.deepEqual(await res.json(), { code: '5', message: 'Unsupported protocol version' });
  }
  const socket = open2(refusing.url, { user: uid('old') }, 'polling');
  const connected = record(socket, 'connect');
  const err = await withDeadline(
    new Promise((resolve) => socket.once('connect_error', resolve)),
    DEFAULT_TIMEOUT,
    '2.x connect_error',
  );
  assert.equal(err.description, 400, 'the HTTP status of the refused handshake');
  assert.equal(socket.connected, false);
  assert.equal(connected.count(), 0);
  const ws = open2(refusing.url, { user: uid('old') }, 'websocket');
  const wsErr = await withDeadline(
    new Promise((resolve) => ws.once('connect_error', resolve)),
    DEFAULT_TIMEOUT,
    '2.x connect_error over websocket',
  );
  assert.match(String(wsErr.description?.message ?? wsErr.description), /400/);
  assert.equal(ws.connected, false);
  assert.equal((await connect(refusing.url, as(uid('cur')))).ready.node.length > 0, true);
});

// Every family of events works for a 2.x client as for a current one, across nodes: groups and
// their administration, sync and read (with the receipt), presence with a status, typing,
// blocks, contacts, and the error codes forbidden and not_found.
test('2.x client uses every event family across nodes', async () => {
  const old = uid('old');
  const cur = uid('cur');
  const a = await connect2(nodes[0].url, { user: old }, 'websocket');
  const b = await connect(nodes[1].url, as(cur));
  const ok = (res) => {
    assert.equal(res.ok, true, JSON.stringify(res));
    return res;
  };

  // Groups: a 4.x owner, the 2.x member sees membership and administration events.
  const members2 = record(a, 'group:member');
  const updated2 = record(a, 'group:updated');
  const group = ok(await emitAck(b, 'group:create', { name: 'mixed', members: [old] })).group;
  await members2.waitFor((e) => e.group === group.id && e.user === old && e.event === 'joined');
  assert.deepEqual(ok(await ack2(a, 'group:members', { group: group.id })).members, [cur, old]);
  ok(await emitAck(b, 'group:update', { group: group.id, topic: 'from 4.x' }));
  assert.equal((await updated2.waitFor((e) => e.group.id === group.id)).group.topic, 'from 4.x');
  assert.equal((await ack2(a, 'group:update', { group: group.id, name: 'mine' })).error.code, 'forbidden');
  assert.equal((await ack2(a, 'group:join', { group: 'no-such-group' })).error.code, 'not_found');

  // sync, then read: the 4.x sender gets the read receipt.
  const receipts = record(b, 'receipt');
  const m = await send(b, { group: group.id, body: 'to the group' });
  const page = ok(await ack2(a, 'sync', {}));
  assert.ok(page.messages.some((x) => x.id === m.id), JSON.stringify(page));
  ok(await ack2(a, 'read', { conversation: m.conversation, messageId: m.id }));
  await receipts.waitFor((r) => r.messageId === m.id && r.status === 'read' && r.user === old);

  // Presence with a status, and typing, both ways.
  const presence2 = record(a, 'presence');
  assert.equal(ok(await ack2(a, 'presence:subscribe', { users: [cur] })).presence[cur].online, true);
  ok(await emitAck(b, 'presence:status', { status: 'busy', text: 'in 4.x' }));
  assert.equal((await presence2.waitFor((p) => p.user === cur && p.status === 'busy')).text, 'in 4.x');
  const typing4 = record(b, 'typing');
  const typing2 = record(a, 'typing');
  a.emit('typing', { conversation: m.conversation, typing: true });
  await typing4.waitFor((t) => t.user === old);
  b.emit('typing', { conversation: m.conversation, typing: true });
  await typing2.waitFor((t) => t.user === cur);

  // Contacts: a request from 2.x, accepted by 4.x; the 2.x client gets its `contact` event.
  const contact2 = record(a, 'contact');
  assert.equal(ok(await ack2(a, 'contacts:request', { user: cur })).state, 'outgoing');
  ok(await emitAck(b, 'contacts:accept', { user: old }));
  assert.equal((await contact2.waitFor((c) => c.user === cur && c.state === 'contact')).presence.online, true);
  assert.deepEqual(ok(await ack2(a, 'contacts', {})).contacts.map((c) => c.user), [cur]);

  // Blocks: listed, and they refuse the blocked user's DMs with forbidden.
  ok(await ack2(a, 'block', { user: cur }));
  assert.deepEqual(ok(await ack2(a, 'blocks', {})).users, [cur]);
  assert.equal((await emitAck(b, 'message:send', { to: old, body: 'blocked?' })).error.code, 'forbidden');
  ok(await ack2(a, 'unblock', { user: cur }));
  assert.deepEqual(ok(await ack2(a, 'group:leave', { group: group.id })), { ok: true });
});
