// The page across a restart of its chat-server in cluster mode: the data lives in Redis, the
// server comes back on the same port, and the pages reconnect and catch up by themselves.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import {
  bubble,
  freePort,
  launchBrowser,
  openConversation,
  screenshot,
  send,
  signIn,
  startDirect,
  startRedis,
  startServer,
  waitConnected,
} from './helpers.mjs';

let redis;
let browser;
let serverEnv;

before(async () => {
  redis = await startRedis();
  serverEnv = {
    CHAT_REDIS_URL: redis.url,
    CHAT_REDIS_PREFIX: `web-${randomBytes(4).toString('hex')}:`,
    // The page reconnects to its own origin, so the restarted server needs the same port.
    CHAT_LISTEN: `127.0.0.1:${await freePort()}`,
    // Keeps the stop short if a client lingers; the pages leave on `drain` anyway.
    CHAT_DRAIN_TIMEOUT: '2s',
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await redis?.stop();
});

/** The bodies of the message bubbles on `page`, top to bottom. */
const bodies = (page) => page.locator('.message-rows .msg-body').allTextContents();

/** Asserts that `page` shows exactly `texts`, in this order, each in one bubble. */
async function assertShowsOnce(page, texts) {
  assert.deepEqual(await bodies(page), texts);
  for (const text of texts) assert.equal(await bubble(page, text).count(), 1, `bubbles with "${text}"`);
}

/**
 * Waits for `page` to be connected again; on a time-out the error says what the page showed and
 * what the server logged last.
 */
async function waitReconnected(page, server, timeout = 30_000) {
  try {
    await waitConnected(page, timeout);
  } catch (err) {
    const shown = await page
      .evaluate(() => {
        const pill = document.querySelector('[data-testid="connection"]');
        const banner = document.querySelector('[data-testid="connection-banner"]');
        return `status ${pill?.getAttribute('data-status')}, banner "${banner?.textContent ?? ''}"`;
      })
      .catch((e) => `page unreadable: ${e.message}`);
    throw new Error(`${err.message}\npage: ${shown}\nserver log (tail):\n${server.log.slice(-30).join('')}`);
  }
}

describe('server restart', () => {
  test('the server restarts; the pages reconnect, send the outbox and sync, each message once', async () => {
    let server = await startServer(serverEnv);
    let alice, bob, phone;
    try {
      alice = await signIn(browser, server, 'alice');
      bob = await signIn(browser, server, 'bob');
      await startDirect(alice.page, 'bob');
      await send(alice.page, 'Did the deploy go out?');
      await openConversation(bob.page, 'alice');
      await bubble(bob.page, 'Did the deploy go out?').waitFor();
      await send(bob.page, 'Restarting the server now');
      await bubble(alice.page, 'Restarting the server now').waitFor();

      await server.stop();
      for (const p of [alice, bob]) {
        await p.page.locator('[data-testid="connection"][data-status="reconnecting"]').waitFor();
      }

      // Alice writes while the server is down: the messages wait in her outbox.
      const queued = ['Still there?', 'Ping me when it is back'];
      for (const text of queued) {
        await send(alice.page, text);
        await bubble(alice.page, text).and(alice.page.locator('[data-status="sending"]')).waitFor();
      }
      await alice.page.getByTestId('connection-banner').filter({ hasText: '2 messages will be sent' }).waitFor();

      // Bob stays away after the restart until Alice's other device has written too, so that
      // everything since the stop reaches his page through `sync` alone.
      await bob.context.setOffline(true);
      server = await startServer(serverEnv);

      // Alice's page finds the server again on its own (back-off, no reload) and sends the outbox.
      await waitReconnected(alice.page, server);
      for (const text of queued) {
        await bubble(alice.page, text).and(alice.page.locator('[data-status="sent"]')).waitFor();
      }

      phone = io(server.url, { auth: { user: 'alice' }, transports: ['websocket'], reconnection: false });
      await new Promise((resolve, reject) => {
        phone.once('ready', resolve);
        phone.once('connect_error', reject);
      });
      const fromPhone = 'Sent from my phone while you were away';
      const res = await phone.timeout(5000).emitWithAck('message:send', { to: 'bob', body: fromPhone, clientId: 'phone-1' });
      assert.equal(res.ok, true, JSON.stringify(res));
      // Alice's page shows her other device's message too.
      await bubble(alice.page, fromPhone).waitFor();
      assert.equal(await bob.page.getByTestId('connection').getAttribute('data-status'), 'reconnecting');

      await bob.context.setOffline(false);
      await waitReconnected(bob.page, server);
      await bubble(bob.page, fromPhone).waitFor();
      // Bob has the conversation open, so his page reads what it synced.
      await bubble(alice.page, queued[1]).and(alice.page.locator('[data-status="read"]')).waitFor();

      // And the restarted server carries live messages both ways.
      await send(bob.page, 'Back! Got all three');
      await bubble(alice.page, 'Back! Got all three').waitFor();
      await screenshot(bob.page, 'desktop-after-restart');

      const all = ['Did the deploy go out?', 'Restarting the server now', ...queued, fromPhone, 'Back! Got all three'];
      await assertShowsOnce(bob.page, all);
      await assertShowsOnce(alice.page, all);
      // The server stored each message once: the outbox was not sent twice.
      const history = await phone.timeout(5000).emitWithAck('history', { conversation: 'dm:alice:bob', limit: 100 });
      assert.equal(history.ok, true, JSON.stringify(history));
      assert.deepEqual(
        history.messages.map((m) => m.body),
        all,
      );
      for (const p of [alice, bob]) assert.deepEqual(p.errors, []);
    } finally {
      phone?.disconnect();
      await Promise.all([alice, bob].filter(Boolean).map((p) => p.context.close()));
      await server.stop();
    }
  });
});
