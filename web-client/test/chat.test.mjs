// Browser tests of the chat page against the real chat-server (embedded mode).
// Each test uses its own user names, so they share one server and one browser.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import {
  DESKTOP,
  PHONE,
  bubble,
  launchBrowser,
  openConversation,
  screenshot,
  send,
  signIn,
  startDirect,
  startServer,
  until,
  waitConnected,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  // Fast senders in the history test; the rate limit has its own test file.
  server = await startServer({
    CHAT_RATE_MESSAGES: '1000',
    CHAT_RATE_MESSAGES_BURST: '1000',
    CHAT_RATE_EVENTS: '1000',
    CHAT_RATE_EVENTS_BURST: '1000',
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Closes every context given, even when the test failed. */
async function closeAll(...people) {
  await Promise.all(people.filter(Boolean).map((p) => p.context.close()));
}

const conversationItem = (page, id) => page.locator(`.conv-item[data-conversation="${id}"]`);

describe('chat page', () => {
  test('two people chat by DM with delivery, read, typing and presence', async () => {
    let alice, bob;
    try {
      alice = await signIn(browser, server, 'alice');
      bob = await signIn(browser, server, 'bob');
      await alice.page.locator('[data-testid="connection"][data-transport="websocket"]').waitFor();

      await startDirect(alice.page, 'bob');
      await send(alice.page, 'Hi Bob! Are we still on for lunch?');
      const sent = bubble(alice.page, 'Hi Bob! Are we still on for lunch?');

      // Bob has not opened the conversation: it is unread, but his page acked the event.
      await conversationItem(bob.page, 'dm:alice:bob').locator('[data-testid="unread"]', { hasText: '1' }).waitFor();
      await sent.and(alice.page.locator('[data-status="delivered"]')).waitFor();

      await openConversation(bob.page, 'alice');
      await bubble(bob.page, 'Hi Bob! Are we still on for lunch?').waitFor();
      await sent.and(alice.page.locator('[data-status="read"]')).waitFor();
      await conversationItem(bob.page, 'dm:alice:bob').locator('[data-testid="unread"]').waitFor({ state: 'detached' });

      // Typing shows while Bob types and goes away when his message arrives.
      await bob.page.locator('#composer-input').pressSequentially('Yes! 12:30 at the usual place?', { delay: 15 });
      await alice.page.locator('[data-testid="typing"]', { hasText: 'bob is typing…' }).waitFor();
      await bob.page.locator('#composer-input').press('Enter');
      await bubble(alice.page, 'Yes! 12:30 at the usual place?').waitFor();
      await alice.page.locator('[data-testid="typing"]', { hasText: 'typing' }).waitFor({ state: 'detached' });
      await bubble(bob.page, 'Yes! 12:30 at the usual place?').and(bob.page.locator('[data-status="read"]')).waitFor();

      await send(alice.page, 'Perfect, see you there 🍜');
      await bubble(bob.page, 'Perfect, see you there 🍜').waitFor();
      await alice.page.locator('[data-testid="presence"]', { hasText: 'online' }).waitFor();
      await screenshot(alice.page, 'desktop-dm');

      // Each message appears once on each side.
      for (const page of [alice.page, bob.page]) {
        assert.equal(await page.locator('.message-rows .msg').count(), 3);
      }

      await bob.context.close();
      bob = null;
      await alice.page.locator('[data-testid="presence"]', { hasText: /last seen|offline/ }).waitFor();
      assert.deepEqual(alice.errors, []);
    } finally {
      await closeAll(alice, bob);
    }
  });

  test('a group: create with a member, join by id over long-polling, members list', async () => {
    let carol, dave, erin;
    try {
      carol = await signIn(browser, server, 'carol');
      dave = await signIn(browser, server, 'dave');
      erin = await signIn(browser, server, 'erin', { polling: true, viewport: PHONE, mobile: true });

      await carol.page.getByRole('button', { name: 'New chat' }).first().click();
      await carol.page.getByRole('tab', { name: 'New group' }).click();
      await carol.page.getByLabel('Group name').fill('Project Aurora');
      await carol.page.getByLabel('Members').fill('dave');
      await carol.page.getByRole('button', { name: 'Create group' }).click();
      await carol.page.locator('[data-testid="chat-title"]', { hasText: 'Project Aurora' }).waitFor();
      const groupId = (await carol.page.locator('[data-testid="group-id"]').first().textContent()).trim();
      assert.match(groupId, /^\S+$/);

      // Dave was added: the group shows up for him without a reload.
      await openConversation(dave.page, 'Project Aurora');

      await erin.page.getByRole('button', { name: 'New chat' }).first().click();
      await erin.page.getByRole('tab', { name: 'Find groups' }).click();
      await erin.page.getByLabel('Group id').fill(groupId);
      await erin.page.getByRole('button', { name: 'Join group' }).click();
      await erin.page.locator('[data-testid="chat-title"]', { hasText: 'Project Aurora' }).waitFor();

      await send(carol.page, 'Kick-off notes are in the doc. Questions?');
      await bubble(dave.page, 'Kick-off notes are in the doc. Questions?').waitFor();
      await bubble(erin.page, 'Kick-off notes are in the doc. Questions?').waitFor();
      await send(erin.page, 'Joined late, reading now!');
      await bubble(carol.page, 'Joined late, reading now!').waitFor();
      await send(dave.page, 'Looks good to me 👍');
      await bubble(carol.page, 'Looks good to me 👍').waitFor();
      await bubble(erin.page, 'Looks good to me 👍').waitFor();
      // Carol's message was read by both other members.
      await bubble(carol.page, 'Kick-off notes are in the doc. Questions?')
        .and(carol.page.locator('[data-status="read"]'))
        .waitFor();

      await carol.page.getByRole('button', { name: 'Group info and members' }).click();
      const members = carol.page.locator('[data-testid="members"] .member-name');
      await until(async () => (await members.count()) === 3, { message: 'three members' });
      assert.deepEqual((await members.allTextContents()).map((t) => t.replace(' (you)', '')).sort(), [
        'carol',
        'dave',
        'erin',
      ]);
      await screenshot(carol.page, 'desktop-group');
      await screenshot(erin.page, 'phone-group');
      await erin.page.getByRole('button', { name: 'Group info and members' }).click();
      await erin.page.locator('[data-testid="members"] .member-name', { hasText: 'carol' }).waitFor();
      await screenshot(erin.page, 'phone-group-info');
      await erin.page.getByRole('button', { name: 'Close group info' }).click();

      // Erin stays on long-polling; the others upgraded to WebSocket.
      assert.equal(await erin.page.locator('[data-testid="connection"]').getAttribute('data-transport'), 'polling');
      await carol.page.locator('[data-testid="connection"][data-transport="websocket"]').waitFor();
      for (const p of [carol, dave, erin]) assert.deepEqual(p.errors, []);
    } finally {
      await closeAll(carol, dave, erin);
    }
  });

  test('a reload keeps the open conversation and the unsent outbox', async () => {
    let gina, hank;
    try {
      hank = await signIn(browser, server, 'hank');
      gina = await signIn(browser, server, 'gina', { polling: true });
      await startDirect(gina.page, 'hank');
      await send(gina.page, 'before the tunnel');
      await openConversation(hank.page, 'gina');
      await bubble(hank.page, 'before the tunnel').waitFor();

      // Cut Gina off from Socket.IO (the page itself still loads), then reload.
      await gina.page.route('**/socket.io/**', (route) => route.abort());
      await gina.page.reload();
      await gina.page.locator('[data-testid="connection-banner"]').waitFor();
      await gina.page.locator('[data-testid="chat-title"]', { hasText: 'hank' }).waitFor();
      // The last messages come from the page's cache while the server is out of reach.
      await bubble(gina.page, 'before the tunnel').waitFor();
      await send(gina.page, 'sent from the tunnel');
      await bubble(gina.page, 'sent from the tunnel').and(gina.page.locator('[data-status="sending"]')).waitFor();

      await gina.page.reload();
      await bubble(gina.page, 'sent from the tunnel').and(gina.page.locator('[data-status="sending"]')).waitFor();
      await gina.page.locator('[data-testid="connection-banner"]', { hasText: '1 message will be sent' }).waitFor();
      await screenshot(gina.page, 'desktop-offline-outbox');

      // "Retry now" tries at once (and fails while still cut off); the network coming back
      // (the browser's `online` event) reconnects without waiting for the back-off.
      await gina.page.getByRole('button', { name: 'Retry now' }).click();
      await gina.page.locator('[data-testid="connection-banner"]').waitFor();
      await gina.page.unroute('**/socket.io/**');
      await gina.page.evaluate(() => window.dispatchEvent(new Event('online')));
      await waitConnected(gina.page);
      await bubble(hank.page, 'sent from the tunnel').waitFor();
      await bubble(gina.page, 'sent from the tunnel').and(gina.page.locator('[data-status="read"]')).waitFor();
      await bubble(gina.page, 'before the tunnel').waitFor();

      // Once on each side, in order, and the outbox is empty after another reload.
      const bodies = (page) => page.locator('.message-rows .msg-body').allTextContents();
      assert.deepEqual(await bodies(hank.page), ['before the tunnel', 'sent from the tunnel']);
      assert.deepEqual(await bodies(gina.page), ['before the tunnel', 'sent from the tunnel']);
      await gina.page.reload();
      await waitConnected(gina.page);
      await bubble(gina.page, 'sent from the tunnel').and(gina.page.locator('[data-status="read"]')).waitFor();
      assert.deepEqual(await bodies(gina.page), ['before the tunnel', 'sent from the tunnel']);
      assert.deepEqual(gina.errors, []);
    } finally {
      await closeAll(gina, hank);
    }
  });

  test('after going offline, sync fills the gap and the outbox is sent, each message once', async () => {
    let olga, pete;
    try {
      olga = await signIn(browser, server, 'olga');
      pete = await signIn(browser, server, 'pete');
      await startDirect(olga.page, 'pete');
      await send(olga.page, 'are you there?');
      await openConversation(pete.page, 'olga');
      await bubble(pete.page, 'are you there?').waitFor();

      await pete.context.setOffline(true);
      await pete.page.getByTestId('connection-banner').waitFor();
      await olga.page.locator('[data-testid="presence"]', { hasText: /last seen|offline/ }).waitFor();
      const missed = ['first while you were away', 'second while you were away', 'third while you were away'];
      for (const text of missed) {
        await send(olga.page, text);
        await bubble(olga.page, text).and(olga.page.locator('[data-status="sent"]')).waitFor();
      }
      await send(pete.page, 'typed on the train');
      await bubble(pete.page, 'typed on the train').and(pete.page.locator('[data-status="sending"]')).waitFor();

      await pete.context.setOffline(false);
      await waitConnected(pete.page);
      const all = ['are you there?', ...missed, 'typed on the train'];
      await bubble(olga.page, 'typed on the train').waitFor();
      await bubble(pete.page, 'typed on the train').and(pete.page.locator('[data-status="read"]')).waitFor();
      await bubble(olga.page, missed[2]).and(olga.page.locator('[data-status="read"]')).waitFor();
      const bodies = (page) => page.locator('.message-rows .msg-body').allTextContents();
      assert.deepEqual(await bodies(pete.page), all);
      assert.deepEqual(await bodies(olga.page), all);
      for (const p of [olga, pete]) assert.deepEqual(p.errors, []);
    } finally {
      await closeAll(olga, pete);
    }
  });

  test('older messages load when scrolling to the top (phone width)', async () => {
    const total = 130;
    const ivan = io(server.url, { auth: { user: 'ivan' }, transports: ['websocket'] });
    let judy;
    try {
      await new Promise((resolve, reject) => {
        ivan.once('ready', resolve);
        ivan.once('connect_error', reject);
      });
      for (let i = 1; i <= total; i++) {
        const res = await ivan.emitWithAck('message:send', { to: 'judy', body: `note ${i}`, clientId: `t-${i}` });
        assert.equal(res.ok, true, JSON.stringify(res));
      }

      judy = await signIn(browser, server, 'judy', { viewport: PHONE, mobile: true });
      await conversationItem(judy.page, 'dm:ivan:judy').locator('[data-testid="unread"]', { hasText: '99+' }).waitFor();
      await screenshot(judy.page, 'phone-list');
      await openConversation(judy.page, 'ivan');
      await bubble(judy.page, `note ${total}`).waitFor();
      assert.equal(await bubble(judy.page, 'note 1').count(), 0);

      const rows = judy.page.locator('.message-rows .msg');
      await until(
        async () => {
          await judy.page.locator('.messages').evaluate((el) => el.scrollTo(0, 0));
          return (await rows.count()) === total;
        },
        { timeout: 15_000, interval: 200, message: `all ${total} messages after scrolling up` },
      );
      await judy.page.locator('.history-edge', { hasText: 'Beginning of the conversation' }).waitFor();
      const bodies = await judy.page.locator('.message-rows .msg-body').allTextContents();
      assert.deepEqual(
        bodies,
        Array.from({ length: total }, (_, i) => `note ${i + 1}`),
      );

      await judy.page.locator('.messages').evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await send(judy.page, 'That is a lot of notes, Ivan 😅');
      await bubble(judy.page, 'That is a lot of notes, Ivan 😅').and(judy.page.locator('[data-status="sent"], [data-status="delivered"], [data-status="read"]')).waitFor();
      await screenshot(judy.page, 'phone-chat');
      assert.deepEqual(judy.errors, []);
    } finally {
      ivan.disconnect();
      await closeAll(judy);
    }
  });

  test('the sign-in page at phone and desktop widths', async () => {
    for (const [name, viewport, mobile] of [
      ['phone-signin', PHONE, true],
      ['desktop-signin', DESKTOP, false],
    ]) {
      const context = await browser.newContext({ viewport, isMobile: mobile, deviceScaleFactor: mobile ? 2 : 1 });
      try {
        const page = await context.newPage();
        await page.goto(server.url);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('alert').waitFor();
        await screenshot(page, name);
      } finally {
        await context.close();
      }
    }
  });
});
