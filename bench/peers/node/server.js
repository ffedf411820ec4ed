// Benchmark peer: Node.js socket.io 4 + @socket.io/redis-adapter, either the classic adapter
// (Redis PUBLISH/SUBSCRIBE, the default) or the sharded one (`ADAPTER=sharded`:
// createShardedAdapter, Redis 7 SPUBLISH/SSUBSCRIBE, default subscriptionMode "dynamic": one
// channel per public room, so a node only receives what its rooms need).
//
// Implements the benchmarked subset of docs/protocol.md, nothing more:
//   - dev auth: {user} in the handshake auth object; the socket joins room `user:<id>`; `ready`
//   - message:send {to|group, body, clientId?} -> `message` to `user:<to>` (+ the sender's other
//     devices) or to `group:<id>`; ack {ok: true, message}
//   - group:create {name} -> joins `group:<id>`; group:join {group} -> joins `group:<id>`
// No persistence, no membership checks, no rate limits, no receipts: it is the ceiling of a
// minimal socket.io cluster, not a feature-equal chat server.
//
// Tuned as the socket.io docs advise for performance: no per-message deflate, no HTTP
// compression, bufferutil + utf-8-validate installed for `ws`, and the reference to the
// initial HTTP request dropped after the handshake.
//
// Environment: PORT (default 3000), HOST (default 127.0.0.1), REDIS_URL (default
// redis://127.0.0.1:6379), NODE_ID, ADAPTER (classic | sharded; default classic).
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');
const { createAdapter, createShardedAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const NODE_ID = process.env.NODE_ID || crypto.randomBytes(4).toString('hex');
const ADAPTER = process.env.ADAPTER || 'classic';
const ADAPTERS = { classic: createAdapter, sharded: createShardedAdapter };
const USER_RE = /^[A-Za-z0-9_.-]{1,64}$/;

let seq = 0;

function fail(code, message) {
  return { ok: false, error: { code, message } };
}

function dmId(a, b) {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

async function main() {
  if (!Object.hasOwn(ADAPTERS, ADAPTER)) {
    throw new Error(`unknown ADAPTER ${ADAPTER}: classic or sharded`);
  }
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  pub.on('error', (e) => console.error('redis pub:', e.message));
  sub.on('error', (e) => console.error('redis sub:', e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    // As the adapter's README shows for both: a publishing client and a duplicate for
    // subscriptions, both connected before the server starts.
    adapter: ADAPTERS[ADAPTER](pub, sub),
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    cors: { origin: true },
  });

  // Drop the reference to the handshake request (socket.io docs: "Discard the initial HTTP
  // request"), which otherwise keeps it alive for the whole session.
  io.engine.on('connection', (rawSocket) => {
    rawSocket.request = null;
  });

  io.use((socket, next) => {
    const user = socket.handshake.auth && socket.handshake.auth.user;
    if (typeof user !== 'string' || !USER_RE.test(user)) {
      return next(new Error('unauthorized: invalid user id'));
    }
    socket.data.user = user;
    next();
  });

  io.on('connection', (socket) => {
    const user = socket.data.user;
    socket.join(`user:${user}`);

    socket.on('message:send', (req, ack) => {
      if (typeof ack !== 'function') return;
      if (!req || typeof req.body !== 'string' || req.body.length === 0) {
        return ack(fail('bad_request', 'body is required'));
      }
      if (req.body.length > 4000) return ack(fail('too_large', 'body is too long'));
      const now = Date.now();
      const message = {
        id: `${now}-${seq++}`,
        conversation: '',
        from: user,
        body: req.body,
        ts: now,
      };
      if (typeof req.clientId === 'string') message.clientId = req.clientId;
      if (typeof req.to === 'string' && req.group === undefined) {
        if (!USER_RE.test(req.to)) return ack(fail('bad_request', 'bad user id'));
        if (req.to === user) return ack(fail('bad_request', 'cannot message yourself'));
        message.conversation = dmId(user, req.to);
        // The recipient's devices and the sender's other devices.
        socket.to([`user:${req.to}`, `user:${user}`]).emit('message', message);
      } else if (typeof req.group === 'string' && req.to === undefined) {
        message.conversation = `group:${req.group}`;
        socket.to(`group:${req.group}`).emit('message', message);
      } else {
        return ack(fail('bad_request', 'exactly one of to or group'));
      }
      ack({ ok: true, message, duplicate: false });
    });

    socket.on('group:create', (req, ack) => {
      if (typeof ack !== 'function') return;
      const name = req && typeof req.name === 'string' ? req.name : '';
      if (name.length === 0 || name.length > 100) return ack(fail('bad_request', 'bad name'));
      const id = 'G' + crypto.randomBytes(6).toString('hex');
      socket.join(`group:${id}`);
      ack({ ok: true, group: { id, name, owner: user, members: [user] } });
    });

    socket.on('group:join', (req, ack) => {
      if (typeof ack !== 'function') return;
      const id = req && req.group;
      if (typeof id !== 'string' || id.length === 0) return ack(fail('bad_request', 'bad group'));
      socket.join(`group:${id}`);
      ack({ ok: true, group: { id } });
    });

    socket.emit('ready', { user, node: NODE_ID });
  });

  httpServer.listen(PORT, HOST, () => {
    console.error(`node peer ${NODE_ID} listening on ${HOST}:${PORT} (${ADAPTER} adapter)`);
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
