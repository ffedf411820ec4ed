// The cluster of the fault run as plain processes on 127.0.0.1 (the approach of
// scripts/cluster.sh, on free ports): a Redis master and 2 replicas, 3 Sentinels, N
// chat-servers in Sentinel mode, one registry and one health checker. It also holds the fault
// primitives (kill, stop, freeze a process; ask the Sentinels for the master; send a Redis
// command), and kills every process it started when the run ends, however it ends.

import { spawn, execFile } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
export const HOST = '127.0.0.1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every process ever started, so that exit paths can kill them all (SIGCONT first: a frozen
// process must not outlive the run).
const children = new Set();
function killAllChildren() {
  for (const c of children) {
    try {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAllChildren);

// Ports are taken below the kernel's ephemeral range: a port from that range, free when
// tested, can be taken meanwhile as the local port of any outgoing connection (a replica's
// link to its master, say), and a node restarted after a kill needs its port again.
const taken = new Set();
function ephemeralLow() {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function canBind(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1, below the ephemeral range, not handed out before. */
export async function freePort() {
  const hi = Math.min(ephemeralLow(), 65536);
  const lo = Math.max(1024, hi - 12000);
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo));
    if (taken.has(port)) continue;
    if (await canBind(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${lo}..${hi - 1} after 200 tries`);
}

/** Polls `check` until it returns a truthy value, or throws after `ms`. */
export async function until(what, ms, check, every = 200) {
  const deadline = Date.now() + ms;
  let lastErr;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${ms / 1000}s${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await sleep(every);
  }
}

/** A process restarted under the same name, with its output appended to `<dir>/<name>.log`. */
class Proc {
  constructor(name, cmd, args, env, logDir) {
    Object.assign(this, { name, cmd, args, env, logDir, child: null, starts: 0 });
  }

  start() {
    const fd = openSync(path.join(this.logDir, `${this.name}.log`), 'a');
    const child = spawn(this.cmd, this.args, { env: this.env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.child = child;
    this.starts++;
    children.add(child);
    child.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    child.once('error', () => {});
    return this;
  }

  get running() {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(sig) {
    if (this.running) this.child.kill(sig);
  }

  /** Waits for the exit, SIGKILL after `ms`. */
  async waitExit(ms) {
    if (!this.child) return null;
    let timer;
    const r = await Promise.race([
      this.child.exited,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), ms);
      }),
    ]);
    clearTimeout(timer);
    if (r) return r;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    return this.child.exited;
  }
}

/** One Redis command through redis-cli (loopback only), its trimmed output. */
export async function redisCli(port, args, timeoutMs = 5000) {
  const { stdout } = await execFileP('redis-cli', ['-h', HOST, '-p', String(port), ...args], { timeout: timeoutMs });
  return stdout.trim();
}

async function getJson(url, timeoutMs = 3000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

/**
 * Starts the whole cluster. `opts`: {bin (dir of the chat binaries), repo, dir (logs and data),
 * nodes, prefix, downAfterMs, archive}. Resolves once every piece answers. With `archive`, a
 * PostgreSQL from the host's binaries is the nodes' archive, and Redis keeps 50 messages per
 * conversation, so that the final history reads mostly from the archive.
 */
export async function startCluster(opts) {
  const { bin, repo, dir, nodes: nodeCount, prefix, downAfterMs = 3000, log, archive } = opts;
  mkdirSync(dir, { recursive: true });
  const ports = {
    redis: [await freePort(), await freePort(), await freePort()],
    sentinel: [await freePort(), await freePort(), await freePort()],
    nodes: [],
    registry: await freePort(),
    health: await freePort(),
  };
  for (let i = 0; i < nodeCount; i++) ports.nodes.push(await freePort());

  const baseEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('CHAT_') && k !== 'RUST_LOG'),
  );
  const c = { ports, dir, redis: [], sentinels: [], nodes: [], registry: null, health: null };

  // Redis: master first, then the replicas, each with its own data directory.
  for (let i = 0; i < 3; i++) {
    const rdir = path.join(dir, `redis-${i + 1}`);
    mkdirSync(rdir, { recursive: true });
    const env = {
      ...baseEnv,
      REDIS_DIR: rdir,
      REDIS_PORT: String(ports.redis[i]),
      REDIS_BIND: HOST,
      REDIS_ANNOUNCE_HOST: HOST,
      REDIS_REPLICA_OF: i === 0 ? '' : `${HOST} ${ports.redis[0]}`,
    };
    const p = new Proc(`redis-${i + 1}`, 'sh', [path.join(repo, 'deploy/redis/redis.sh')], env, dir).start();
    p.port = ports.redis[i];
    c.redis.push(p);
    if (i === 0) await until('the Redis master answers', 15_000, async () => (await redisCli(p.port, ['ping'])) === 'PONG');
  }
  for (const r of c.redis.slice(1)) {
    await until(`replica :${r.port} linked`, 30_000, async () =>
      (await redisCli(r.port, ['info', 'replication'])).includes('master_link_status:up'),
    );
  }
  for (let i = 0; i < 3; i++) {
    const sdir = path.join(dir, `sentinel-${i + 1}`);
    mkdirSync(sdir, { recursive: true });
    const env = {
      ...baseEnv,
      REDIS_DIR: sdir,
      SENTINEL_PORT: String(ports.sentinel[i]),
      SENTINEL_BIND: HOST,
      SENTINEL_ANNOUNCE_HOST: HOST,
      SENTINEL_MASTER: 'mymaster',
      SENTINEL_MASTER_HOST: HOST,
      SENTINEL_MASTER_PORT: String(ports.redis[0]),
      SENTINEL_QUORUM: '2',
      SENTINEL_DOWN_AFTER_MS: String(downAfterMs),
      SENTINEL_FAILOVER_TIMEOUT_MS: '20000',
    };
    const p = new Proc(`sentinel-${i + 1}`, 'sh', [path.join(repo, 'deploy/redis/sentinel.sh')], env, dir).start();
    p.port = ports.sentinel[i];
    c.sentinels.push(p);
  }
  for (const s of c.sentinels) {
    await until(`sentinel :${s.port} has quorum`, 40_000, async () =>
      (await redisCli(s.port, ['sentinel', 'ckquorum', 'mymaster'])).startsWith('OK'),
    );
  }

  const chatEnv = {
    ...baseEnv,
    RUST_LOG: 'info',
    CHAT_REDIS_SENTINELS: ports.sentinel.map((p) => `${HOST}:${p}`).join(','),
    CHAT_REDIS_MASTER: 'mymaster',
    CHAT_REDIS_PREFIX: prefix,
  };
  if (archive) {
    c.postgres = await startPostgres(dir, baseEnv);
    Object.assign(chatEnv, {
      CHAT_DATABASE_URL: `postgres://postgres@${HOST}:${c.postgres.port}/postgres`,
      CHAT_HISTORY_MAX: '50',
      CHAT_ARCHIVE_CLAIM_AFTER: '5s',
    });
  }
  for (let i = 0; i < nodeCount; i++) {
    const port = ports.nodes[i];
    const env = {
      ...chatEnv,
      CHAT_NODE_ID: `chaos-${i + 1}`,
      CHAT_LISTEN: `${HOST}:${port}`,
      CHAT_PUBLIC_URL: `http://${HOST}:${port}`,
      CHAT_REDIS_WAIT: '1',
      CHAT_DRAIN_TIMEOUT: '3s',
      // The workload retries after outages; rate limits are not what this run tests.
      CHAT_RATE_MESSAGES: '200',
      CHAT_RATE_MESSAGES_BURST: '400',
      CHAT_RATE_EVENTS: '400',
      CHAT_RATE_EVENTS_BURST: '800',
    };
    const p = new Proc(`chat-${i + 1}`, path.join(bin, 'chat-server'), [], env, dir).start();
    p.port = port;
    p.url = `http://${HOST}:${port}`;
    p.id = `chaos-${i + 1}`;
    c.nodes.push(p);
  }
  c.registry = new Proc('registry', path.join(bin, 'chat-registry'), [], { ...chatEnv, CHAT_LISTEN: `${HOST}:${ports.registry}` }, dir).start();
  c.registryUrl = `http://${HOST}:${ports.registry}`;
  c.health = new Proc(
    'health',
    path.join(bin, 'chat-health'),
    [],
    { ...chatEnv, CHAT_LISTEN: `${HOST}:${ports.health}`, CHAT_HEALTH_INTERVAL: '1s' },
    dir,
  ).start();
  for (const n of c.nodes) await waitHealthy(n, 60_000);
  await until('the registry answers', 30_000, async () => (await getJson(`${c.registryUrl}/healthz`)).status === 200);
  await until('the health checker answers', 30_000, async () => (await getJson(`http://${HOST}:${ports.health}/healthz`)).status === 200);
  await waitAllLive(c, 30_000);
  log?.(`cluster up: redis :${ports.redis.join(' :')}, sentinels :${ports.sentinel.join(' :')}, nodes :${ports.nodes.join(' :')}, registry :${ports.registry}`);
  return c;
}

/** PostgreSQL from the host's packages, in `dir`/postgres, as the postgres user when root. */
async function startPostgres(dir, env) {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b));
  const pgBin = path.join('/usr/lib/postgresql', versions.at(-1), 'bin');
  const pdir = path.join(dir, 'postgres');
  mkdirSync(pdir, { recursive: true });
  const root = process.getuid?.() === 0;
  // setpriv execs (runuser would fork, and a SIGKILL of it would leave PostgreSQL running).
  const as = (cmd, args) =>
    root ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]] : [cmd, args];
  if (root) await promisify(execFile)('chown', ['postgres', pdir]);
  const [icmd, iargs] = as(path.join(pgBin, 'initdb'), ['-D', path.join(pdir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C']);
  await promisify(execFile)(icmd, iargs);
  const port = await freePort();
  const [cmd, args] = as(path.join(pgBin, 'postgres'), ['-D', path.join(pdir, 'data'), '-p', String(port), '-c', `listen_addresses=${HOST}`, '-k', pdir]);
  const p = new Proc('postgres', cmd, args, env, dir).start();
  p.port = port;
  await until('postgres answers', 30_000, () => new Promise((resolve) => {
    const s = net.connect(port, HOST, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }));
  return p;
}

/** Waits until the node's /healthz answers 200. */
export function waitHealthy(node, ms) {
  return until(`${node.name} healthy`, ms, async () => (await getJson(`${node.url}/healthz`, 1000)).status === 200, 200);
}

/** Waits until the registry lists every node as live and not draining. */
export function waitAllLive(c, ms) {
  return until('every node live in the registry', ms, async () => {
    const { status, body } = await getJson(`${c.registryUrl}/api/v1/servers`);
    if (status !== 200) return false;
    const live = new Set((body?.servers ?? []).filter((s) => s.live && !s.draining).map((s) => s.id));
    return c.nodes.every((n) => live.has(n.id));
  }, 300);
}

/** The registry's pick: `{url, nodeId}`; only ever a loopback URL. */
export async function pick(registryUrl) {
  const { status, body } = await getJson(`${registryUrl}/api/v1/servers/pick`);
  if (status !== 200 || typeof body?.url !== 'string') throw new Error(`pick answered ${status}`);
  if (new URL(body.url).hostname !== HOST) throw new Error(`pick gave a non-loopback url ${body.url}`);
  return body;
}

/** The port of the current master according to the first Sentinel that answers. */
export async function masterPort(c) {
  for (const s of c.sentinels) {
    try {
      const out = await redisCli(s.port, ['sentinel', 'get-master-addr-by-name', 'mymaster'], 2000);
      const [host, port] = out.split(/\s+/);
      if (host === HOST && port) return Number(port);
    } catch {
      // try the next one
    }
  }
  throw new Error('no Sentinel names a master');
}

/** Stops everything: chat binaries first (SIGTERM, then SIGKILL), Redis last. */
export async function stopCluster(c) {
  if (!c) return;
  const chat = [...c.nodes, c.registry, c.health].filter(Boolean);
  for (const p of chat) {
    p.signal('SIGCONT');
    p.signal('SIGTERM');
  }
  await Promise.all(chat.map((p) => p.waitExit(8000)));
  const redis = [...c.sentinels, ...c.redis];
  if (c.postgres) {
    c.postgres.signal('SIGINT'); // fast shutdown
    await c.postgres.waitExit(10000);
  }
  for (const p of redis) {
    p.signal('SIGCONT');
    p.signal('SIGKILL');
  }
  await Promise.all(redis.map((p) => p.waitExit(5000)));
  killAllChildren();
}
