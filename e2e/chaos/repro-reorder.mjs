// Reproduction of the ordering bug the fault run found (no fault needed): when several
// `message:send` in one conversation run at the same time, devices can receive them live in
// another order than their ids, so one connection's live stream of a conversation goes
// backwards. Two nodes on one standalone Redis (or one embedded node with --embedded);
// four senders and one receiver on each node; rounds of four concurrent sends to one group.
//
//   node e2e/chaos/repro-reorder.mjs [--rounds 30] [--embedded]
//
// Prints each inversion (receiver, node, the id received after a larger one, and which node
// the two were sent from) and exits 1 if there was any.

import {
  startServer,
  startRedis,
  connect,
  emitAck,
  record,
  compareIds,
  HIGH_LIMITS,
  uid,
  closeAll,
} from '../test/helpers.mjs';

const argv = process.argv.slice(2);
const rounds = Number(argv[argv.indexOf('--rounds') + 1] || 30) || 30;
const embedded = argv.includes('--embedded');

let redis;
const servers = [];
try {
  const env = { ...HIGH_LIMITS };
  if (!embedded) {
    redis = await startRedis();
    Object.assign(env, { CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: `${uid('repro')}:` });
  }
  servers.push(await startServer({ ...env, CHAT_NODE_ID: 'a' }));
  if (!embedded) servers.push(await startServer({ ...env, CHAT_NODE_ID: 'b' }));
  const senders = [];
  const receivers = [];
  for (const [i, s] of servers.entries()) {
    for (let k = 0; k < 4; k++) senders.push({ user: uid(`s${i}${k}`), node: s.ready, url: s.url });
    receivers.push({ user: uid(`r${i}`), url: s.url });
  }
  for (const x of [...senders, ...receivers]) {
    x.socket = await connect(x.url, { user: x.user }, { transports: ['websocket'] });
    x.node = x.socket.ready.node;
  }
  const owner = senders[0];
  const res = await emitAck(owner.socket, 'group:create', {
    name: 'order',
    members: [...senders.slice(1), ...receivers].map((x) => x.user),
  });
  if (!res.ok) throw new Error(JSON.stringify(res));
  const group = res.group.id;
  for (const r of receivers) r.rec = record(r.socket, 'message', { ack: true });

  const sentFrom = new Map();
  let n = 0;
  for (let round = 0; round < rounds; round++) {
    const acks = await Promise.all(
      senders.map((s) => emitAck(s.socket, 'message:send', { group, body: `r${round} ${s.user}` }).then((a) => ({ a, s }))),
    );
    for (const { a, s } of acks) {
      if (!a.ok) throw new Error(JSON.stringify(a));
      sentFrom.set(a.message.id, s.node);
      n++;
    }
  }
  let inversions = 0;
  for (const r of receivers) {
    const got = await r.rec.waitForCount((m) => m.conversation === `group:${group}`, n, 20_000);
    const ids = got.map((m) => m.id);
    let max = null;
    for (const id of ids) {
      if (max && compareIds(id, max) < 0) {
        inversions++;
        console.log(`${r.user}@${r.node}: got ${id} (sent via ${sentFrom.get(id)}) after ${max} (sent via ${sentFrom.get(max)})`);
      } else {
        max = id;
      }
    }
  }
  console.log(`${n} messages, ${receivers.length} receivers: ${inversions} received after a larger id`);
  closeAll();
  for (const s of servers) await s.stop();
  await redis?.stop();
  process.exit(inversions ? 1 : 0);
} catch (err) {
  console.error(err);
  closeAll();
  for (const s of servers) await s.stop().catch(() => {});
  await redis?.stop();
  process.exit(2);
}
