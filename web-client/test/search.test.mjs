// Search in the page against a chat-server with the archive on (a PostgreSQL from the host's
// packages): results from the user's conversations only, opening the one a result is in;
// and the answer of a server without an archive.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  bubble,
  launchBrowser,
  screenshot,
  send,
  signIn,
  startDirect,
  startPostgres,
  startServer,
  until,
} from './helpers.mjs';

let pg;
let server;
let plain;
let browser;

before(async () => {
  pg = await startPostgres();
  server = await startServer({ CHAT_DATABASE_URL: pg.url, CHAT_SEARCH_LANGUAGE: 'english' });
  plain = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await plain?.stop();
  await pg?.stop();
});

/** Opens the search dialog and searches `query`. */
async function search(page, query) {
  await page.getByRole('button', { name: 'Search messages' }).first().click();
  await page.getByRole('searchbox', { name: 'Search messages' }).fill(query);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
}

test('search finds the words of the users conversations and opens the one a result is in', async () => {
  const alice = await signIn(browser, server, 'alice');
  const carol = await signIn(browser, server, 'carol');
  await startDirect(alice.page, 'bob');
  await send(alice.page, 'The deploy of build 42 failed');
  await send(alice.page, 'lunch at noon?');
  await startDirect(alice.page, 'dave');
  await send(alice.page, 'Deploying build 43 now');
  await startDirect(carol.page, 'erin');
  await send(carol.page, 'carol deploys in secret');

  // Archived about 0.1 s after the ack: search again until both of alice's are found.
  await search(alice.page, 'deploy');
  await until(
    async () => {
      await alice.page.getByRole('button', { name: 'Search', exact: true }).click();
      return (await alice.page.locator('.search-result').count()) >= 2;
    },
    { timeout: 20_000, interval: 200, message: 'both deploy messages in the results' },
  );
  const rows = alice.page.locator('.search-result');
  assert.equal(await rows.count(), 2, 'carol’s conversation is not alice’s');
  assert.match(await rows.nth(0).innerText(), /dave[\s\S]*Deploying build 43 now/, 'newest first, stemmed');
  assert.match(await rows.nth(1).innerText(), /bob[\s\S]*The deploy of build 42 failed/);
  await screenshot(alice.page, 'search');
  await rows.nth(1).click();
  await alice.page.locator('[data-testid="chat-title"]', { hasText: 'bob' }).waitFor();
  await bubble(alice.page, 'The deploy of build 42 failed').waitFor();

  await search(alice.page, 'nothingmatchesthis');
  await alice.page.getByText('No messages match').waitFor();
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(carol.errors, []);
  await alice.context.close();
  await carol.context.close();
});

test('without an archive the page says search is unavailable', async () => {
  const bob = await signIn(browser, plain, 'bob');
  await search(bob.page, 'anything');
  const alert = bob.page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /\S/);
  assert.equal(await bob.page.locator('.search-result').count(), 0);
  await bob.context.close();
});
