// Contacts and statuses in the page against the real chat-server: a request through the
// Contacts dialog, accepted on the other side; a status set in the picker and seen in the
// roster, the conversation list and the DM header; removal; the server's refusal shown inline;
// a device going idle; and, with CHAT_PRESENCE_VISIBILITY=contacts, no presence for strangers.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import {
  PHONE,
  bubble,
  launchBrowser,
  openConversation,
  screenshot,
  send,
  signIn,
  startDirect,
  startServer,
} from './helpers.mjs';

let server;
let contactsOnly;
let browser;

before(async () => {
  server = await startServer();
  contactsOnly = await startServer({ CHAT_PRESENCE_VISIBILITY: 'contacts' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await contactsOnly?.stop();
});

async function closeAll(...people) {
  await Promise.all(people.filter(Boolean).map((p) => p.context.close()));
}

/** A socket.io-client connection as `user`, once `ready`. */
async function connectAs(srv, user) {
  const socket = io(srv.url, { auth: { user }, transports: ['websocket'] });
  await new Promise((resolve, reject) => {
    socket.once('ready', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

/** Opens the Contacts dialog (its button's name grows with pending requests). */
async function openContacts(page) {
  await page.getByRole('button', { name: /^Contacts/ }).click();
  const dialog = page.getByRole('dialog', { name: 'Contacts' });
  await dialog.waitFor();
  return dialog;
}

async function closeDialog(page) {
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
}

async function addContact(dialog, user) {
  await dialog.getByLabel('Add a contact').fill(user);
  await dialog.getByRole('button', { name: 'Send contact request' }).click();
}

/** The dialog's row for `user`, optionally only while it has the given attributes. */
function row(page, user, attrs = {}) {
  const extra = Object.entries(attrs)
    .map(([k, v]) => `[data-${k}="${v}"]`)
    .join('');
  return page.locator(`.contact[data-contact="${user}"]${extra}`);
}

/** A screenshot once the page has painted its latest changes (a frame may lag behind the DOM). */
async function shoot(page, name) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await screenshot(page, name);
}

async function setStatus(page, status, text, shot) {
  await page.getByTestId('my-status').click();
  const dialog = page.getByRole('dialog', { name: 'Set your status' });
  await dialog.getByRole('radio', { name: status }).check();
  await dialog.getByLabel('Status text').fill(text);
  if (shot) await shoot(page, shot);
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'detached' });
}

describe('contacts', () => {
  test('a request, accepted; statuses in the roster, list and DM header; removal; a refusal', async () => {
    let alice, bob, frank;
    try {
      alice = await signIn(browser, server, 'alice');
      bob = await signIn(browser, server, 'bob');

      const mine = await openContacts(alice.page);
      await mine.getByTestId('contacts-empty').waitFor();
      await addContact(mine, 'bob');
      await row(alice.page, 'bob', { state: 'outgoing' }).waitFor();
      await mine.getByRole('status').filter({ hasText: 'Request sent to bob.' }).waitFor();

      // Bob's button counts the request; he accepts it in his dialog.
      await bob.page.getByTestId('contact-requests').filter({ hasText: '1' }).waitFor();
      await bob.page.getByRole('button', { name: 'Contacts, 1 request' }).waitFor();
      await openContacts(bob.page);
      await row(bob.page, 'alice', { state: 'incoming' }).waitFor();
      await bob.page.getByRole('button', { name: 'Accept alice' }).click();

      // Both are contacts now and see each other online (alice's dialog stayed open).
      await row(bob.page, 'alice', { state: 'contact', status: 'available' }).waitFor();
      await row(alice.page, 'bob', { state: 'contact', status: 'available' }).waitFor();
      await row(alice.page, 'bob').locator('.presence-dot[data-status="available"]').waitFor();
      await bob.page.getByTestId('contact-requests').waitFor({ state: 'detached' });

      // A pending request each way, for the screenshot: frank asks alice, alice asks erin.
      frank = await connectAs(server, 'frank');
      const asked = await frank.emitWithAck('contacts:request', { user: 'alice' });
      assert.deepEqual(asked, { ok: true, state: 'outgoing' });
      await row(alice.page, 'frank', { state: 'incoming' }).waitFor();
      await addContact(mine, 'erin');
      await row(alice.page, 'erin', { state: 'outgoing' }).waitFor();
      await alice.page.getByTestId('contact-requests').filter({ hasText: '1' }).waitFor();
      await shoot(alice.page, 'desktop-contacts');

      // Turning frank down reaches frank; withdrawing the request to erin empties that list.
      const declined = new Promise((resolve) => frank.on('contact', (e) => e.state === 'none' && resolve(e)));
      await alice.page.getByRole('button', { name: 'Decline frank' }).click();
      await row(alice.page, 'frank').waitFor({ state: 'detached' });
      assert.deepEqual(await declined, { user: 'alice', state: 'none' });
      await alice.page.getByRole('button', { name: 'Cancel request to erin' }).click();
      await row(alice.page, 'erin').waitFor({ state: 'detached' });
      await mine.getByTestId('contacts-outgoing').waitFor({ state: 'detached' });

      // Bob is busy, in a meeting: his picker says so, and alice's roster shows it.
      await closeDialog(bob.page);
      await setStatus(bob.page, 'Busy', 'in a meeting', 'desktop-status-picker');
      await bob.page.locator('[data-testid="my-status"][data-status="busy"]', { hasText: 'in a meeting' }).waitFor();
      await bob.page.locator('.sidebar-head .presence-dot[data-status="busy"]').waitFor();
      await row(alice.page, 'bob', { status: 'busy' }).waitFor();
      assert.equal(await row(alice.page, 'bob').getByTestId('contact-status').innerText(), 'busy · in a meeting');
      await row(alice.page, 'bob').locator('.presence-dot[data-status="busy"]').waitFor();

      // A contact opens the DM: the header and the list show his status too.
      await alice.page.getByRole('button', { name: /^Message bob/ }).click();
      await alice.page.getByRole('dialog').waitFor({ state: 'detached' });
      await alice.page.locator('[data-testid="chat-title"]', { hasText: 'bob' }).waitFor();
      await alice.page.locator('.chat-head .presence-dot[data-status="busy"]').waitFor();
      await alice.page.locator('[data-testid="presence"][data-status="busy"]', { hasText: 'busy · in a meeting' }).waitFor();
      await alice.page.locator('.conv-item[data-conversation="dm:alice:bob"] .presence-dot[data-status="busy"]').waitFor();
      await shoot(alice.page, 'desktop-dm-busy');

      // Back to available: the dot turns green for alice.
      await setStatus(bob.page, 'Available', '');
      await alice.page.locator('.chat-head .presence-dot[data-status="available"]').waitFor();
      await alice.page.locator('[data-testid="presence"]', { hasText: /^online$/ }).waitFor();

      // Bob removes alice: gone from both rosters.
      await openContacts(alice.page);
      await row(alice.page, 'bob', { state: 'contact' }).waitFor();
      await openContacts(bob.page);
      await bob.page.getByRole('button', { name: 'Remove alice' }).click();
      await row(bob.page, 'alice').waitFor({ state: 'detached' });
      await row(alice.page, 'bob').waitFor({ state: 'detached' });
      await alice.page.getByTestId('contacts-empty').waitFor();

      // The server's refusal shows inline, by the field.
      await addContact(alice.page.getByRole('dialog'), 'alice');
      const alert = alice.page.getByRole('dialog').getByRole('alert');
      await alert.filter({ hasText: 'you cannot be your own contact' }).waitFor();
      assert.equal(await alice.page.getByLabel('Add a contact').getAttribute('aria-invalid'), 'true');
      // A malformed id is caught before asking.
      await addContact(alice.page.getByRole('dialog'), 'not an id');
      await alert.filter({ hasText: 'User ids are' }).waitFor();

      assert.deepEqual(alice.errors, []);
      assert.deepEqual(bob.errors, []);
    } finally {
      frank?.disconnect();
      await closeAll(alice, bob);
    }
  });

  test('a device without input goes idle (amber for contacts) and back on the next input', async () => {
    let carol, dave;
    try {
      // Carol's page counts as idle after 1 s without input (`?idle=1`).
      carol = await signIn(browser, server, 'carol', { query: '?idle=1' });
      dave = await signIn(browser, server, 'dave', { viewport: PHONE, mobile: true });
      await addContact(await openContacts(dave.page), 'carol');
      await openContacts(carol.page);
      await carol.page.getByRole('button', { name: 'Accept dave' }).click();
      await row(dave.page, 'carol', { state: 'contact' }).waitFor();

      await row(dave.page, 'carol', { status: 'idle' }).waitFor({ timeout: 15_000 });
      await row(dave.page, 'carol').locator('.presence-dot[data-status="idle"]').waitFor();
      await carol.page.locator('[data-testid="my-status"][data-status="idle"]').waitFor();
      await shoot(dave.page, 'phone-contacts-idle');

      await carol.page.mouse.move(200, 300);
      await carol.page.mouse.move(220, 320);
      await row(dave.page, 'carol', { status: 'available' }).waitFor();
      assert.deepEqual(carol.errors, []);
      assert.deepEqual(dave.errors, []);
    } finally {
      await closeAll(carol, dave);
    }
  });

  test('with presence for contacts only, a stranger in a DM has no presence dot until accepted', async () => {
    let gina, hank;
    try {
      gina = await signIn(browser, contactsOnly, 'gina');
      hank = await signIn(browser, contactsOnly, 'hank');
      await startDirect(gina.page, 'hank');
      await send(gina.page, 'hello stranger');
      await openConversation(hank.page, 'gina');
      await bubble(hank.page, 'hello stranger').waitFor();
      await send(hank.page, 'hi');
      // By the reply, gina's presence:subscribe for hank (sent when the DM opened) has been answered.
      await bubble(gina.page, 'hi').waitFor();
      assert.equal(await gina.page.locator('.chat-head .presence-dot').count(), 0);
      assert.equal(await gina.page.locator('.conv-item .presence-dot').count(), 0);
      assert.equal(await gina.page.getByTestId('presence').innerText(), 'direct message');

      await addContact(await openContacts(gina.page), 'hank');
      await openContacts(hank.page);
      await hank.page.getByRole('button', { name: 'Accept gina' }).click();
      await row(gina.page, 'hank', { state: 'contact', status: 'available' }).waitFor();
      await closeDialog(gina.page);
      await gina.page.locator('.chat-head .presence-dot[data-status="available"]').waitFor();
      await hank.page.locator('.chat-head .presence-dot[data-status="available"]').waitFor();

      // No longer contacts: the dot goes again.
      await hank.page.getByRole('button', { name: 'Remove gina' }).click();
      await gina.page.locator('.chat-head .presence-dot').waitFor({ state: 'detached' });
      await hank.page.locator('.chat-head .presence-dot').waitFor({ state: 'detached' });
      assert.deepEqual(gina.errors, []);
      assert.deepEqual(hank.errors, []);
    } finally {
      await closeAll(gina, hank);
    }
  });
});
