#!/usr/bin/env node
// Server API latency: how long from an HTTP `POST /api/v1/messages` to node A until the
// recipient's socket on node B gets the `message`, on two chat-server nodes over one Redis.
// A measurement for docs/api.md, not a test: it asserts nothing about the times.
//
//   cargo build --release -p chat-server          # CARGO_INCREMENTAL=0 on small machines
//   npm --prefix e2e ci --no-audit --no-fund       # socket.io-client, once
//   node bench/api-latency.mjs [--count 500] [--warmup 20] [--sender user|system] [--json]
//
// What it does: starts a throwaway redis-server (from the PATH, or REDIS_SERVER_BIN) and two
// chat-server nodes (CHAT_SERVER_BIN, default target/release/chat-server) on 127.0.0.1 with
// CHAT_API_TOKEN set and the per-user message rate raised (a user posting 500 messages back
// to back would otherwise be rate limited); connects the recipient to node B over WebSocket
// (acking each message, as a client does); then posts `--count` messages one after the other
// to node A with fetch (keep-alive) and, for each, times from just before the request until
// the socket's `message` event with that message's body. `--warmup` messages go first and
// are not counted. `--sender user` posts `from` a user, `--sender system` omits it (sender
// `@system`). Prints p50/p90/p99/max of send → delivery, and of the HTTP answer (201) alone.
//
// Everything runs on one machine: the client, both nodes and Redis share its cores, so the
// figures include that contention. Loopback only.

import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  startServer, startRedis, connect, closeAll, as, uid, withDeadline, HIGH_LIMITS,
} from '../e2e/test/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const COUNT = Number(opt('count', '500'));
const WARMUP = Number(opt('warmup', '20'));
const SENDER = opt('sender', 'user');
const JSON_OUT = args.includes('--json');
const BIN = process.env.CHAT_SERVER_BIN ?? path.join(root, 'target', 'release', 'chat-server');
if (!['user', 'system'].includes(SENDER) || !(COUNT > 0) || !(WARMUP >= 0)) {
  console.error('usage: node bench/api-latency.mjs [--count N] [--warmup N] [--sender user|system] [--json]');
  process.exit(2);
}

const TOKEN = `bench-${randomBytes(16).toString('hex')}`;

/** The nearest-rank percentile `p` (0–100) of sorted `xs`. */
function percentile(xs, p) {
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))];
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(percentile(s, 50)), p90: r(percentile(s, 90)), p99: r(percentile(s, 99)), max: r(s.at(-1)) };
}

async function main() {
  const redis = await startRedis();
  const env = {
    ...HIGH_LIMITS,
    CHAT_REDIS_URL: redis.url,
    CHAT_REDIS_PREFIX: `bench${randomBytes(4).toString('hex')}:`,
    CHAT_API_TOKEN: TOKEN,
  };
  const nodes = [];
  try {
    // Started one after the other: node B is up when node A's first message is routed.
    nodes.push(await startServer(env, { bin: BIN }));
    nodes.push(await startServer(env, { bin: BIN }));
    const [A, B] = nodes;
    const alice = uid('alice');
    const bob = uid('bob');
    const socket = await connect(B.url, as(bob), { transports: ['websocket'] });

    // One waiter at a time, keyed by body: the message event may come before the HTTP answer.
    let waiting = null;
    socket.on('message', (m, ack) => {
      ack?.();
      if (waiting && m.body === waiting.body) waiting.resolve(performance.now());
    });

    const deliveries = [];
    const answers = [];
    for (let i = 0; i < WARMUP + COUNT; i++) {
      const body = `lat-${i}-${randomBytes(4).toString('hex')}`;
      const delivered = new Promise((resolve) => {
        waiting = { body, resolve };
      });
      const payload = SENDER === 'user' ? { from: alice, to: bob, body } : { to: bob, body };
      const t0 = performance.now();
      const res = await fetch(`${A.url}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      });
      const t1 = performance.now();
      const text = await res.text();
      if (res.status !== 201) throw new Error(`POST #${i}: ${res.status} ${text}`);
      const t2 = await withDeadline(delivered, 10_000, `delivery of message #${i}`);
      if (i >= WARMUP) {
        answers.push(t1 - t0);
        deliveries.push(t2 - t0);
      }
    }
    const result = {
      sender: SENDER,
      count: COUNT,
      warmup: WARMUP,
      bin: BIN,
      deliveryMs: summary(deliveries),
      httpAnswerMs: summary(answers),
    };
    if (JSON_OUT) {
      console.log(JSON.stringify(result));
    } else {
      const row = (name, s) => `| ${name} | ${s.n} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} |`;
      console.log(`sender: ${SENDER}, ${COUNT} sequential POSTs to node A (after ${WARMUP} warm-up), recipient on node B`);
      console.log('| ms | n | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|');
      console.log(row('POST → message on node B', result.deliveryMs));
      console.log(row('POST → 201', result.httpAnswerMs));
    }
  } finally {
    closeAll();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
