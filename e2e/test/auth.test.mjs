// Connection auth: HS256 JWTs when CHAT_AUTH_SECRET is set, plain user ids in development mode.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, connect, connectError, closeAll, as, uid, emitAck,
  makeToken, nowSecs, waitFor, waitDisconnect,
} from './helpers.mjs';

afterEach(closeAll);

describe('with CHAT_AUTH_SECRET', () => {
  const secret = randomBytes(24).toString('hex');
  let server;
  before(async () => {
    server = await startServer({ CHAT_AUTH_SECRET: secret });
  });
  after(async () => {
    closeAll();
    await server?.stop();
  });

  const expectUnauthorized = async (auth, opts) => {
    const message = await connectError(server.url, auth, opts);
    assert.match(message, /^unauthorized/, `auth ${JSON.stringify(auth)} → ${message}`);
  };

  // A valid token connects, over both transports, as its `sub`.
  test('valid token connects as sub', async () => {
    const user = uid('alice');
    const token = makeToken(secret, { sub: user, exp: nowSecs() + 3600 });
    const ws = await connect(server.url, { token }, { transports: ['websocket'] });
    assert.equal(ws.ready.user, user);
    const poll = await connect(server.url, { token }, { transports: ['polling'] });
    assert.equal(poll.ready.user, user);
    assert.equal((await emitAck(poll, 'conversations', {})).ok, true);
  });

  // Missing, forged, expired or exp-less tokens are refused with connect_error "unauthorized…".
  test('bad tokens are refused with unauthorized', async () => {
    const sub = uid('mallory');
    const exp = nowSecs() + 3600;
    await expectUnauthorized({});
    await expectUnauthorized(undefined);
    await expectUnauthorized({ user: sub }, { transports: ['polling'] });
    await expectUnauthorized({ token: '' });
    await expectUnauthorized({ token: 42 });
    await expectUnauthorized({ token: 'not.a.jwt' });
    await expectUnauthorized({ token: makeToken('wrong secret', { sub, exp }) });
    // A valid signature over other claims does not carry over.
    const good = makeToken(secret, { sub, exp });
    const [h, , s] = good.split('.');
    const forgedBody = Buffer.from(JSON.stringify({ sub: 'admin', exp })).toString('base64url');
    await expectUnauthorized({ token: `${h}.${forgedBody}.${s}` });
    await expectUnauthorized({ token: makeToken(secret, { sub, exp: nowSecs() - 600 }) });
    await expectUnauthorized({ token: makeToken(secret, { sub }) });
    await expectUnauthorized({ token: makeToken(secret, { exp }) });
    await expectUnauthorized({ token: makeToken(secret, { sub: 'not valid!', exp }) });
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub, exp })).toString('base64url')}.`;
    await expectUnauthorized({ token: none }, { transports: ['websocket'] });
  });

  // Once the token expires, the socket is told (`expired`) and disconnected by the server; it
  // does not reconnect by itself, and a new token connects again.
  test('token expiring while connected ends the session', async () => {
    const user = uid('brief');
    const exp = nowSecs() + 2;
    const sock = await connect(server.url, { token: makeToken(secret, { sub: user, exp }) });
    assert.equal(sock.ready.user, user);
    const first = await emitAck(sock, 'conversations', {});
    assert.equal(first.ok, true, 'works before exp');
    const told = waitFor(sock, 'expired', () => true, exp * 1000 - Date.now() + 6000);
    const gone = waitDisconnect(sock, exp * 1000 - Date.now() + 6000);
    const { reason } = await told;
    assert.match(reason, /expired/);
    assert.equal(await gone, 'io server disconnect');
    assert.ok(nowSecs() >= exp, 'not before exp');
    const again = await connect(server.url, { token: makeToken(secret, { sub: user, exp: exp + 600 }) });
    assert.equal((await emitAck(again, 'conversations', {})).ok, true);
  });
});

describe('development mode', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    closeAll();
    await server?.stop();
  });

  // Any well-formed user id connects; the limit is 64 characters of [A-Za-z0-9_.-].
  test('well-formed user ids connect', async () => {
    for (const user of ['a', 'A.b_c-9', `x${'y'.repeat(63)}`]) {
      const s = await connect(server.url, as(user));
      assert.equal(s.ready.user, user);
      assert.equal(typeof s.ready.node, 'string');
      s.close();
    }
  });

  // Malformed or missing user ids are refused with connect_error "unauthorized…".
  test('bad user ids are refused with unauthorized', async () => {
    for (const auth of [
      { user: 'a b' },
      { user: 'x'.repeat(65) },
      { user: '' },
      { user: 'dm:x' },
      { user: 'ünïcode' },
      { user: 5 },
      { user: null },
      {},
      undefined,
    ]) {
      const message = await connectError(server.url, auth);
      assert.match(message, /^unauthorized/, `auth ${JSON.stringify(auth)} → ${message}`);
    }
  });
});
