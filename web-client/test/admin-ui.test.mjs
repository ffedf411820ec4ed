// The Socket.IO Admin UI against a cluster of two chat-servers sharing one Redis: the real
// @socket.io/admin-ui page in headless Chromium, and its protocol with socket.io-client.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import { DESKTOP, launchBrowser, screenshot, startRedis, startServer, until, webDir } from './helpers.mjs';

const ADMIN = { CHAT_ADMIN_UI_USER: 'admin', CHAT_ADMIN_UI_PASSWORD: 'correct horse battery' };

let redis;
let nodes = [];
let chatters = [];

/** A chat client of `user` on `server`, connected. */
async function chatter(server, user, transports) {
  const socket = io(server.url, { auth: { user }, transports, reconnection: false });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  chatters.push(socket);
  return socket;
}

/** Connects to `/admin` on `server` with `auth`; resolves to the socket or the refusal. */
function admin(server, auth, events = []) {
  const socket = io(`${server.url}/admin`, { auth, reconnection: false, transports: ['websocket'] });
  const seen = {};
  for (const name of events) socket.on(name, (...args) => (seen[name] ??= []).push(args));
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ socket, seen }));
    socket.once('connect_error', (err) => {
      socket.close();
      resolve({ error: err.message });
    });
  });
}

before(async () => {
  redis = await startRedis();
  const prefix = `admin-${randomBytes(4).toString('hex')}:`;
  for (const id of ['node-a', 'node-b']) {
    nodes.push(await startServer({ ...ADMIN, CHAT_REDIS_URL: redis.url, CHAT_REDIS_PREFIX: prefix, CHAT_NODE_ID: id }));
  }
  // The nodes learn of each other at their heartbeats: until then a node asks only itself.
  for (const node of nodes) {
    await until(
      async () => /^chat_cluster_live_nodes 2$/m.test(await (await fetch(`${node.url}/metrics`)).text()),
      { message: `${node.url} to see both nodes` },
    );
  }
  await chatter(nodes[0], 'alice', ['websocket']);
  await chatter(nodes[1], 'bob', ['polling']);
});

after(async () => {
  for (const c of chatters) c.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

describe('admin ui protocol', () => {
  // Off by default: no /admin namespace and no page.
  test('a server without CHAT_ADMIN_UI_* has no admin ui', async () => {
    const plain = await startServer();
    try {
      const res = await admin(plain, { username: 'admin', password: ADMIN.CHAT_ADMIN_UI_PASSWORD });
      assert.equal(res.error, 'Invalid namespace');
      assert.equal((await fetch(`${plain.url}/admin/`)).status, 404);
    } finally {
      await plain.stop();
    }
  });

  // A wrong password (or none) is refused with the message the UI knows.
  test('bad credentials are refused', async () => {
    assert.equal((await admin(nodes[0], { username: 'admin', password: 'wrong' })).error, 'invalid credentials');
    assert.equal((await admin(nodes[0], {})).error, 'invalid credentials');
    assert.equal((await admin(nodes[0], { sessionId: 'made-up' })).error, 'invalid credentials');
  });

  // Logged in on node A, the admin sees the chat sockets of both nodes, and stats of both.
  test('all_sockets and server_stats span the cluster', async () => {
    const events = ['config', 'session', 'all_sockets', 'server_stats', 'socket_connected'];
    const { socket, seen, error } = await admin(nodes[0], { username: 'admin', password: ADMIN.CHAT_ADMIN_UI_PASSWORD }, events);
    assert.equal(error, undefined);
    try {
      const [[config]] = await until(() => seen.config, { message: 'config' });
      assert.ok(config.supportedFeatures.includes('DISCONNECT'));
      assert.ok(!config.supportedFeatures.includes('JOIN'), 'join would bypass the chat: not offered');
      const [[sessionId]] = await until(() => seen.session, { message: 'session' });
      const [[sockets]] = await until(() => seen.all_sockets, { message: 'all_sockets' });
      const chat = sockets.filter((s) => s.nsp === '/');
      assert.deepEqual(chat.map((s) => s.data.user).sort(), ['alice', 'bob']);
      for (const c of chatters) {
        const s = chat.find((s) => s.id === c.id);
        assert.ok(s, `socket ${c.id} listed`);
        assert.ok(s.rooms.includes(`user:${s.data.user}`), `rooms of ${s.data.user}: ${s.rooms}`);
      }
      const servers = await until(
        () => {
          const ids = new Set((seen.server_stats ?? []).map(([s]) => s.serverId));
          return ids.has('node-a') && ids.has('node-b') && ids;
        },
        { timeout: 10_000, message: 'server_stats of both nodes' },
      );
      assert.equal(servers.size, 2);
      // A socket that connects on node B later is announced to the admin on node A.
      const carol = await chatter(nodes[1], 'carol', ['websocket']);
      const [[announced]] = await until(
        () => seen.socket_connected?.filter(([s]) => s.id === carol.id).length && seen.socket_connected.filter(([s]) => s.id === carol.id),
        { timeout: 10_000, message: "carol's socket_connected" },
      );
      assert.equal(announced.data.user, 'carol');
      assert.equal(announced.data.node, 'node-b');
      // The session id logs in again without the password.
      const again = await admin(nodes[0], { sessionId });
      assert.equal(again.error, undefined);
      again.socket.close();
      // `_disconnect` reaches a socket on the other node.
      const gone = new Promise((resolve) => carol.once('disconnect', resolve));
      socket.emit('_disconnect', '/', false, carol.id);
      assert.equal(await gone, 'io server disconnect');
    } finally {
      socket.close();
    }
  });
});

describe('admin ui page', () => {
  // The real UI in Chromium: log in on node A, find alice (node A) and bob (node B).
  test('shows the sockets of both nodes', async () => {
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (err) => errors.push(err));
      // The page asks for web fonts and icons on public CDNs; with no network they fail fast.
      await page.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
      await page.goto(`${nodes[0].url}/admin/`);
      await page.getByLabel('Server URL').fill(nodes[0].url);
      await page.getByLabel('Username').fill('admin');
      await page.getByLabel('Password').fill(ADMIN.CHAT_ADMIN_UI_PASSWORD);
      await page.getByRole('button', { name: 'Connect' }).click();
      await page.getByRole('dialog').waitFor({ state: 'hidden' });
      await page.goto(`${nodes[0].url}/admin/#/sockets`);
      for (const c of chatters.filter((c) => c.connected)) {
        await page.getByText(c.id).first().waitFor({ timeout: 10_000 });
      }
      await page.goto(`${nodes[0].url}/admin/#/servers`);
      await page.getByText('node-a').first().waitFor();
      await page.getByText('node-b').first().waitFor();
      await page.goto(`${nodes[0].url}/admin/#/sockets`);
      await page.getByText(chatters[1].id).first().waitFor();
      // The UI fades pages in: finished transitions, not a frame in the middle of one.
      const shot = await screenshot(page, 'admin-ui', { animations: 'disabled' });
      // SAVE_DOCS_SCREENSHOT=1 refreshes the one in docs/; a test run leaves the tree alone.
      if (process.env.SAVE_DOCS_SCREENSHOT) copyFileSync(shot, join(webDir, '..', 'docs', 'admin-ui.png'));
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
