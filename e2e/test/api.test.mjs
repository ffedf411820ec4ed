// The server API over HTTP (docs/api.md) on a two-node cluster over one Redis: what the
// backend posts to node A reaches sockets on node B, announcements reach every client once,
// a disconnect with a ban reaches every node, and the token guards every route.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, startRedis, connect, connectError, closeAll, as, uid, dmId, record,
  waitDisconnect, eventually, HIGH_LIMITS,
} from './helpers.mjs';

const WS = { transports: ['websocket'] };
const POLL = { transports: ['polling'] };
const TOKEN = `e2e-api-${randomBytes(12).toString('hex')}`;

let redis;
/** Node A (takes the API calls) and node B (holds the recipients). */
let A;
let B;

before(async () => {
  redis = await startRedis();
  const env = {
    ...HIGH_LIMITS,
    CHAT_REDIS_URL: redis.url,
    CHAT_REDIS_PREFIX: `e2e${randomBytes(4).toString('hex')}:`,
    CHAT_API_TOKEN: TOKEN,
  };
  [A, B] = await Promise.all([startServer(env), startServer(env)]);
});

// Close the test's sockets and wait until both nodes have processed the disconnects, so one
// test's clients never see the next test's announcements.
afterEach(async () => {
  closeAll();
  await eventually(async () => (await Promise.all([A, B].map(connections))).every((n) => n === 0), {
    what: 'both nodes to report 0 connections',
  });
});

after(async () => {
  closeAll();
  await Promise.all([A, B].filter(Boolean).map((n) => n.stop()));
  await redis?.stop();
});

/** Live sockets on a node, from its /healthz. */
async function connections(node) {
  const res = await fetch(`${node.url}/healthz`);
  return (await res.json()).connections;
}

/**
 * Calls the server API on `node`: resolves with `{status, body, headers}` (`body` parsed
 * JSON, or null when empty). `auth` is the Authorization header (default: the right token;
 * null: none).
 */
async function api(node, method, path, body, { auth = `Bearer ${TOKEN}` } = {}) {
  const headers = {};
  if (auth !== null) headers.authorization = auth;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${node.url}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** Asserts an API answer is `status` with `{error: {code, message}}`. */
function assertError(res, status, code, what) {
  assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.error.message, 'string', what);
  assert.deepEqual(Object.keys(res.body), ['error'], what);
}

// A message posted over HTTP to node A, as a user and as the system, is stored (201, the
// stored message) and reaches the recipient's socket on node B once; the user sender's own
// socket gets it too, and a retry with the same clientId delivers nothing again.
test('messages posted to node A reach sockets on node B, as a user and as the system', async () => {
  const alice = uid('alice');
  const bob = uid('bob');
  const b1 = await connect(B.url, as(bob), WS);
  const b2 = await connect(B.url, as(bob), POLL);
  const a1 = await connect(A.url, as(alice), WS);
  const recs = { b1: record(b1, 'message', { ack: true }), b2: record(b2, 'message', { ack: true }) };
  const aliceRec = record(a1, 'message', { ack: true });

  // As a user.
  const clientId = `c-${uid()}`;
  const posted = await api(A, 'POST', '/messages', { from: alice, to: bob, body: 'hi from the backend', clientId });
  assert.equal(posted.status, 201, JSON.stringify(posted.body));
  assert.equal(posted.body.duplicate, false);
  const m = posted.body.message;
  assert.match(m.id, /^\d+-\d+$/);
  assert.equal(m.from, alice);
  assert.equal(m.conversation, dmId(alice, bob));
  assert.equal(m.body, 'hi from the backend');
  assert.equal(m.clientId, clientId);
  for (const [k, r] of Object.entries(recs)) {
    assert.deepEqual(await r.waitFor((x) => x.id === m.id), m, `bob's device ${k}`);
  }
  assert.deepEqual(await aliceRec.waitFor((x) => x.id === m.id), m, "the sender's own device");

  // The same clientId again: the first message, nothing new delivered.
  const again = await api(A, 'POST', '/messages', { from: alice, to: bob, body: 'hi from the backend', clientId });
  assert.equal(again.status, 201, JSON.stringify(again.body));
  assert.equal(again.body.duplicate, true);
  assert.deepEqual(again.body.message, m);

  // As the system: `from` omitted.
  const sys = await api(A, 'POST', '/messages', { to: bob, body: 'your order shipped' });
  assert.equal(sys.status, 201, JSON.stringify(sys.body));
  const s = sys.body.message;
  assert.equal(s.from, '@system');
  // `@` sorts before the letters, so the system's DM with bob-… is dm:@system:bob-….
  assert.equal(s.conversation, `dm:@system:${bob}`);
  assert.ok(!('clientId' in s));
  for (const [k, r] of Object.entries(recs)) {
    assert.deepEqual(await r.waitFor((x) => x.id === s.id), s, `bob's device ${k}`);
  }

  // The system message came after the retry, so a second copy of the first would be here.
  for (const [k, r] of Object.entries(recs)) {
    assert.equal(r.count((x) => x.id === m.id), 1, `bob's device ${k} got the first message once`);
    assert.equal(r.count((x) => x.id === s.id), 1, `bob's device ${k} got the system message once`);
  }
  assert.equal(aliceRec.count((x) => x.id === s.id), 0, "alice is not in the system's DM with bob");

  // Both are in history, read through node B.
  const page = await api(B, 'GET', `/conversations/${encodeURIComponent(s.conversation)}/messages?limit=10`);
  assert.equal(page.status, 200, JSON.stringify(page.body));
  assert.deepEqual(page.body, { messages: [s], hasMore: false });
});

// An announcement posted to node A reaches every client of both nodes exactly once, with the
// {body, ts} the API answered.
test('an announcement reaches every client on both nodes once', async () => {
  const sockets = [
    await connect(A.url, as(uid('ann')), WS),
    await connect(A.url, as(uid('ann')), POLL),
    await connect(B.url, as(uid('ann')), WS),
    await connect(B.url, as(uid('ann')), POLL),
  ];
  const recs = sockets.map((s) => record(s, 'announcement'));

  const first = await api(A, 'POST', '/announcements', { body: 'maintenance at 22:00' });
  assert.equal(first.status, 202, JSON.stringify(first.body));
  assert.equal(first.body.body, 'maintenance at 22:00');
  assert.equal(typeof first.body.ts, 'number');
  assert.ok(Math.abs(first.body.ts - Date.now()) < 60_000, `ts ${first.body.ts} is not near now`);
  for (const [i, r] of recs.entries()) {
    assert.deepEqual(await r.waitFor((x) => x.ts === first.body.ts && x.body === first.body.body), first.body, `socket ${i}`);
  }

  // A second one, sent later from the same node, arrives after any duplicate of the first.
  const second = await api(A, 'POST', '/announcements', { body: 'done' });
  assert.equal(second.status, 202, JSON.stringify(second.body));
  for (const [i, r] of recs.entries()) {
    await r.waitFor((x) => x.body === 'done');
    assert.deepEqual(r.events, [first.body, second.body], `socket ${i} got each announcement once`);
  }
});

// Disconnecting a user with a ban on node A closes their sockets on both nodes, and their
// reconnects to either node are refused with `banned: until <ms>`; other users still connect.
test('disconnect with banSeconds on node A ends the user sockets on node B and refuses reconnects', async () => {
  const mallory = uid('mallory');
  const onB = await connect(B.url, as(mallory), WS);
  const onA = await connect(A.url, as(mallory), POLL);
  const bystander = await connect(B.url, as(uid('ok')), WS);
  const reasons = [waitDisconnect(onB), waitDisconnect(onA)];

  const before = Date.now();
  const res = await api(A, 'POST', `/users/${mallory}/disconnect`, { banSeconds: 60 });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { disconnected: 2 });
  assert.deepEqual(await Promise.all(reasons), ['io server disconnect', 'io server disconnect']);
  assert.equal(bystander.connected, true, 'another user keeps their socket');

  for (const node of [A, B]) {
    for (const opts of [WS, POLL]) {
      const message = await connectError(node.url, as(mallory), opts);
      const m = /^banned: until (\d+)$/.exec(message);
      assert.ok(m, `reconnect to ${node.url} (${opts.transports}): ${message}`);
      const until = Number(m[1]);
      assert.ok(until >= before + 60_000 && until <= Date.now() + 60_000, `until ${until} is 60 s after the call`);
    }
  }
  // A user who was not banned still connects, to both nodes.
  await connect(A.url, as(uid('ok')), WS);
  await connect(B.url, as(uid('ok')), POLL);
});

// Without banSeconds (an empty body), a disconnect closes the sockets and the user may
// reconnect at once.
test('disconnect without a ban lets the user reconnect', async () => {
  const carol = uid('carol');
  const s = await connect(B.url, as(carol), WS);
  const gone = waitDisconnect(s);
  const res = await api(A, 'POST', `/users/${carol}/disconnect`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { disconnected: 1 });
  assert.equal(await gone, 'io server disconnect');
  await connect(B.url, as(carol), WS);
});

// Every route but the OpenAPI document answers 401 without a token and 403 with a wrong one,
// as {error: {code, message}}, and does nothing; the document needs no token.
test('a missing token is 401, a wrong one 403, with JSON error bodies', async () => {
  const bob = uid('bob');
  const s = await connect(B.url, as(bob), WS);
  const rec = record(s, 'message', { ack: true });
  const routes = everyRoute(bob);
  for (const node of [A, B]) {
    for (const [method, path, body] of routes) {
      const what = `${method} ${path} on ${node.url}`;
      const missing = await api(node, method, path, body, { auth: null });
      assertError(missing, 401, 'unauthorized', `${what} without a token`);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer', what);
      assertError(await api(node, method, path, body, { auth: 'Basic Zm9vOmJhcg==' }), 401, 'unauthorized', `${what} with Basic auth`);
      assertError(await api(node, method, path, body, { auth: `Bearer ${TOKEN}x` }), 403, 'forbidden', `${what} with a wrong token`);
    }
  }
  // The scheme is case-insensitive (RFC 9110); the token is not.
  const lower = await api(B, 'GET', `/presence?users=${bob}`, undefined, { auth: `bearer ${TOKEN}` });
  assert.equal(lower.status, 200, JSON.stringify(lower.body));
  assertError(await api(B, 'GET', `/presence?users=${bob}`, undefined, { auth: `Bearer ${TOKEN.toUpperCase()}` }), 403, 'forbidden', 'token in another case');

  const doc = await fetch(`${A.url}/api/v1/openapi.json`);
  assert.equal(doc.status, 200);
  assert.equal(typeof (await doc.json()).paths['/api/v1/messages'], 'object');

  // Nothing was posted, nobody was disconnected: a real message comes, and is the first.
  const ok = await api(A, 'POST', '/messages', { to: bob, body: 'the real one' });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  await rec.waitFor((m) => m.id === ok.body.message.id);
  assert.deepEqual(rec.events.map((m) => m.body), ['the real one']);
  assert.equal(s.connected, true);
});

// A node without CHAT_API_TOKEN answers 403 on every route, with a token or without one,
// and still serves the OpenAPI document.
test('without CHAT_API_TOKEN every route answers 403', async () => {
  const off = await startServer(HIGH_LIMITS);
  try {
    for (const [method, path, body] of everyRoute(uid('bob'))) {
      const what = `${method} ${path} with the API off`;
      const res = await api(off, method, path, body);
      assertError(res, 403, 'forbidden', what);
      assert.match(res.body.error.message, /CHAT_API_TOKEN/, what);
      assertError(await api(off, method, path, body, { auth: null }), 403, 'forbidden', `${what}, no header`);
    }
    assert.equal((await fetch(`${off.url}/api/v1/openapi.json`)).status, 200);
  } finally {
    await off.stop();
  }
});

/** `[method, path, body]` of every route but the OpenAPI document, about `user`. */
function everyRoute(user) {
  return [
    ['POST', '/messages', { to: user, body: 'must not arrive' }],
    ['GET', `/conversations/${encodeURIComponent(`dm:@system:${user}`)}/messages`],
    ['POST', '/groups', { name: 'Team', owner: user, members: [] }],
    ['POST', '/groups/nope/members', { user }],
    ['DELETE', `/groups/nope/members/${user}`],
    ['GET', `/presence?users=${user}`],
    ['POST', `/users/${user}/disconnect`, { banSeconds: 60 }],
    ['POST', '/announcements', { body: 'must not arrive' }],
  ];
}
