// The page against a chat-server that requires tokens and has tight rate limits, and what it
// shows when the server shuts down.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import {
  bubble,
  launchBrowser,
  openConversation,
  send,
  startDirect,
  startServer,
  until,
  waitConnected,
} from './helpers.mjs';

const SECRET = 'web-client-test-secret';

/** An HS256 JWT for `sub`, expiring `ttl` seconds from now (negative: already expired). */
function token(sub, ttl = 3600) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = part({ alg: 'HS256', typ: 'JWT' });
  const body = part({ sub, exp: Math.floor(Date.now() / 1000) + ttl });
  const signature = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/** A stand-in for chat-registry on a loopback port: every pick answers `nodeUrl`. */
async function startFakeRegistry(nodeUrl) {
  const registry = { picks: 0, url: '', close: () => new Promise((r) => http.close(r)) };
  const http = createServer((req, res) => {
    const headers = { 'content-type': 'application/json', 'access-control-allow-origin': '*' };
    if (req.method === 'GET' && req.url === '/api/v1/servers/pick') {
      registry.picks++;
      res.writeHead(200, headers).end(JSON.stringify({ url: nodeUrl, nodeId: 'node-a' }));
    } else {
      res.writeHead(404, headers).end(JSON.stringify({ error: { code: 'not_found', message: 'no route' } }));
    }
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  registry.url = `http://127.0.0.1:${http.address().port}`;
  return registry;
}

let server;
let browser;

before(async () => {
  server = await startServer({
    CHAT_AUTH_SECRET: SECRET,
    CHAT_RATE_MESSAGES: '1',
    CHAT_RATE_MESSAGES_BURST: '2',
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signInWithToken(jwt, query = '') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(server.url + '/' + query);
  await page.getByLabel('Access token (JWT)').fill(jwt);
  await page.getByRole('button', { name: 'Sign in' }).click();
  return { context, page, errors };
}

describe('server modes', () => {
  test('a token signs in as its subject; an expired or forged one is refused with a clear message', async () => {
    const expired = await signInWithToken(token('kim', -3600));
    try {
      await expired.page.getByRole('alert').filter({ hasText: /Sign-in refused/ }).waitFor();
      // Back on the form, with the token kept for editing.
      assert.notEqual(await expired.page.getByLabel('Access token (JWT)').inputValue(), '');
    } finally {
      await expired.context.close();
    }

    const forged = await signInWithToken(token('kim').replace(/\.[^.]+$/, '.AAAA'));
    try {
      await forged.page.getByRole('alert').filter({ hasText: /Sign-in refused/ }).waitFor();
    } finally {
      await forged.context.close();
    }

    const kim = await signInWithToken(token('kim'));
    try {
      await waitConnected(kim.page);
      assert.equal((await kim.page.getByTestId('me').textContent()).trim(), 'kim');
      assert.deepEqual(kim.errors, []);
    } finally {
      await kim.context.close();
    }
  });

  test('rate-limited messages are explained and retried in order, each delivered once', async () => {
    const lee = await signInWithToken(token('lee'));
    const max = await signInWithToken(token('max'));
    try {
      await waitConnected(lee.page);
      await waitConnected(max.page);
      await startDirect(lee.page, 'max');
      const texts = ['one', 'two', 'three', 'four'];
      for (const text of texts) await send(lee.page, text);
      await lee.page.getByRole('status').filter({ hasText: 'sending too fast' }).waitFor();

      await openConversation(max.page, 'lee');
      await bubble(max.page, 'four').waitFor({ timeout: 15_000 });
      assert.deepEqual(await max.page.locator('.message-rows .msg-body').allTextContents(), texts);
      await bubble(lee.page, 'four').and(lee.page.locator('[data-status="read"]')).waitFor();
      assert.deepEqual(await lee.page.locator('.message-rows .msg-body').allTextContents(), texts);
      assert.deepEqual(lee.errors, []);
    } finally {
      await lee.context.close();
      await max.context.close();
    }
  });

  test('a refused message says why and can be deleted; an over-long one is stopped before sending', async () => {
    const quinn = io(server.url, { auth: { token: token('quinn') }, transports: ['websocket'] });
    const ready = new Promise((resolve, reject) => {
      quinn.once('ready', resolve);
      quinn.once('connect_error', reject);
    });
    const rita = await signInWithToken(token('rita'));
    try {
      await ready;
      assert.deepEqual(await quinn.timeout(5000).emitWithAck('block', { user: 'rita' }), { ok: true });
      await waitConnected(rita.page);
      await startDirect(rita.page, 'quinn');
      await send(rita.page, 'hello?');
      const refused = bubble(rita.page, 'hello?').and(rita.page.locator('[data-status="failed"]'));
      await refused.waitFor();
      await rita.page.getByRole('alert').filter({ hasText: 'Message not sent: Not allowed' }).waitFor();
      await refused.getByRole('button', { name: 'Delete' }).click();
      await refused.waitFor({ state: 'detached' });

      await rita.page.locator('#composer-input').fill('x'.repeat(4001));
      await rita.page.getByText('4001/4000').waitFor();
      assert.equal(await rita.page.getByRole('button', { name: 'Send' }).isDisabled(), true);
      assert.deepEqual(rita.errors, []);
    } finally {
      quinn.disconnect();
      await rita.context.close();
    }
  });

  test('with a registry, the page connects to the node it picks and asks again when the node drains', async () => {
    const registry = await startFakeRegistry(server.url);
    const ned = await signInWithToken(token('ned'), `?registry=${encodeURIComponent(registry.url)}`);
    try {
      await waitConnected(ned.page);
      assert.equal(registry.picks, 1);
      await server.stop();
      await ned.page.getByTestId('connection-banner').waitFor();
      await ned.page.locator('[data-testid="connection"][data-status="reconnecting"]').waitFor();
      // Every reconnection goes through the registry again, never straight back to the old node.
      await until(() => registry.picks >= 2, { message: 'a second pick after the drain' });
      assert.deepEqual(ned.errors, []);
    } finally {
      await ned.context.close();
      await registry.close();
    }
  });
});
