// Reproduction of the presence bug the fault run found with `freeze-node`: a node frozen
// (SIGSTOP) past its lease, then resumed (SIGCONT), keeps its sockets, but its users stay
// offline for everyone, for good (until they reconnect).
// Two nodes on one standalone Redis; alice on node a, bob on node b subscribed to alice.
//
//   node e2e/chaos/repro-freeze-presence.mjs [--freeze-ms 8000] [--wait-ms 30000]
//
// Exits 1 when bob still sees alice offline `--wait-ms` after the resume while alice's socket
// is connected (and answers), 0 when presence converges.

import { startServer, startRedis, connect, emitAck, uid, closeAll, HIGH_LIMITS } from '../test/helpers.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
const freezeMs = opt('--freeze-ms', 8000);
const waitMs = opt('--wait-ms', 30000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let redis;
const servers = [];
try {
  redis = await startRedis();
  const env = { ...HIGH_LIMITS, CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: `${uid('repro')}:` };
  const a = await startServer({ ...env, CHAT_NODE_ID: 'a' });
  const b = await startServer({ ...env, CHAT_NODE_ID: 'b' });
  servers.push(a, b);
  const alice = uid('alice');
  const bob = uid('bob');
  const sa = await connect(a.url, { user: alice }, { transports: ['websocket'] });
  const sb = await connect(b.url, { user: bob }, { transports: ['websocket'] });
  const online = async () => (await emitAck(sb, 'presence:subscribe', { users: [alice] })).presence[alice].online;
  console.log(`before: bob sees alice online=${await online()}`);

  a.proc.kill('SIGSTOP');
  // The fault itself is a wait: the node must stay frozen past its lease (3 s).
  await sleep(freezeMs);
  console.log(`after ${freezeMs} ms frozen: bob sees alice online=${await online()}`);
  a.proc.kill('SIGCONT');

  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < waitMs) {
    last = await online();
    if (last) break;
    await sleep(250);
  }
  // Alice's socket is still there and served: her own request answers.
  const self = await emitAck(sa, 'presence:subscribe', { users: [alice] });
  console.log(
    `${Date.now() - t0} ms after SIGCONT: bob sees alice online=${last}; alice connected=${sa.connected}, ` +
      `her own view online=${self.presence?.[alice]?.online}`,
  );
  closeAll();
  for (const s of servers) await s.stop();
  await redis.stop();
  process.exit(last ? 0 : 1);
} catch (err) {
  console.error(err);
  for (const s of servers) s.proc.kill('SIGCONT');
  closeAll();
  for (const s of servers) await s.stop().catch(() => {});
  await redis?.stop();
  process.exit(2);
}
