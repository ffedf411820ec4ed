// The randomized fault run (issue #17): clients chat in DMs and groups across a real cluster
// while a scheduler injects faults at random; afterwards check.mjs judges the recorded history.
//
//   node e2e/chaos/run.mjs [--seed N] [--duration S] [--nodes N] [--users N] [--devices N]
//                          [--groups N] [--faults a,b,c] [--bin DIR] [--out DIR]
//                          [--gap MIN-MAX] [--quiet] [--archive]
//
// scripts/chaos.sh builds the binaries and calls this (see e2e/chaos/README.md).
// Everything listens on 127.0.0.1, on free ports. The seed fixes the users, devices,
// transports, groups, every client's choices, and the fault schedule (which fault, when,
// where, how long); timings of the real processes still vary from run to run.
// Exit status: 0 when the checker passes, 1 when it finds lost, duplicated or reordered
// messages, a refused send, or presence that did not converge; 2 on a setup failure.

import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { check, summary, passed } from './check.mjs';
import {
  startCluster,
  stopCluster,
  until,
  pick,
  masterPort,
  redisCli,
  waitHealthy,
  waitAllLive,
} from './cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

// ------------------------------------------------------------------------------- arguments

export const ALL_FAULTS = [
  'kill-node', // SIGKILL a chat-server, restart it after 1-4 s
  'term-node', // SIGTERM a chat-server (it drains), restart it once it exited
  'freeze-node', // SIGSTOP a chat-server for ~8 s (past its 3 s lease), then SIGCONT
  'kill-redis-master', // SIGKILL the Redis master; Sentinels promote a replica; it rejoins
  'client-kill', // CLIENT KILL TYPE normal|pubsub on the master
  'client-pause', // CLIENT PAUSE 1-2.5 s (WRITE or ALL) on the master
  'slow-client', // a WebSocket client stops reading its socket for 4-10 s
];

function parseArgs(argv) {
  const a = {
    seed: Date.now() % 1_000_000,
    duration: 90,
    nodes: 3,
    users: 6,
    devices: 2,
    groups: 2,
    faults: ALL_FAULTS.join(','),
    bin: path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug'),
    out: null,
    gap: '2-6',
    quiet: false,
    archive: false,
  };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'quiet' || k === 'archive') {
      a[k] = true;
      continue;
    }
    if (!(k in a) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete argument ${argv[i]}`);
    a[k] = argv[++i];
  }
  for (const k of ['seed', 'duration', 'nodes', 'users', 'devices', 'groups']) {
    a[k] = Number(a[k]);
    if (!Number.isInteger(a[k]) || a[k] < 0) throw new Error(`--${k} takes a non-negative integer`);
  }
  if (a.nodes < 2 || a.users < 3 || a.devices < 1 || a.duration > 24 * 3600) throw new Error('need --nodes >= 2, --users >= 3, --devices >= 1');
  a.faults = a.faults === 'none' || a.faults === '' ? [] : a.faults.split(',');
  for (const f of a.faults) if (!ALL_FAULTS.includes(f)) throw new Error(`unknown fault ${f} (known: ${ALL_FAULTS.join(', ')})`);
  const [gmin, gmax] = a.gap.split('-').map(Number);
  if (!(gmin >= 0 && gmax >= gmin)) throw new Error('--gap takes MIN-MAX seconds');
  a.gap = [gmin * 1000, gmax * 1000];
  return a;
}

// --------------------------------------------------------------------------------- helpers

/** mulberry32: a small seeded PRNG; `fork(k)` gives an independent stream. */
function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    shuffle: (arr) => {
      const b = [...arr];
      for (let i = b.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [b[i], b[j]] = [b[j], b[i]];
      }
      return b;
    },
    fork: (k) => rng((seed * 2654435761 + k * 40503 + 12345) >>> 0),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const brief = (m) => ({ id: m.id, conv: m.conversation, from: m.from, cid: m.clientId });

// ----------------------------------------------------------------------------------- run

const args = parseArgs(process.argv);
const started = Date.now();
const now = () => Date.now() - started;
const events = [];
const rec = (type, fields) => events.push({ t: now(), type, ...fields });
const log = (msg) => {
  if (!args.quiet || msg.startsWith('!')) console.log(`[chaos ${(now() / 1000).toFixed(1)}s] ${msg}`);
};
const outDir = path.resolve(args.out ?? path.join(repo, 'target', 'chaos', `seed-${args.seed}`));
const root = rng(args.seed);
let cluster = null;
let finished = false;
const devices = [];

async function cleanup() {
  for (const d of devices) d.close();
  await stopCluster(cluster);
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (finished) return;
    finished = true;
    console.log(`[chaos] ${sig}: stopping the cluster`);
    await cleanup().catch(() => {});
    process.exit(130);
  });
}

/** One device of a user: its own sockets (one per connection), cursor and sends. */
class Device {
  constructor(user, index, transports, r) {
    Object.assign(this, { user, index, transports, r });
    this.id = `${user}/${index}`;
    this.socket = null; // the current connection, once it is ready and caught up
    this.connSeq = 0;
    this.syncRound = 0;
    this.cursor = undefined;
    this.homing = null;
    this.closed = false;
    this.sent = 0;
    this.paused = false;
  }

  /** Finds a node through the registry and connects there (retrying until `deadline`). */
  home(reason) {
    if (this.homing || this.closed) return this.homing;
    this.homing = (async () => {
      const deadline = Date.now() + 120_000;
      for (let attempt = 0; !this.closed && Date.now() < deadline && !finished; attempt++) {
        try {
          const p = await pick(cluster.registryUrl);
          await this.connectTo(p.url);
          return;
        } catch (err) {
          if (attempt % 10 === 9) log(`${this.id}: still re-homing after ${attempt + 1} attempts (${err.message})`);
          await sleep(this.r.int(100, 600));
        }
      }
      if (!this.closed && !finished) log(`! ${this.id}: could not re-home (${reason})`);
    })().finally(() => {
      this.homing = null;
    });
    return this.homing;
  }

  async connectTo(url) {
    const conn = ++this.connSeq;
    const socket = io(url, {
      forceNew: true,
      reconnection: false,
      auth: { user: this.user },
      transports: this.transports,
      timeout: 5000,
    });
    socket.chaosConn = conn;
    socket.on('message', (msg, ack) => {
      rec('live', { dev: this.id, conn, node: socket.chaosNode, m: brief(msg) });
      if (typeof ack === 'function') ack();
    });
    socket.on('drain', () => {
      rec('drain', { dev: this.id, conn });
      this.leave(socket, 'drain');
    });
    socket.on('disconnect', (reason) => {
      rec('disconnect', { dev: this.id, conn, reason });
      this.leave(socket, reason);
    });
    try {
      const ready = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no ready within 8s')), 8000);
        socket.once('ready', (r) => {
          clearTimeout(timer);
          resolve(r);
        });
        socket.once('connect_error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      socket.chaosNode = ready.node;
      rec('conn', { dev: this.id, conn, node: ready.node, transport: socket.io.engine?.transport?.name });
      await this.catchUp(socket);
    } catch (err) {
      socket.removeAllListeners();
      socket.close();
      throw err;
    }
    if (!socket.connected) throw new Error('disconnected while catching up');
    this.socket = socket;
  }

  /** `sync` from the device's cursor until `hasMore` is false, on `socket`. */
  async catchUp(socket, final = false) {
    const round = ++this.syncRound;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!socket.connected) throw new Error('disconnected during sync');
      if (Date.now() > deadline) throw new Error('sync did not finish within 60s');
      let res;
      try {
        res = await socket.timeout(5000).emitWithAck('sync', this.cursor ? { cursor: this.cursor } : {});
      } catch {
        continue; // no answer: ask again (the socket may be gone, checked above)
      }
      if (!res?.ok) {
        if (res?.error?.code !== 'unavailable' && res?.error?.code !== 'rate_limited') {
          throw new Error(`sync refused: ${JSON.stringify(res)}`);
        }
        await sleep(200);
        continue;
      }
      rec('sync', { dev: this.id, conn: socket.chaosConn, round, final, msgs: res.messages.map(brief) });
      this.cursor = res.cursor;
      if (!res.hasMore) return;
    }
  }

  /** Leaves a connection (drain, disconnect, or no acks) and re-homes. */
  leave(socket, reason) {
    socket.removeAllListeners();
    socket.close();
    if (this.socket === socket) {
      this.socket = null;
      if (!this.closed && !finished) this.home(reason);
    }
  }

  close() {
    this.closed = true;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.removeAllListeners();
      s.close();
    }
  }

  /** Sends one message until acked (same clientId on every try), refused, or 60 s passed. */
  async send(target) {
    const cid = `${this.id}#${++this.sent}`;
    const payload = { ...target.payload, body: `${cid} ${'x'.repeat(this.r.int(1, 40))}`, clientId: cid };
    rec('send', { dev: this.id, cid, conv: target.conv });
    const t0 = Date.now();
    let timeouts = 0;
    while (Date.now() - t0 < 60_000 && !finished) {
      const socket = this.socket;
      if (!socket) {
        await sleep(100);
        continue;
      }
      let res;
      try {
        res = await socket.timeout(4000).emitWithAck('message:send', payload);
      } catch {
        // No ack: retry; after two in a row on one connection, leave it (a frozen node).
        if (++timeouts >= 2 && this.socket === socket) {
          rec('abandon', { dev: this.id, conn: socket.chaosConn });
          this.leave(socket, 'no acks');
          timeouts = 0;
        }
        continue;
      }
      if (res?.ok) {
        rec('ack', { dev: this.id, cid, conv: target.conv, id: res.message.id, duplicate: !!res.duplicate, node: socket.chaosNode });
        return;
      }
      const code = res?.error?.code;
      if (code === 'unavailable' || code === 'rate_limited') {
        await sleep(this.r.int(100, 400));
        continue;
      }
      rec('refused', { dev: this.id, cid, code, message: res?.error?.message });
      log(`! ${this.id}: ${cid} refused: ${JSON.stringify(res)}`);
      return;
    }
    rec('giveup', { dev: this.id, cid });
    log(`${this.id}: gave up on ${cid} after 60 s`);
  }
}

/** Runs `fn` on every element, at most `n` at a time. */
async function pool(items, n, fn) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(n, queue.length) }, async () => {
      while (queue.length) await fn(queue.shift());
    }),
  );
}

/** The faults. Each one restores what it broke before it returns. */
function makeFaults(r) {
  const runningNode = () => {
    const up = cluster.nodes.filter((n) => n.running);
    return up.length ? r.pick(up) : null;
  };
  return {
    async 'kill-node'() {
      const n = runningNode();
      n.signal('SIGKILL');
      await n.waitExit(5000);
      const down = r.int(1000, 4000);
      await sleep(down);
      n.start();
      await waitHealthy(n, 60_000);
      return `${n.name} killed, restarted after ${down} ms`;
    },
    async 'term-node'() {
      const n = runningNode();
      const t0 = Date.now();
      n.signal('SIGTERM');
      const exit = await n.waitExit(30_000);
      const took = Date.now() - t0;
      const down = r.int(500, 2000);
      await sleep(down);
      n.start();
      await waitHealthy(n, 60_000);
      return `${n.name} drained and exited (${JSON.stringify(exit)}) in ${took} ms, restarted after ${down} ms`;
    },
    async 'freeze-node'() {
      const n = runningNode();
      const ms = r.int(7500, 8500);
      n.signal('SIGSTOP');
      await sleep(ms);
      n.signal('SIGCONT');
      await waitHealthy(n, 30_000);
      return `${n.name} frozen ${ms} ms`;
    },
    async 'kill-redis-master'() {
      const port = await masterPort(cluster);
      const old = cluster.redis.find((x) => x.port === port);
      old.signal('SIGKILL');
      await old.waitExit(5000);
      const t0 = Date.now();
      const next = await until('the Sentinels promote a replica', 60_000, async () => {
        const p = await masterPort(cluster);
        return p !== port ? p : null;
      }, 250);
      const promoted = Date.now() - t0;
      await sleep(r.int(1000, 3000));
      old.start();
      await until(`${old.name} rejoins as a replica`, 60_000, async () => {
        const info = await redisCli(old.port, ['info', 'replication'], 2000);
        return info.includes('role:slave') && info.includes('master_link_status:up') && info.includes(`master_port:${next}`);
      }, 300);
      return `master ${old.name} :${port} killed; :${next} promoted after ${promoted} ms; old master rejoined as a replica`;
    },
    async 'client-kill'() {
      const port = await masterPort(cluster);
      const type = r.pick(['normal', 'pubsub']);
      const n = await redisCli(port, ['client', 'kill', 'type', type]);
      return `CLIENT KILL TYPE ${type} on :${port}: ${n} connections`;
    },
    async 'client-pause'() {
      const port = await masterPort(cluster);
      const ms = r.int(1000, 2500);
      const mode = r.pick(['WRITE', 'ALL']);
      await redisCli(port, ['client', 'pause', String(ms), mode]);
      await sleep(ms);
      return `CLIENT PAUSE ${ms} ${mode} on :${port}`;
    },
    async 'slow-client'() {
      const ws = devices.filter((d) => d.socket?.io?.engine?.transport?.name === 'websocket' && !d.closed);
      if (!ws.length) return 'no WebSocket client connected: skipped';
      const d = r.pick(ws);
      const raw = d.socket.io.engine.transport.ws?._socket;
      if (!raw) return `${d.id}: no raw socket: skipped`;
      const ms = r.int(4000, 10_000);
      raw.pause();
      d.paused = true;
      await sleep(ms);
      raw.resume();
      d.paused = false;
      return `${d.id} stopped reading for ${ms} ms`;
    },
  };
}

/** Brings back whatever a failed fault left broken. */
async function restoreAll() {
  for (const p of [...cluster.nodes, ...cluster.redis]) {
    p.signal('SIGCONT');
    if (!p.running) p.start();
  }
  for (const n of cluster.nodes) await waitHealthy(n, 60_000);
}

async function main() {
  // A fresh directory: the Redis and Sentinel configs in an old one would name old ports.
  if (existsSync(outDir) && readdirSync(outDir).length) {
    const ours = outDir.startsWith(path.join(repo, 'target', 'chaos') + path.sep) || existsSync(path.join(outDir, 'history.jsonl'));
    if (!ours) throw new Error(`--out ${outDir} is not empty and holds no history.jsonl: not emptying it`);
    rmSync(outDir, { recursive: true, force: true });
  }
  mkdirSync(outDir, { recursive: true });
  log(`seed ${args.seed}, ${args.duration}s of faults (${args.faults.join(', ') || 'none'}), ${args.nodes} nodes, ${args.users} users × ${args.devices} devices; output in ${outDir}`);
  cluster = await startCluster({
    bin: path.resolve(args.bin),
    repo,
    dir: outDir,
    nodes: args.nodes,
    archive: args.archive,
    prefix: `chaos${args.seed}:`,
    log,
  });

  // Users, devices (transports round-robin from a seeded start), groups.
  const wr = root.fork(1);
  const users = Array.from({ length: args.users }, (_, i) => `u${i}`);
  const transportsChoice = [['websocket'], ['polling'], ['polling', 'websocket']];
  let tIndex = wr.int(0, 2);
  for (const u of users) {
    for (let k = 0; k < args.devices; k++) {
      devices.push(new Device(u, k, transportsChoice[tIndex++ % 3], root.fork(100 + devices.length)));
    }
  }
  await pool(devices, 4, async (d) => {
    await d.home('start');
    if (!d.socket) throw new Error(`${d.id} could not connect`);
  });
  log(`${devices.length} devices connected: ${devices.map((d) => `${d.id}@${d.socket.io.engine.transport.name}`).join(' ')}`);

  const convs = {};
  for (let i = 0; i < users.length; i++) {
    for (let j = i + 1; j < users.length; j++) convs[`dm:${[users[i], users[j]].sort().join(':')}`] = [users[i], users[j]];
  }
  const groups = [];
  for (let g = 0; g < args.groups; g++) {
    const members = wr.shuffle(users).slice(0, wr.int(3, Math.min(users.length, 4)));
    const owner = devices.find((d) => d.user === members[0]);
    const res = await until(`group ${g} created`, 30_000, async () => {
      const r = await owner.socket.timeout(5000).emitWithAck('group:create', { name: `g${g}`, members: members.slice(1) });
      if (!r?.ok) throw new Error(JSON.stringify(r));
      return r;
    });
    const id = res.group.id;
    convs[`group:${id}`] = res.group.members;
    groups.push({ id, members: res.group.members });
  }
  const meta = { users: {}, convs, seed: args.seed, faults: args.faults, duration: args.duration, nodes: args.nodes };
  for (const d of devices) (meta.users[d.user] ??= []).push(d.id);
  rec('meta', meta);
  // Every device catches up once more: the group:member events are past, the cursor is fresh.
  for (const d of devices) await d.catchUp(d.socket);

  // Workload: every device sends to a random DM partner or one of its groups.
  let sending = true;
  const targetsOf = (u) => [
    ...users.filter((v) => v !== u).map((v) => ({ conv: `dm:${[u, v].sort().join(':')}`, payload: { to: v } })),
    ...groups.filter((g) => g.members.includes(u)).map((g) => ({ conv: `group:${g.id}`, payload: { group: g.id } })),
  ];
  const senders = devices.map(async (d) => {
    const targets = targetsOf(d.user);
    while (sending && !finished) {
      await sleep(d.r.int(250, 1200));
      if (!sending) break;
      await d.send(d.r.pick(targets));
    }
  });

  // Faults, one at a time, at random intervals, until the duration is over.
  const fr = root.fork(2);
  const faults = makeFaults(fr);
  const faultEnd = Date.now() + args.duration * 1000;
  const injected = {};
  while (args.faults.length && Date.now() < faultEnd) {
    await sleep(Math.min(fr.int(args.gap[0], args.gap[1]), Math.max(0, faultEnd - Date.now())));
    if (Date.now() >= faultEnd) break;
    const name = fr.pick(args.faults);
    rec('fault', { name, phase: 'start' });
    try {
      const what = await faults[name]();
      rec('fault', { name, phase: 'end', what });
      injected[name] = (injected[name] ?? 0) + 1;
      log(`fault ${name}: ${what}`);
    } catch (err) {
      rec('fault', { name, phase: 'error', error: err.message });
      log(`! fault ${name} failed: ${err.message}; restoring the cluster`);
      await restoreAll();
    }
  }
  if (!args.faults.length) await sleep(Math.max(0, faultEnd - Date.now()));
  sending = false;
  log(`faults over (${JSON.stringify(injected)}); waiting for the last sends`);
  await Promise.all(senders);
  rec('workload-end', {});

  // Settle: every node live, every device connected and caught up.
  await restoreAll();
  await waitAllLive(cluster, 60_000);
  await until('every device connected', 120_000, async () => {
    for (const d of devices) if (!d.socket && !d.homing) d.home('settle');
    return devices.every((d) => d.socket);
  }, 250);
  log('settled: every node live, every device connected');

  // The final catch-up of every device, then every conversation's history.
  await pool(devices, 4, async (d) => {
    await until(`${d.id} final sync`, 60_000, async () => {
      if (!d.socket) {
        await d.home('final sync');
        return false;
      }
      await d.catchUp(d.socket, true);
      return true;
    }, 250);
  });
  for (const [conv, members] of Object.entries(convs)) {
    const reader = devices.find((d) => members.includes(d.user));
    const msgs = await until(`history of ${conv}`, 60_000, async () => {
      if (!reader.socket) return false;
      const all = [];
      let before;
      for (let page = 0; page < 10_000; page++) {
        const res = await reader.socket
          .timeout(5000)
          .emitWithAck('history', { conversation: conv, limit: 100, ...(before ? { before } : {}) });
        if (!res?.ok) throw new Error(`history: ${JSON.stringify(res)}`);
        all.unshift(...res.messages);
        if (!res.hasMore || !res.messages.length) return all;
        before = res.messages[0].id;
      }
      throw new Error('history longer than 10,000 pages');
    });
    rec('history', { conv, msgs: msgs.map(brief) });
  }

  // Presence: some users leave entirely, one user closes one of its devices; every remaining
  // device's presence:subscribe must then say, for every user, online = has a device left.
  const pr = root.fork(3);
  const leaving = pr.shuffle(users).slice(0, Math.max(1, Math.floor(users.length / 3)));
  for (const d of devices) if (leaving.includes(d.user)) d.close();
  const multi = users.filter((u) => !leaving.includes(u) && devices.filter((d) => d.user === u).length > 1);
  if (multi.length) devices.find((d) => d.user === pr.pick(multi)).close();
  const expected = Object.fromEntries(users.map((u) => [u, devices.some((d) => d.user === u && !d.closed)]));
  const t0 = Date.now();
  let mismatches = [];
  let converged = false;
  for (let round = 0; round < 1000 && Date.now() - t0 < 45_000; round++) {
    mismatches = [];
    for (const d of devices.filter((x) => !x.closed)) {
      if (!d.socket) {
        mismatches.push({ dev: d.id, error: 'not connected' });
        if (!d.homing) d.home('presence');
        continue;
      }
      let res;
      try {
        res = await d.socket.timeout(5000).emitWithAck('presence:subscribe', { users });
      } catch {
        mismatches.push({ dev: d.id, error: 'no answer' });
        continue;
      }
      if (!res?.ok) {
        mismatches.push({ dev: d.id, error: JSON.stringify(res) });
        continue;
      }
      for (const u of users) {
        if (res.presence?.[u]?.online !== expected[u]) mismatches.push({ dev: d.id, user: u, online: res.presence?.[u]?.online, expected: expected[u] });
      }
    }
    if (!mismatches.length) {
      converged = true;
      break;
    }
    await sleep(250);
  }
  rec('presence', { converged, ms: Date.now() - t0, expected, mismatches });
  log(`presence: ${converged ? 'converged' : 'NOT converged'} after ${Date.now() - t0} ms (${leaving.join(', ')} left)`);

  finished = true;
  writeFileSync(path.join(outDir, 'history.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  await cleanup();

  const r = check(events);
  for (const [name, list] of [['lost', r.lost], ['dup', r.dup], ['reordered', r.reordered], ['refused', r.refused]]) {
    for (const x of list.slice(0, 10)) log(`! ${name}: ${JSON.stringify(x)}`);
    if (list.length > 10) log(`! ${name}: ... ${list.length - 10} more`);
  }
  if (!converged) for (const m of mismatches.slice(0, 10)) log(`! presence: ${JSON.stringify(m)}`);
  const o = r.outage;
  log(
    `${r.live} live deliveries, ${r.connections} connections, ${r.givenUp} sends given up; faults ${JSON.stringify(injected)}; ` +
      `longest outage ${(o.ms / 1000).toFixed(1)} s (${(o.from / 1000).toFixed(1)}s → ${(o.to / 1000).toFixed(1)}s of the run)`,
  );
  console.log(`${summary(r)} (seed ${args.seed}, ${Math.round(now() / 1000)} s, history ${path.relative(process.cwd(), outDir)}/history.jsonl)`);
  process.exit(passed(r) ? 0 : 1);
}

// A watchdog: whatever hangs, the run ends (with its processes) within duration + 10 min.
const watchdog = setTimeout(async () => {
  console.error(`[chaos] watchdog: the run took longer than ${args.duration + 600} s; stopping (seed ${args.seed})`);
  finished = true;
  await cleanup().catch(() => {});
  process.exit(2);
}, (args.duration + 600) * 1000);
watchdog.unref();

main().catch(async (err) => {
  console.error(`[chaos] setup failed: ${err.stack ?? err.message} (seed ${args.seed}, logs in ${outDir})`);
  finished = true;
  try {
    writeFileSync(path.join(outDir, 'history.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  } catch {
    // nothing to keep
  }
  await cleanup().catch(() => {});
  process.exit(2);
});
