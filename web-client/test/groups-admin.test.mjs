// Group settings and public group discovery in the page against the real chat-server: the
// owner makes a member an admin, the admin renames the group and sets its topic, removes a
// member (whose page loses the group with a toast), a plain member sees no admin controls,
// the group turns private and back, members are added by id, and the owner deletes the group
// for everyone. Then discovery: public groups found by a prefix in another case, page by page,
// joined from the results; a private group is never listed and cannot be joined by id.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import { PHONE, launchBrowser, openConversation, screenshot, signIn, startServer, until } from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function closeAll(...people) {
  await Promise.all(people.filter(Boolean).map((p) => p.context.close()));
}

/** A socket.io-client connection as `user`, once `ready`. */
async function connectAs(user) {
  const socket = io(server.url, { auth: { user }, transports: ['websocket'] });
  await new Promise((resolve, reject) => {
    socket.once('ready', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

async function ask(socket, event, payload) {
  const answer = await socket.emitWithAck(event, payload);
  assert.equal(answer.ok, true, `${event}: ${JSON.stringify(answer)}`);
  return answer;
}

/** A screenshot once the page has painted its latest changes (a frame may lag behind the DOM). */
async function shoot(page, name) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await screenshot(page, name);
}

const item = (page, conversation) => page.locator(`.conv-item[data-conversation="${conversation}"]`);
const member = (page, user, role) => page.locator(`#group-info .member[data-member="${user}"]${role ? `[data-role="${role}"]` : ''}`);
const toast = (page, text) => page.locator('.toast', { hasText: text });

async function openInfo(page) {
  await page.getByRole('button', { name: 'Group info and members' }).click();
  await page.locator('#group-info').waitFor();
}

describe('group settings', () => {
  test('roles, rename and topic, removal, no controls for members, private and back, adding, deleting', async () => {
    let alice, bob, carol;
    try {
      alice = await signIn(browser, server, 'alice');
      bob = await signIn(browser, server, 'bob');
      carol = await signIn(browser, server, 'carol', { viewport: PHONE, mobile: true });

      // Alice creates a public group with bob and carol.
      await alice.page.getByRole('button', { name: 'New chat' }).first().click();
      await alice.page.getByRole('tab', { name: 'New group' }).click();
      await alice.page.getByLabel('Group name').fill('Book club');
      await alice.page.getByLabel('Members').fill('bob, carol');
      assert.equal(await alice.page.getByRole('radio', { name: 'Public' }).isChecked(), true, 'public by default');
      await alice.page.getByRole('button', { name: 'Create group' }).click();
      await alice.page.locator('[data-testid="chat-title"]', { hasText: 'Book club' }).waitFor();
      const groupId = (await alice.page.getByTestId('group-id').first().textContent()).trim();
      const conversation = `group:${groupId}`;
      await item(bob.page, conversation).waitFor();
      await item(carol.page, conversation).waitFor();

      // Roles as alice sees them; she makes bob an admin.
      await openInfo(alice.page);
      await alice.page.getByRole('heading', { name: 'Group settings' }).waitFor();
      await member(alice.page, 'alice', 'owner').getByTestId('role').filter({ hasText: 'Owner' }).waitFor();
      await member(alice.page, 'bob', 'member').waitFor();
      await member(alice.page, 'carol', 'member').waitFor();
      await alice.page.locator('#group-info [data-testid="group-visibility"]', { hasText: 'Public' }).waitFor();
      assert.equal(await alice.page.getByRole('button', { name: "Remove alice's admin role" }).count(), 0);
      await alice.page.getByRole('button', { name: 'Make bob an admin' }).click();
      await member(alice.page, 'bob', 'admin').getByTestId('role').filter({ hasText: 'Admin' }).waitFor();
      await alice.page.getByRole('button', { name: "Remove bob's admin role" }).waitFor();

      // Bob, now an admin, renames the group and sets a topic.
      await openConversation(bob.page, 'Book club');
      await openInfo(bob.page);
      await bob.page.getByRole('heading', { name: 'Group settings' }).waitFor();
      await member(bob.page, 'bob', 'admin').waitFor();
      await bob.page.getByLabel('Group name').fill("Readers' corner");
      await bob.page.getByLabel('Topic').fill('This month: Dune');
      await bob.page.locator('#group-info').getByRole('button', { name: 'Save' }).click();
      await bob.page.locator('#group-info').getByRole('status').filter({ hasText: 'Saved.' }).waitFor();

      // Alice's page follows: header, list and panel.
      await alice.page.locator('[data-testid="chat-title"]', { hasText: "Readers' corner" }).waitFor();
      await alice.page.locator('[data-testid="chat-topic"]', { hasText: 'This month: Dune' }).waitFor();
      await item(alice.page, conversation).locator('.conv-title', { hasText: "Readers' corner" }).waitFor();
      await alice.page.locator('#group-info [data-testid="group-topic"]', { hasText: 'This month: Dune' }).waitFor();
      assert.equal(await alice.page.getByLabel('Group name').inputValue(), "Readers' corner", 'the untouched form follows');
      await alice.page.locator('#group-info').evaluate((panel) => panel.scrollTo(0, 0));
      await shoot(alice.page, 'desktop-group-settings');
      await alice.page.emulateMedia({ colorScheme: 'dark' });
      await shoot(alice.page, 'desktop-group-settings-dark');
      await alice.page.emulateMedia({ colorScheme: 'light' });

      // Carol, a plain member, sees the roles but no admin controls.
      await openConversation(carol.page, "Readers' corner");
      await carol.page.locator('[data-testid="chat-topic"]', { hasText: 'This month: Dune' }).waitFor();
      await openInfo(carol.page);
      await member(carol.page, 'alice', 'owner').waitFor();
      await member(carol.page, 'bob', 'admin').waitFor();
      await member(carol.page, 'carol', 'member').waitFor();
      await carol.page.getByRole('heading', { name: 'Group info' }).waitFor();
      const panel = carol.page.locator('#group-info');
      for (const name of [/^Make .* an admin$/, /admin role$/, /from the group$/, 'Delete group', 'Save', 'Add to the group']) {
        assert.equal(await panel.getByRole('button', { name }).count(), 0, `no ${name} button for a member`);
      }
      assert.equal(await panel.getByRole('switch').count(), 0);
      assert.equal(await panel.getByLabel('Add a member').count(), 0);
      assert.equal(await panel.getByRole('button', { name: 'Leave group' }).count(), 1);
      await shoot(carol.page, 'phone-group-info-member');

      // An admin may remove plain members, not the owner; roles are the owner's.
      const bobs = bob.page.locator('#group-info');
      await bobs.getByRole('button', { name: 'Remove carol from the group' }).waitFor();
      assert.equal(await bobs.getByRole('button', { name: 'Remove alice from the group' }).count(), 0);
      assert.equal(await bobs.getByRole('button', { name: /an admin$|admin role$/ }).count(), 0);
      assert.equal(await bobs.getByRole('button', { name: 'Delete group' }).count(), 0);
      await bobs.getByRole('button', { name: 'Remove carol from the group' }).click();

      // Carol's page loses the group, with a toast saying who removed her.
      await item(carol.page, conversation).waitFor({ state: 'detached' });
      await toast(carol.page, "bob removed you from Readers' corner").waitFor();
      await carol.page.locator('#group-info').waitFor({ state: 'detached' });
      await shoot(carol.page, 'phone-removed-toast');
      await member(alice.page, 'carol').waitFor({ state: 'detached' });
      await member(bob.page, 'carol').waitFor({ state: 'detached' });

      // Alice makes the group private; bob's panel shows it; then public again.
      const visibility = alice.page.getByRole('switch', { name: 'Public group' });
      assert.equal(await visibility.isChecked(), true);
      await visibility.click();
      await alice.page.locator('#group-info [data-testid="group-visibility"]', { hasText: 'Private' }).waitFor();
      await bob.page.locator('#group-info [data-testid="group-visibility"]', { hasText: 'Private' }).waitFor();
      assert.equal(await bob.page.getByRole('switch', { name: 'Public group' }).isChecked(), false);
      await visibility.click();
      await bob.page.locator('#group-info [data-testid="group-visibility"]', { hasText: 'Public' }).waitFor();

      // Adding members by id: a malformed id is refused inline; carol comes back.
      const invite = alice.page.getByLabel('Add a member');
      await invite.fill('not an id');
      await alice.page.getByRole('button', { name: 'Add to the group' }).click();
      await alice.page.locator('#group-info').getByRole('alert').filter({ hasText: 'User ids are' }).waitFor();
      assert.equal(await invite.getAttribute('aria-invalid'), 'true');
      await invite.fill('carol');
      await alice.page.getByRole('button', { name: 'Add to the group' }).click();
      await alice.page.locator('#group-info').getByRole('status').filter({ hasText: 'carol was added.' }).waitFor();
      await member(alice.page, 'carol', 'member').waitFor();
      await member(bob.page, 'carol', 'member').waitFor();
      await item(carol.page, conversation).waitFor();

      // Bob no longer an admin: his controls go.
      await alice.page.getByRole('button', { name: "Remove bob's admin role" }).click();
      await member(bob.page, 'bob', 'member').waitFor();
      await bob.page.getByRole('heading', { name: 'Group info' }).waitFor();
      assert.equal(await bobs.getByRole('button', { name: /from the group$/ }).count(), 0);

      // The owner deletes the group, after confirming; every list loses it.
      await alice.page.getByRole('button', { name: 'Delete group' }).click();
      const question = alice.page.getByRole('group', { name: /Delete .* and all its messages for everyone/ });
      await question.waitFor();
      await until(() => alice.page.evaluate(() => document.activeElement?.textContent === 'Cancel'), {
        message: 'the safe answer focused first',
      });
      await question.getByRole('button', { name: 'Cancel' }).click();
      await question.waitFor({ state: 'detached' });
      await alice.page.getByRole('button', { name: 'Delete group' }).click();
      await shoot(alice.page, 'desktop-group-delete-confirm');
      await question.getByRole('button', { name: 'Delete for everyone' }).click();
      for (const p of [alice, bob, carol]) await item(p.page, conversation).waitFor({ state: 'detached' });
      await toast(bob.page, "alice deleted Readers' corner").waitFor();
      await toast(carol.page, "alice deleted Readers' corner").waitFor();
      assert.equal(await toast(alice.page, 'deleted').count(), 0, 'the owner knows');
      await alice.page.locator('.pane-empty').waitFor();
      await bob.page.locator('#group-info').waitFor({ state: 'detached' });

      for (const p of [alice, bob, carol]) assert.deepEqual(p.errors, []);
    } finally {
      await closeAll(alice, bob, carol);
    }
  });
});

describe('public group discovery', () => {
  test('found by a prefix in any case, page by page, and joined; a private group is never found', async () => {
    let frank, henry;
    try {
      // Frank's groups: 21 public ones starting "Chess" (more than one page), one "Checkers",
      // and a private "Chess secret".
      frank = await connectAs('frank');
      const club = (await ask(frank, 'group:create', { name: 'Chess Club' })).group;
      await ask(frank, 'group:update', { group: club.id, topic: 'Sundays at 10' });
      for (let i = 1; i <= 20; i++) {
        await ask(frank, 'group:create', { name: `Chess variant ${String(i).padStart(2, '0')}`, visibility: 'public' });
      }
      const checkers = (await ask(frank, 'group:create', { name: 'Checkers' })).group;
      const secret = (await ask(frank, 'group:create', { name: 'Chess secret', visibility: 'private' })).group;
      const joined = new Promise((resolve) =>
        frank.on('group:member', (e) => e.group === club.id && e.event === 'joined' && resolve(e)),
      );

      henry = await signIn(browser, server, 'henry');
      await henry.page.getByRole('button', { name: 'New chat' }).first().click();
      await henry.page.getByRole('tab', { name: 'Find groups' }).click();
      const dialog = henry.page.getByRole('dialog');
      const found = (id) => dialog.locator(`.found[data-group="${id}"]`);
      // With nothing typed, public groups are listed from the start of the alphabet.
      await found(checkers.id).waitFor();

      await dialog.getByLabel('Search public groups').fill('cHeSs');
      await found(checkers.id).waitFor({ state: 'detached' });
      const row = found(club.id);
      await row.waitFor();
      assert.equal(await row.locator('.found-name').innerText(), 'Chess Club');
      assert.equal(await row.locator('.found-topic').innerText(), 'Sundays at 10');
      assert.equal(await row.locator('.found-count').innerText(), '1 member');
      await until(async () => (await dialog.locator('.found').count()) === 20, { message: 'a first page of 20' });
      await shoot(henry.page, 'desktop-find-groups');

      // More follows the cursor to the 21st; the private one is never among them.
      await dialog.getByRole('button', { name: 'More groups' }).click();
      await dialog.locator('.found-name', { hasText: 'Chess variant 20' }).waitFor();
      await dialog.getByRole('button', { name: 'More groups' }).waitFor({ state: 'detached' });
      assert.equal(await dialog.locator('.found').count(), 21);
      assert.equal(await found(secret.id).count(), 0);
      assert.equal(await dialog.locator('.found-name', { hasText: 'secret' }).count(), 0);

      await dialog.getByLabel('Search public groups').fill('chess s');
      await dialog.getByTestId('find-empty').filter({ hasText: 'chess s' }).waitFor();

      // Nor can it be joined by id.
      await dialog.getByLabel('Group id').fill(secret.id);
      await dialog.getByRole('button', { name: 'Join group' }).click();
      await dialog.getByRole('alert').filter({ hasText: 'Not allowed' }).waitFor();

      // Joining from the results opens the group, topic and all.
      await dialog.getByLabel('Search public groups').fill('CHESS C');
      await dialog.getByRole('button', { name: 'Join Chess Club' }).click();
      await dialog.waitFor({ state: 'detached' });
      await henry.page.locator('[data-testid="chat-title"]', { hasText: 'Chess Club' }).waitFor();
      await henry.page.locator('[data-testid="chat-topic"]', { hasText: 'Sundays at 10' }).waitFor();
      assert.deepEqual(await joined, { group: club.id, user: 'henry', event: 'joined' });

      // Found again, it is one of ours: Open instead of Join.
      await henry.page.getByRole('button', { name: 'New chat' }).first().click();
      await henry.page.getByRole('tab', { name: 'Find groups' }).click();
      await dialog.getByLabel('Search public groups').fill('chess club');
      await found(club.id).locator('.found-count', { hasText: '2 members' }).waitFor();
      await dialog.getByRole('button', { name: 'Open Chess Club' }).click();
      await dialog.waitFor({ state: 'detached' });
      assert.deepEqual(henry.errors, []);
    } finally {
      frank?.disconnect();
      await closeAll(henry);
    }
  });
});
