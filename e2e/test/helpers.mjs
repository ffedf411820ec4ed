// Helpers for the end-to-end suite: start a real `chat-server` binary on a loopback port,
// connect official socket.io-client sockets to it, and wait for events with deadlines.
//
// Rules the tests follow: every wait has a deadline, nothing sleeps to synchronise, every
// server is stopped and every socket closed in hooks, user ids are unique per test.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');

/** Path of the server binary: `CHAT_SERVER_BIN`, else the workspace's debug build. */
export const SERVER_BIN =
  process.env.CHAT_SERVER_BIN ?? path.join(repoRoot, 'target', 'debug', 'chat-server');

/** Path of the registry binary: `CHAT_REGISTRY_BIN`, else the workspace's debug build. */
export const REGISTRY_BIN =
  process.env.CHAT_REGISTRY_BIN ?? path.join(repoRoot, 'target', 'debug', 'chat-registry');

/** Path of the health checker binary: `CHAT_HEALTH_BIN`, else the workspace's debug build. */
export const HEALTH_BIN =
  process.env.CHAT_HEALTH_BIN ?? path.join(repoRoot, 'target', 'debug', 'chat-health');

/** Default deadline for one wait, in milliseconds. */
export const DEFAULT_TIMEOUT = 5000;

const VERBOSE = !!process.env.E2E_VERBOSE;
const LOG_TAIL = 60;

// ---------------------------------------------------------------------------------------------
// Servers

const servers = new Set();
const allServers = [];

// A test file whose tests failed prints the tail of each server's output, so a failure in CI
// comes with the server's side of the story.
process.on('exit', (code) => {
  for (const s of servers) s.proc.kill('SIGKILL');
  if ((code || process.exitCode) && allServers.length) {
    for (const s of allServers) {
      process.stderr.write(`\n--- chat-server ${s.label} (last ${LOG_TAIL} lines) ---\n`);
      process.stderr.write(s.logs.slice(-LOG_TAIL).join('\n') + '\n');
    }
  }
});

/**
 * Starts `chat-server` on 127.0.0.1 with a random port and JSON logs; resolves once it logs
 * `listening`. Returns `{url, addr, proc, logs, exited, stop()}`; `exited` resolves with
 * `{code, signal}`; `stop()` sends SIGTERM and waits for the exit (SIGKILL after a deadline).
 */
export async function startServer(
  env = {},
  { startTimeoutMs = 20000, bin = SERVER_BIN, listeningMessage = 'listening' } = {},
) {
  // Inherit PATH and friends, but never stray CHAT_* settings of the calling shell.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('CHAT_') && k !== 'RUST_LOG'),
  );
  const fullEnv = {
    ...base,
    RUST_LOG: 'info',
    RUST_BACKTRACE: '0',
    CHAT_LISTEN: '127.0.0.1:0',
    CHAT_LOG_FORMAT: 'json',
    // Short, so a stop() with a client left over does not wait long; shutdown tests set their own.
    CHAT_DRAIN_TIMEOUT: '2s',
    ...env,
  };
  if (!fullEnv.CHAT_LISTEN.startsWith('127.') && !fullEnv.CHAT_LISTEN.startsWith('[::1]')) {
    throw new Error('e2e servers listen on loopback only');
  }
  const proc = spawn(bin, [], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const label = `pid ${proc.pid ?? '?'} ${JSON.stringify(env)}`;
  const server = { proc, logs, label };
  allServers.push(server);
  servers.add(server);

  server.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      servers.delete(server);
      resolve({ code, signal });
    });
  });

  let onListening;
  const listening = new Promise((resolve, reject) => {
    onListening = resolve;
    proc.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}`)));
    server.exited.then(({ code, signal }) =>
      reject(
        new Error(
          `chat-server exited before listening (code ${code}, signal ${signal}):\n` +
            logs.slice(0, 200).join('\n'),
        ),
      ),
    );
  });
  listening.catch(() => {});

  const watch = (stream, name) => {
    const rl = createInterface({ input: stream });
    rl.on('line', (line) => {
      logs.push(`[${name}] ${line}`);
      if (VERBOSE) process.stderr.write(`[server ${proc.pid} ${name}] ${line}\n`);
      const addr = listeningAddr(line, listeningMessage);
      if (addr) onListening(addr);
    });
  };
  watch(proc.stdout, 'out');
  watch(proc.stderr, 'err');

  let addr;
  try {
    addr = await withDeadline(listening, startTimeoutMs, 'chat-server to log "listening"');
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  server.addr = addr;
  server.url = `http://${addr}`;
  server.stop = (timeoutMs = 10000) => stopServer(server, timeoutMs);
  return server;
}

/** The `addr` of a tracing JSON line whose message is `message`, else undefined. */
function listeningAddr(line, message) {
  let rec;
  try {
    rec = JSON.parse(line);
  } catch {
    return undefined;
  }
  const fields = rec?.fields ?? rec;
  if (fields?.message !== message || typeof fields.addr !== 'string') return undefined;
  const addr = fields.addr.replace(/^"|"$/g, '');
  // Only ever talk to loopback, whatever the server says.
  if (!/^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/.test(addr)) {
    throw new Error(`server listens on non-loopback address ${addr}`);
  }
  return addr;
}

async function stopServer(server, timeoutMs) {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) return server.exited;
  server.proc.kill('SIGTERM');
  try {
    return await withDeadline(server.exited, timeoutMs, 'chat-server to exit after SIGTERM');
  } catch {
    server.proc.kill('SIGKILL');
    return server.exited;
  }
}

// ---------------------------------------------------------------------------------------------
// Redis (cluster tests)

/** Path of the Redis server binary: `REDIS_SERVER_BIN`, else `redis-server` on the PATH. */
export const REDIS_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Sends one command to Redis at 127.0.0.1:`port` and resolves with the parsed reply: a string
 * for simple and bulk strings, a number for integers, null for nil, an array for arrays; rejects
 * with an error reply, a connection error, or after `timeoutMs`.
 */
export function redisCommand(port, args, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const done = (err, value) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => done(new Error(`redis ${args[0]}: no reply in ${timeoutMs} ms`)), timeoutMs);
    sock.once('error', (err) => done(err));
    sock.on('connect', () => {
      const parts = args.map(String);
      sock.write(`*${parts.length}\r\n` + parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let parsed;
      try {
        parsed = parseResp(buf, 0);
      } catch (err) {
        done(err);
        return;
      }
      if (parsed) done(null, parsed[0]);
    });
  });
}

/** Parses one RESP2 value at `pos`: `[value, next]`, or undefined when `buf` is incomplete. */
function parseResp(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(buf[pos])) {
    case '+':
      return [line, next];
    case '-':
      throw new Error(`redis error: ${line}`);
    case ':':
      return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, at);
        if (!item) return undefined;
        out.push(item[0]);
        at = item[1];
      }
      return [out, at];
    }
    default:
      throw new Error(`malformed redis reply: ${JSON.stringify(buf.toString('utf8'))}`);
  }
}

/**
 * Starts a throwaway `redis-server` on a free loopback port (no persistence) and resolves once
 * it answers PING. Returns `{port, url, proc, exited, stop()}`.
 */
export async function startRedis({ startTimeoutMs = 10000 } = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = spawn(
      REDIS_BIN,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const logs = [];
    const redis = { port, url: `redis://127.0.0.1:${port}`, proc, logs, label: `redis-server :${port}` };
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        logs.push(line);
        if (VERBOSE) process.stderr.write(`[redis ${port}] ${line}\n`);
      });
    }
    redis.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    const stop = () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return redis.exited;
    };
    redis.stop = stop;
    const spawnError = new Promise((_, reject) => proc.once('error', reject));
    spawnError.catch(() => {});
    redisProcs.add(redis);
    redis.exited.then(() => redisProcs.delete(redis));
    try {
      await Promise.race([
        spawnError,
        redis.exited.then(({ code }) => {
          throw new Error(`redis-server exited at start (code ${code}):\n${logs.join('\n')}`);
        }),
        eventually(
          () => redisCommand(port, ['PING'], 500).then((r) => r === 'PONG', () => false),
          { timeoutMs: startTimeoutMs, intervalMs: 50, what: `redis-server on port ${port} to answer PING` },
        ),
      ]);
      return redis;
    } catch (err) {
      lastErr = err;
      await stop();
      // The port may have been taken between freePort() and the bind: try another.
    }
  }
  throw lastErr;
}

const redisProcs = new Set();
process.on('exit', () => {
  for (const r of redisProcs) r.proc.kill('SIGKILL');
});

// ---------------------------------------------------------------------------------------------
// Clients

const sockets = new Set();

/**
 * Connects a socket.io-client socket and resolves with it once `ready` arrives (its payload is
 * kept as `socket.ready`); rejects with the `connect_error`. `opts` go to `io()`; e.g.
 * `{transports: ['polling']}` or `['websocket']`; `onCreate(socket)` runs before connecting.
 */
export function connect(url, auth, opts = {}) {
  const { onCreate, timeoutMs = DEFAULT_TIMEOUT, ...ioOpts } = opts;
  const socket = io(url, { forceNew: true, reconnection: false, auth, ...ioOpts });
  sockets.add(socket);
  onCreate?.(socket);
  const ready = new Promise((resolve, reject) => {
    socket.once('ready', (payload) => {
      socket.ready = payload;
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      socket.close();
      sockets.delete(socket);
      reject(err);
    });
  });
  return withDeadline(ready, timeoutMs, `"ready" for ${JSON.stringify(auth)}`).catch((err) => {
    socket.close();
    sockets.delete(socket);
    throw err;
  });
}

/** Connects and expects a `connect_error`; resolves with its message. */
export async function connectError(url, auth, opts = {}) {
  try {
    const s = await connect(url, auth, opts);
    s.close();
  } catch (err) {
    if (err?.name === 'DeadlineError') throw err;
    return String(err?.message);
  }
  throw new Error(`connection with ${JSON.stringify(auth)} was accepted, expected connect_error`);
}

/** Dev-mode auth for a user. */
export const as = (user) => ({ user });

/** Closes every socket opened by `connect` (call in `afterEach`/`after`). */
export function closeAll() {
  for (const s of sockets) s.close();
  sockets.clear();
}

/** `emitWithAck` with a 5 s deadline. */
export function emitAck(socket, event, payload) {
  return socket.timeout(DEFAULT_TIMEOUT).emitWithAck(event, payload);
}

/** `emitWithAck` with any argument list (none: a missing payload). */
export function emitAckArgs(socket, event, ...args) {
  return socket.timeout(DEFAULT_TIMEOUT).emitWithAck(event, ...args);
}

/** Sends a message and asserts the ack is ok; resolves with the stored message. */
export async function send(socket, payload) {
  const res = await emitAck(socket, 'message:send', payload);
  if (!res?.ok) throw new Error(`message:send ${JSON.stringify(payload)} failed: ${JSON.stringify(res)}`);
  return res.message;
}

/** Emits an acked event and asserts the answer is `{ok: false, error: {code}}` with that code. */
export async function expectError(socket, event, payload, code, ...rest) {
  const res = await (rest.length || payload !== undefined
    ? emitAckArgs(socket, event, payload, ...rest)
    : emitAckArgs(socket, event));
  const got = res?.ok === false ? res?.error?.code : undefined;
  if (got !== code || typeof res?.error?.message !== 'string') {
    throw new Error(
      `${event} ${JSON.stringify(payload)}: expected error ${code}, got ${JSON.stringify(res)}`,
    );
  }
  return res;
}

/**
 * Runs `[event, payload, code]` cases in order and asserts each answers that error code; reports
 * every mismatch at once rather than stopping at the first.
 */
export async function expectErrors(socket, cases) {
  const wrong = [];
  for (const [event, payload, code] of cases) {
    const res = await (payload === undefined ? emitAckArgs(socket, event) : emitAck(socket, event, payload));
    if (res?.ok !== false || res?.error?.code !== code || typeof res?.error?.message !== 'string') {
      wrong.push(`${event} ${JSON.stringify(payload)}: expected ${code}, got ${JSON.stringify(res)}`);
    }
  }
  if (wrong.length) throw new Error(`${wrong.length} of ${cases.length} answers wrong:\n${wrong.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------
// Waiting

class DeadlineError extends Error {
  constructor(what, ms) {
    super(`timed out after ${ms} ms waiting for ${what}`);
    this.name = 'DeadlineError';
  }
}

/** Resolves like `promise`, or rejects after `ms`. */
export function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
    timer.unref?.();
  });
  const p = Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
  p.catch(() => {});
  return p;
}

/** Resolves with the first future payload of `event` on `socket` matching `predicate`. */
export function waitFor(socket, event, predicate = () => true, timeoutMs = DEFAULT_TIMEOUT) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (payload) => {
      if (predicate(payload)) resolve(payload);
    };
    socket.on(event, listener);
  });
  const out = withDeadline(p, timeoutMs, `"${event}" matching ${predicate}`).finally(() =>
    socket.off(event, listener),
  );
  out.catch(() => {});
  return out;
}

/**
 * Records every payload of `event` on `socket` from now on. `waitFor(pred)` resolves with the
 * first recorded payload matching (past or future); `all(pred)` lists them, which is how a test
 * asserts an event did NOT come: record, cause something later that must arrive after it, wait
 * for that, then check. With `{ack: true}` the recorder acknowledges each event (for `message`,
 * that tells the sender it was delivered).
 */
export function record(socket, event, { ack = false } = {}) {
  const events = [];
  const waiters = new Set();
  const listener = (payload, ...rest) => {
    events.push(payload);
    if (ack && typeof rest.at(-1) === 'function') rest.at(-1)();
    for (const w of waiters) {
      if (w.predicate(payload)) {
        waiters.delete(w);
        w.resolve(payload);
      }
    }
  };
  socket.on(event, listener);
  return {
    events,
    all: (predicate = () => true) => events.filter(predicate),
    count: (predicate = () => true) => events.filter(predicate).length,
    waitFor(predicate = () => true, timeoutMs = DEFAULT_TIMEOUT) {
      const seen = events.find(predicate);
      if (seen !== undefined) return Promise.resolve(seen);
      let w;
      const p = new Promise((resolve) => {
        w = { predicate, resolve };
        waiters.add(w);
      });
      const out = withDeadline(p, timeoutMs, `"${event}" matching ${predicate}`).finally(() =>
        waiters.delete(w),
      );
      out.catch(() => {});
      return out;
    },
    /** Waits until `n` recorded payloads match. */
    async waitForCount(predicate, n, timeoutMs = DEFAULT_TIMEOUT) {
      const start = Date.now();
      for (;;) {
        if (events.filter(predicate).length >= n) return events.filter(predicate);
        const left = timeoutMs - (Date.now() - start);
        if (left <= 0) throw new DeadlineError(`${n} "${event}" events matching ${predicate}`, timeoutMs);
        // Wake up on the next event (or at the deadline) and count again.
        await new Promise((resolve) => {
          const t = setTimeout(done, left);
          const w = { predicate: () => true, resolve: done };
          function done() {
            clearTimeout(t);
            waiters.delete(w);
            resolve();
          }
          waiters.add(w);
        });
      }
    },
    stop: () => socket.off(event, listener),
  };
}

/** Resolves when `socket` disconnects (with the reason). */
export function waitDisconnect(socket, timeoutMs = DEFAULT_TIMEOUT) {
  if (!socket.connected) return Promise.resolve('already disconnected');
  const p = new Promise((resolve) => socket.once('disconnect', resolve));
  return withDeadline(p, timeoutMs, 'disconnect');
}

/**
 * Calls `attempt()` until it returns a truthy value, at most every `intervalMs`, until the
 * deadline. The pause between attempts is a retry interval, not synchronisation: the condition
 * itself is what the test waits for.
 */
export async function eventually(attempt, { timeoutMs = DEFAULT_TIMEOUT, intervalMs = 100, what = 'condition' } = {}) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await attempt();
    if (last) return last;
    if (Date.now() - start > timeoutMs) throw new DeadlineError(`${what} (last: ${JSON.stringify(last)})`, timeoutMs);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---------------------------------------------------------------------------------------------
// Ids, tokens

/** A user id unique to this run: `<prefix>-<8 hex>`. */
export function uid(prefix = 'u') {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** The DM conversation id of two users. */
export function dmId(a, b) {
  return `dm:${[a, b].sort().join(':')}`;
}

/** Parses a message id `<ms>-<seq>` into BigInts. */
export function parseId(id) {
  const m = /^(\d+)-(\d+)$/.exec(id);
  if (!m) throw new Error(`malformed message id ${JSON.stringify(id)}`);
  return [BigInt(m[1]), BigInt(m[2])];
}

/** Compares two message ids as pairs of numbers. */
export function compareIds(a, b) {
  const [am, as_] = parseId(a);
  const [bm, bs] = parseId(b);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as_ !== bs) return as_ < bs ? -1 : 1;
  return 0;
}

/** True when the ids strictly increase. */
export function increasing(ids) {
  return ids.every((id, i) => i === 0 || compareIds(ids[i - 1], id) < 0);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT with the given claims (and optionally another header). */
export function makeToken(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const head = b64url(JSON.stringify(header));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** Seconds since the epoch. */
export const nowSecs = () => Math.floor(Date.now() / 1000);

/** Generous rate limits for tests that send a lot. */
export const HIGH_LIMITS = {
  CHAT_RATE_MESSAGES: '1000',
  CHAT_RATE_MESSAGES_BURST: '1000',
  CHAT_RATE_EVENTS: '1000',
  CHAT_RATE_EVENTS_BURST: '1000',
};

/** The cluster uid a node logged when it joined (its key in the node table). */
export function clusterUid(node) {
  for (const line of node.logs) {
    let rec;
    try {
      rec = JSON.parse(line.replace(/^\[(out|err)\] /, ''));
    } catch {
      continue;
    }
    const fields = rec?.fields ?? rec;
    if (fields?.message === 'joined the cluster' && typeof fields.uid === 'string') return fields.uid;
  }
  throw new Error(`no "joined the cluster" line in the log of ${node.label}`);
}

/** Presence snapshot of `users` seen from `socket`. */
export async function presenceOf(socket, users) {
  const res = await emitAck(socket, 'presence:subscribe', { users });
  if (res.ok !== true) throw new Error(`presence:subscribe: ${JSON.stringify(res)}`);
  return res.presence;
}
