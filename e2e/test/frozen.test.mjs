// A node frozen past its lease (SIGSTOP: a stalled process, a frozen VM, a cut to Redis):
// the other nodes declare it dead and push its users offline; when it resumes it rejoins by
// itself, its users come back online for their peers and live delivery to them resumes, with
// and without a health checker reaping it meanwhile.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, startRedis, connect, closeAll, as, uid, send, emitAck, record, eventually,
  withDeadline, redisCommand, HIGH_LIMITS, HEALTH_BIN, clusterUid, presenceOf,
} from './helpers.mjs';

const WS = { transports: ['websocket'] };
/** chat-server's default lease; the bound for pushing offline is lease + 2 s. */
const LEASE_MS = 3000;

let redis;
before(async () => {
  redis = await startRedis();
});
afterEach(() => closeAll());
after(async () => {
  closeAll();
  await redis?.stop();
});



for (const withChecker of [false, true]) {
  const name = withChecker ? 'with a health checker reaping it' : 'without a health checker';
  test(`a node frozen past its lease rejoins: presence converges, live delivery resumes (${name})`, async (t) => {
    const prefix = `frz${randomBytes(4).toString('hex')}:`;
    const env = { ...HIGH_LIMITS, CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: prefix };
    const [a, b] = await Promise.all([startServer(env), startServer(env)]);
    t.after(async () => {
      b.proc.kill('SIGCONT');
      await Promise.all([a.stop(), b.stop()]);
    });
    if (withChecker) {
      const checker = await startServer(
        {
          CHAT_REDIS_URL: redis.url,
          CHAT_REDIS_PREFIX: prefix,
          CHAT_HEALTH_INTERVAL: '200ms',
          CHAT_HEALTH_FAILURES: '3',
        },
        { bin: HEALTH_BIN, listeningMessage: 'health checker listening' },
      );
      t.after(() => checker.stop());
    }
    const alice = uid('alice');
    const bob = uid('bob');
    const sa = await connect(a.url, as(alice), WS);
    const sb = await connect(b.url, as(bob), WS);
    await eventually(async () => (await presenceOf(sa, [bob]))[bob].online, { what: 'bob online' });
    const presence = record(sa, 'presence');
    const atBob = record(sb, 'message', { ack: true });

    b.proc.kill('SIGSTOP');
    const frozenAt = Date.now();
    const offline = await withDeadline(
      presence.waitFor((p) => p.user === bob && !p.online),
      LEASE_MS + 2000 + 500,
      'offline pushed within lease + 2 s',
    );
    assert.equal(offline.online, false);
    console.log(`offline pushed ${Date.now() - frozenAt} ms after the freeze`);
    if (withChecker) {
      // Frozen until the checker has reaped it: its record is gone from the node table.
      const node = `${prefix}node:${clusterUid(b)}`;
      await eventually(async () => (await redisCommand(redis.port, ['EXISTS', node])) === 0, {
        timeoutMs: 10000,
        what: 'the checker to reap the frozen node',
      });
    }
    const sentWhileFrozen = await send(sa, { to: bob, body: 'while you were frozen' });

    b.proc.kill('SIGCONT');
    const resumedAt = Date.now();
    const online = await withDeadline(
      presence.waitFor((p) => p.user === bob && p.online),
      4000,
      'bob online again after the node resumed',
    );
    assert.equal(online.online, true);
    console.log(`online again ${Date.now() - resumedAt} ms after the node resumed`);
    assert.equal((await presenceOf(sa, [bob]))[bob].online, true);
    // Live delivery to bob's node resumes: what was sent while frozen is in its inbox (or in
    // sync), and what is sent now arrives live.
    const live = await send(sa, { to: bob, body: 'live again' });
    assert.deepEqual(await atBob.waitFor((m) => m.id === live.id), live);
    const res = await emitAck(sb, 'sync', {});
    assert.ok(res.messages.some((m) => m.id === sentWhileFrozen.id), JSON.stringify(res));
  });
}

// A node killed outright, with a health checker reaping it: whichever of the checker and the
// node announcing lost nodes acts first, every subscriber is told its users went offline.
test('a killed node: subscribers are pushed offline within lease + 2 s with a checker running', async (t) => {
  const prefix = `kil${randomBytes(4).toString('hex')}:`;
  const env = { ...HIGH_LIMITS, CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: prefix };
  const [a, b] = await Promise.all([startServer(env), startServer(env)]);
  t.after(() => Promise.all([a.stop(), b.stop()]));
  const checker = await startServer(
    {
      CHAT_REDIS_URL: redis.url,
      CHAT_REDIS_PREFIX: prefix,
      CHAT_HEALTH_INTERVAL: '100ms',
      CHAT_HEALTH_FAILURES: '1',
    },
    { bin: HEALTH_BIN, listeningMessage: 'health checker listening' },
  );
  t.after(() => checker.stop());
  const alice = uid('alice');
  const users = [uid('bob'), uid('carol'), uid('dan')];
  const sa = await connect(a.url, as(alice), WS);
  await Promise.all(users.map((u) => connect(b.url, as(u), WS)));
  await eventually(
    async () => Object.values(await presenceOf(sa, users)).every((p) => p.online),
    { what: 'everyone online' },
  );
  const presence = record(sa, 'presence');
  b.proc.kill('SIGKILL');
  const killedAt = Date.now();
  await Promise.all(
    users.map((u) =>
      withDeadline(
        presence.waitFor((p) => p.user === u && !p.online),
        LEASE_MS + 2000 + 500,
        `${u} pushed offline within lease + 2 s`,
      ),
    ),
  );
  console.log(`offline pushed ${Date.now() - killedAt} ms after the kill`);
});
