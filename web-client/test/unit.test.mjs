// Pure logic from src/ (protocol ids, message order, receipts → status, the reducers the client
// applies server events with, group roles, the reload cache, toasts, contacts, presence
// statuses, idle),
// compiled on the fly with the project's
// TypeScript; no browser, no server.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { webDir } from './helpers.mjs';

/** Transpiles src/<name>.ts files into a temporary directory and imports the first one. */
async function load(...names) {
  const dir = mkdtempSync(join(tmpdir(), 'chat-unit-'));
  for (const name of names) {
    const source = readFileSync(join(webDir, 'src', `${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(join(dir, `${name}.mjs`), outputText.replace(/from '\.\/([\w-]+)'/g, "from './$1.mjs'"));
  }
  return import(pathToFileURL(join(dir, `${names[0]}.mjs`)).href);
}

const p = await load('protocol');
const conv = await load('conversation', 'protocol');
const inbox = await load('inbox', 'conversation', 'protocol');
const cache = await load('cache', 'inbox', 'conversation', 'protocol');
const toasts = await load('toasts');
const errors = await load('errors');
const contacts = await load('contacts', 'errors', 'protocol');
const presence = await load('presence', 'protocol');
const idle = await load('idle');
const roles = await load('roles');

const msg = (id, from, body = id) => ({ id, conversation: 'group:G1', from, body, ts: Number(id.split('-')[0]) });

test('message ids compare as pairs of numbers, not as strings', () => {
  assert.equal(p.compareIds('1732370000000-9', '1732370000000-10'), -1);
  assert.equal(p.compareIds('999-5', '1000-0'), -1);
  assert.equal(p.compareIds('1000-0', '999-5'), 1);
  assert.equal(p.compareIds('42-7', '42-7'), 0);
  assert.equal(p.maxId(undefined, '5-0'), '5-0');
  assert.equal(p.maxId('10-0', '9-99'), '10-0');
  assert.deepEqual(['10-1', '9-2', '10-0', '9-10'].sort(p.compareIds), ['9-2', '9-10', '10-0', '10-1']);
});

test('conversation ids: DMs are the two users sorted, groups are prefixed', () => {
  assert.equal(p.dmId('bob', 'alice'), 'dm:alice:bob');
  assert.equal(p.dmId('alice', 'bob'), 'dm:alice:bob');
  assert.deepEqual(p.parseConversation('dm:alice:bob'), { kind: 'dm', users: ['alice', 'bob'] });
  assert.deepEqual(p.parseConversation('group:Gx1y2z'), { kind: 'group', group: 'Gx1y2z' });
  assert.equal(p.parseConversation('dm:alice'), null);
  assert.equal(p.parseConversation('group:'), null);
  assert.deepEqual(p.sendTarget('dm:alice:bob', 'bob'), { to: 'alice' });
  assert.deepEqual(p.sendTarget('dm:alice:bob', 'alice'), { to: 'bob' });
  assert.deepEqual(p.sendTarget('group:G1', 'alice'), { group: 'G1' });
  assert.equal(p.toGroupId(' group:Gx1y2z '), 'Gx1y2z');
  assert.equal(p.toGroupId('Gx1y2z'), 'Gx1y2z');
});

test('user ids are 1-64 characters of letters, digits, dot, underscore and dash', () => {
  for (const ok of ['a', 'alice', 'a.b_c-d', 'x'.repeat(64)]) assert.equal(p.isValidUserId(ok), true, ok);
  for (const bad of ['', 'x'.repeat(65), 'a b', 'a:b', 'émile']) assert.equal(p.isValidUserId(bad), false, bad);
});

test('messages are kept once each, in id order, whatever order they arrive in', () => {
  const c = conv.newConversation('group:G1', 'alice');
  for (const id of ['10-1', '9-10', '10-0', '9-2', '10-0', '9-10']) conv.insertMessage(c, msg(id, 'bob'));
  assert.deepEqual(
    c.messages.map((m) => m.id),
    ['9-2', '9-10', '10-0', '10-1'],
  );
  assert.equal(c.lastMessage.id, '10-1');
  assert.equal(conv.insertMessage(c, msg('9-2', 'bob')), false);
});

test('cumulative receipts: delivered and read cover every earlier message; groups need everyone', () => {
  const dm = conv.newConversation('dm:alice:bob', 'alice');
  assert.equal(dm.peer, 'bob');
  const mine = { ...msg('5-0', 'alice'), conversation: 'dm:alice:bob' };
  assert.equal(conv.messageStatus(dm, mine, 'alice').status, 'sent');
  dm.receipts.delivered.bob = '5-0';
  assert.equal(conv.messageStatus(dm, mine, 'alice').status, 'delivered');
  dm.receipts.read.bob = '10-0';
  assert.equal(conv.messageStatus(dm, mine, 'alice').status, 'read');
  assert.equal(conv.messageStatus(dm, { ...mine, id: '10-1' }, 'alice').status, 'sent');
  assert.equal(conv.messageStatus(dm, { ...mine, from: 'bob' }, 'alice'), null);

  const group = conv.newConversation('group:G1', 'alice');
  group.members = ['alice', 'bob', 'carol'];
  group.receipts.read.bob = '7-0';
  const status = conv.messageStatus(group, msg('6-0', 'alice'), 'alice');
  assert.equal(status.status, 'delivered');
  assert.deepEqual(status.readBy, ['bob']);
  group.receipts.read.carol = '6-0';
  assert.equal(conv.messageStatus(group, msg('6-0', 'alice'), 'alice').status, 'read');
});

/** A map of fresh conversations, as the client holds them, seen by `me`. */
function conversations(me, ...ids) {
  const map = new Map();
  for (const id of ids) inbox.ensureConversation(map, id, me);
  return map;
}

const dmMsg = (id, from, conversation = 'dm:alice:bob') => ({ ...msg(id, from), conversation });

test('a received message ends its sender\'s typing and is unread unless the conversation is being read', () => {
  const c = conversations('alice', 'dm:alice:bob').get('dm:alice:bob');
  c.typing.bob = Date.now() + 5000;
  assert.equal(inbox.receiveMessage(c, dmMsg('1-0', 'bob'), 'alice', false), true);
  assert.deepEqual(c.typing, {});
  assert.equal(c.unread, 1);
  assert.equal(inbox.receiveMessage(c, dmMsg('1-0', 'bob'), 'alice', false), false, 'a duplicate');
  assert.equal(c.unread, 1, 'a duplicate is not counted again');
  assert.equal(inbox.receiveMessage(c, dmMsg('2-0', 'bob'), 'alice', true), true);
  assert.equal(c.unread, 1, 'read as it arrives');
  assert.equal(inbox.receiveMessage(c, dmMsg('3-0', 'alice'), 'alice', false), true);
  assert.equal(c.unread, 1, 'our own message is never unread');
  assert.deepEqual(
    c.messages.map((m) => m.id),
    ['1-0', '2-0', '3-0'],
  );
});

test('sync pages create their conversations, skip what is not a message and return what they took', () => {
  const map = new Map();
  const good = [dmMsg('2-0', 'bob'), msg('3-0', 'carol')];
  const taken = inbox.addMessages(map, 'alice', [good[0], null, { id: '9-0' }, good[1], good[0]]);
  assert.deepEqual(taken, [good[0], good[1], good[0]]);
  assert.deepEqual([...map.keys()], ['dm:alice:bob', 'group:G1']);
  assert.equal(map.get('dm:alice:bob').messages.length, 1);
  assert.equal(map.get('dm:alice:bob').peer, 'bob');
});

test('typing: others only, in known conversations, shown until it runs out', () => {
  const map = conversations('alice', 'group:G1');
  const c = map.get('group:G1');
  assert.equal(inbox.applyTyping(map, 'alice', { conversation: 'group:G1', user: 'alice', typing: true }, 1000), false);
  assert.equal(inbox.applyTyping(map, 'alice', { conversation: 'group:G2', user: 'bob', typing: true }, 1000), false);
  assert.equal(inbox.applyTyping(map, 'alice', null, 1000), false);
  assert.equal(inbox.applyTyping(map, 'alice', { conversation: 'group:G1', user: 'bob', typing: true }, 1000), true);
  assert.equal(inbox.applyTyping(map, 'alice', { conversation: 'group:G1', user: 'carol', typing: true }, 3000), true);
  assert.deepEqual(c.typing, { bob: 1000 + inbox.TYPING_SHOWN_MS, carol: 3000 + inbox.TYPING_SHOWN_MS });
  assert.deepEqual(conv.typingUsers(c, 2000), ['bob', 'carol']);

  assert.equal(inbox.expireTyping(map, 1000 + inbox.TYPING_SHOWN_MS - 1), false);
  assert.equal(inbox.expireTyping(map, 1000 + inbox.TYPING_SHOWN_MS), true);
  assert.deepEqual(Object.keys(c.typing), ['carol']);
  assert.equal(inbox.applyTyping(map, 'alice', { conversation: 'group:G1', user: 'carol', typing: false }, 4000), true);
  assert.deepEqual(c.typing, {});
});

test('receipts only move forward, and a read receipt also counts as delivered', () => {
  const map = conversations('alice', 'dm:alice:bob');
  const { receipts } = map.get('dm:alice:bob');
  const receipt = (messageId, status) => ({ conversation: 'dm:alice:bob', user: 'bob', messageId, status });
  assert.equal(inbox.applyReceipt(map, receipt('5-0', 'delivered')), true);
  assert.deepEqual(receipts, { delivered: { bob: '5-0' }, read: {} });
  assert.equal(inbox.applyReceipt(map, receipt('10-0', 'read')), true);
  assert.deepEqual(receipts, { delivered: { bob: '10-0' }, read: { bob: '10-0' } });
  inbox.applyReceipt(map, receipt('9-99', 'read'));
  assert.deepEqual(receipts, { delivered: { bob: '10-0' }, read: { bob: '10-0' } }, 'a late, older one');
  assert.equal(inbox.applyReceipt(map, { ...receipt('11-0', 'read'), conversation: 'dm:alice:carol' }), false);
  assert.equal(inbox.applyReceipt(map, { ...receipt('11-0', 'read'), user: undefined }), false);
  assert.equal(inbox.applyReceipt(map, null), false);
});

test('group member events: our own leave drops the group, others update a members list once read', () => {
  const map = conversations('alice', 'group:G1');
  const g = map.get('group:G1');
  const event = (user, e, group = 'G1') => ({ group, user, event: e });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', event('alice', 'left')), {
    kind: 'left',
    conversation: 'group:G1',
  });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', event('alice', 'joined', 'G2')), {
    kind: 'unknown',
    conversation: 'group:G2',
  });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', event('alice', 'joined')), { kind: 'none' });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', event('bob', 'joined')), { kind: 'none' }, 'list not read yet');
  assert.equal(g.members, undefined);

  g.members = ['alice', 'bob'];
  const joined = inbox.applyMemberEvent(map, 'alice', event('carol', 'joined'));
  assert.deepEqual(joined, { kind: 'members', joined: 'carol' });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', event('carol', 'joined')), { kind: 'members', joined: null });
  assert.deepEqual(g.members, ['alice', 'bob', 'carol']);
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', event('bob', 'left')), { kind: 'members', joined: null });
  assert.deepEqual(g.members, ['alice', 'carol']);
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', { user: 'bob', event: 'left' }), { kind: 'none' });
});

test('group member events: removed (with by) drops the group for us, and a member and their admin role for others', () => {
  const map = conversations('alice', 'group:G1');
  const g = map.get('group:G1');
  const removed = (user, by = 'bob', group = 'G1') => ({ group, user, event: 'removed', by });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', removed('alice')), {
    kind: 'removed',
    conversation: 'group:G1',
    by: 'bob',
  });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', { group: 'G1', user: 'alice', event: 'removed' }), {
    kind: 'removed',
    conversation: 'group:G1',
    by: null,
  });
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', removed('alice', 'bob', 'G2')), { kind: 'none' }, 'unknown here');

  // Admins are known without the members list: a removed admin is one no more.
  g.owner = 'alice';
  g.admins = ['bob', 'carol'];
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', removed('carol', 'alice')), { kind: 'members', joined: null });
  assert.deepEqual(g.admins, ['bob']);
  assert.equal(g.members, undefined);
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', removed('dave', 'alice')), { kind: 'none' });

  g.members = ['alice', 'bob', 'dave'];
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', removed('dave', 'bob')), { kind: 'members', joined: null });
  assert.deepEqual(g.members, ['alice', 'bob']);
  assert.deepEqual(inbox.applyMemberEvent(map, 'alice', { group: 'G1', user: 'bob', event: 'left' }), { kind: 'members', joined: null });
  assert.deepEqual([g.members, g.admins], [['alice'], []]);
});

test('group:updated takes in name, topic, visibility, owner, admins and members; deleted drops the group', () => {
  const map = conversations('alice', 'group:G1');
  const g = map.get('group:G1');
  g.name = 'Team';
  g.topic = 'old topic';
  const group = { id: 'G1', name: 'Core', owner: 'bob', members: ['alice', 'bob'], admins: ['alice', 'bob'], visibility: 'private' };
  assert.deepEqual(inbox.applyGroupUpdated(map, { group }), { kind: 'updated', conversation: 'group:G1' });
  assert.deepEqual(
    [g.name, g.owner, g.admins, g.topic, g.visibility, g.members],
    ['Core', 'bob', ['alice'], undefined, 'private', ['alice', 'bob']],
    'no topic in the group: none is set; the owner is never listed as an admin',
  );
  inbox.applyGroupUpdated(map, { group: { ...group, topic: 'Q3 plans', visibility: 'public' } });
  assert.deepEqual([g.topic, g.visibility], ['Q3 plans', 'public']);
  assert.equal(conv.title(g), 'Core');

  assert.deepEqual(inbox.applyGroupUpdated(map, { group: { ...group, id: 'G2' } }), { kind: 'unknown', conversation: 'group:G2' });
  assert.deepEqual(inbox.applyGroupUpdated(map, { group: { ...group, id: 'G2' }, deleted: true }), { kind: 'none' });
  assert.deepEqual(inbox.applyGroupUpdated(map, { group: null }), { kind: 'none' });
  assert.deepEqual(inbox.applyGroupUpdated(map, null), { kind: 'none' });
  assert.deepEqual(inbox.applyGroupUpdated(map, { group, deleted: true }), {
    kind: 'deleted',
    conversation: 'group:G1',
    name: 'Core',
    owner: 'bob',
  });
});

test('group roles: the owner manages everyone else, admins remove plain members, members nothing', () => {
  const g = { owner: 'alice', admins: ['bob'] };
  assert.deepEqual(['alice', 'bob', 'carol'].map((u) => roles.roleOf(g, u)), ['owner', 'admin', 'member']);
  assert.equal(roles.roleOf({}, 'alice'), null, 'not known yet');
  assert.deepEqual(['owner', 'admin', 'member'].map(roles.roleLabel), ['Owner', 'Admin', 'Member']);
  assert.deepEqual(['alice', 'bob', 'carol'].map((u) => roles.canManage(g, u)), [true, true, false]);
  assert.deepEqual(['alice', 'bob', 'carol'].map((u) => roles.canDelete(g, u)), [true, false, false]);
  assert.equal(roles.canManage({}, 'alice'), false);

  const none = { promote: false, demote: false, kick: false };
  assert.deepEqual(roles.memberActions(g, 'alice', 'bob'), { promote: false, demote: true, kick: true });
  assert.deepEqual(roles.memberActions(g, 'alice', 'carol'), { promote: true, demote: false, kick: true });
  assert.deepEqual(roles.memberActions(g, 'alice', 'alice'), none, 'not on yourself');
  assert.deepEqual(roles.memberActions(g, 'bob', 'carol'), { ...none, kick: true });
  assert.deepEqual(roles.memberActions(g, 'bob', 'alice'), none, 'an admin cannot touch the owner');
  assert.deepEqual(roles.memberActions({ owner: 'alice', admins: ['bob', 'dave'] }, 'bob', 'dave'), none, 'nor another admin');
  assert.deepEqual(roles.memberActions(g, 'carol', 'dave'), none);
  assert.deepEqual(roles.memberActions({}, 'alice', 'bob'), none);

  const online = (u) => u === 'erin' || u === 'carol';
  assert.deepEqual(
    roles.sortMembers({ owner: 'dave', admins: ['frank', 'bob'] }, ['erin', 'bob', 'dave', 'carol', 'frank', 'alice'], online),
    ['dave', 'bob', 'frank', 'carol', 'erin', 'alice'],
  );
});

test('the conversation list sets names, newest messages, unread; unlisted groups are stale unless just joined', () => {
  const map = conversations('alice', 'group:OLD', 'group:NEW', 'dm:alice:dave');
  const listed = inbox.applySummaries(
    map,
    'alice',
    [
      { id: 'dm:alice:bob', lastMessage: dmMsg('7-0', 'bob'), unread: 3 },
      { id: 'group:G1', name: 'Lunch', lastMessage: msg('8-0', 'carol'), unread: -2 },
      { id: 'dm:alice:carol', lastMessage: null, unread: 4 },
      { id: 'nonsense', lastMessage: null, unread: 1 },
      null,
    ],
    'dm:alice:carol',
  );
  assert.deepEqual([...listed], ['dm:alice:bob', 'group:G1', 'dm:alice:carol']);
  assert.equal(map.get('dm:alice:bob').unread, 3);
  assert.equal(map.get('dm:alice:bob').lastMessage.id, '7-0');
  assert.equal(map.get('group:G1').name, 'Lunch');
  assert.equal(map.get('group:G1').unread, 0, 'never negative');
  assert.equal(map.get('dm:alice:carol').unread, 0, 'being read');
  assert.equal(map.has('nonsense'), false);

  const joinedAt = new Map([['group:NEW', 100_000]]);
  assert.deepEqual(inbox.staleGroups(map, listed, joinedAt, 110_000), ['group:OLD']);
  assert.deepEqual(inbox.staleGroups(map, listed, joinedAt, 140_001), ['group:OLD', 'group:NEW']);
  assert.deepEqual(inbox.peers(map).sort(), ['bob', 'carol', 'dave']);
});

test('unread totals leave out the open conversation; the list is ordered by latest activity', () => {
  const map = conversations('alice', 'dm:alice:bob', 'group:G1', 'dm:alice:carol');
  map.get('dm:alice:bob').unread = 2;
  map.get('group:G1').unread = 5;
  map.get('dm:alice:carol').touched = 50;
  conv.insertMessage(map.get('group:G1'), msg('40-0', 'bob'));
  conv.insertMessage(map.get('dm:alice:bob'), dmMsg('60-0', 'bob'));
  assert.equal(inbox.totalUnread(map, null), 7);
  assert.equal(inbox.totalUnread(map, 'group:G1'), 2);
  assert.deepEqual(
    inbox.sortedConversations(map).map((c) => c.id),
    ['dm:alice:bob', 'dm:alice:carol', 'group:G1'],
  );
});

test('the first history page replaces unconfirmed cached messages and drops what would leave a gap', () => {
  const c = conversations('alice', 'group:G1').get('group:G1');
  for (const id of ['1-0', '5-0', '6-0', '12-0']) conv.insertMessage(c, msg(id, 'bob'));
  c.cached = new Set(['5-0', '6-0', '12-0']);
  c.history = 'loading';
  inbox.applyHistoryPage(c, [msg('6-0', 'bob'), msg('7-0', 'carol'), msg('8-0', 'bob')], true);
  assert.deepEqual(
    c.messages.map((m) => m.id),
    ['6-0', '7-0', '8-0'],
    '1-0 is older than the page (a gap), 5-0 and 12-0 were not confirmed',
  );
  assert.deepEqual([...c.ids].sort(), ['6-0', '7-0', '8-0']);
  assert.equal(c.cached.size, 0);
  assert.equal(c.hasMore, true);
  assert.equal(c.history, 'loaded');

  const whole = conversations('alice', 'group:G1').get('group:G1');
  conv.insertMessage(whole, msg('1-0', 'bob'));
  inbox.applyHistoryPage(whole, [msg('2-0', 'bob')], false);
  assert.deepEqual(
    whole.messages.map((m) => m.id),
    ['1-0', '2-0'],
    'without more pages nothing can be missing',
  );

  inbox.applyOlderPage(c, [msg('3-0', 'bob'), msg('4-0', 'bob')], false);
  assert.deepEqual(
    c.messages.map((m) => m.id),
    ['3-0', '4-0', '6-0', '7-0', '8-0'],
  );
  assert.equal(c.hasMore, false);
});

test('a truncated sync forgets loaded history so that it is loaded again', () => {
  const map = conversations('alice', 'group:G1');
  const c = map.get('group:G1');
  conv.insertMessage(c, msg('1-0', 'bob'));
  Object.assign(c, { history: 'loaded', hasMore: true, cached: new Set(['1-0']) });
  inbox.forgetLoadedHistory(map);
  assert.deepEqual(
    [c.messages, [...c.ids], [...c.cached], c.history, c.hasMore],
    [[], [], [], 'none', false],
  );
  assert.equal(c.lastMessage.id, '1-0', 'the list still shows it');
});

test('read is sent for the newest message, and only when others wrote since the last one sent', () => {
  const c = conversations('alice', 'dm:alice:bob').get('dm:alice:bob');
  assert.equal(inbox.readMark(c, 'alice', undefined), null, 'empty');
  conv.insertMessage(c, dmMsg('1-0', 'alice'));
  assert.equal(inbox.readMark(c, 'alice', undefined), null, 'only ours');
  conv.insertMessage(c, dmMsg('2-0', 'bob'));
  conv.insertMessage(c, dmMsg('3-0', 'alice'));
  assert.equal(inbox.readMark(c, 'alice', undefined), '3-0');
  assert.equal(inbox.readMark(c, 'alice', '3-0'), null);
  assert.equal(inbox.readMark(c, 'alice', '2-0'), null, "bob's message is covered");
  assert.equal(inbox.readMark(c, 'alice', '1-0'), '3-0');
  conv.insertMessage(c, dmMsg('10-0', 'alice'));
  assert.equal(inbox.readMark(c, 'alice', '3-0'), null, 'nothing new from bob');
});

test('the reload cache keeps recent conversations and their newest messages, restored marked as cached', () => {
  const map = new Map();
  for (let i = 1; i <= 25; i++) {
    const c = inbox.ensureConversation(map, `dm:alice:u${String(i).padStart(2, '0')}`, 'alice');
    for (let n = 1; n <= (i === 25 ? 45 : 1); n++) conv.insertMessage(c, dmMsg(`${i * 1000 + n}-0`, c.peer, c.id));
  }
  const bob = inbox.ensureConversation(map, 'dm:alice:bob', 'alice');
  bob.name = 'ignored for DMs';
  bob.unread = 2;
  bob.touched = 7;
  bob.receipts.delivered.bob = '3-0';
  bob.receipts.read.bob = '2-0';

  const snap = cache.snapshotCache(map);
  assert.equal(snap.conversations.length, 26);
  assert.deepEqual(snap.conversations.at(-1), {
    id: 'dm:alice:bob',
    name: 'ignored for DMs',
    lastMessage: null,
    unread: 2,
    touched: 7,
  });
  assert.deepEqual(Object.keys(snap.receipts), ['dm:alice:bob'], 'only conversations with receipts');
  const recent = Object.keys(snap.recent).sort();
  assert.equal(recent.length, 20, 'the 20 most recently active');
  assert.equal(recent[0], 'dm:alice:u06');
  assert.equal(snap.recent['dm:alice:u25'].length, 40);
  assert.equal(snap.recent['dm:alice:u25'][0].id, '25006-0', 'the newest 40');

  const team = inbox.ensureConversation(map, 'group:T1', 'alice');
  const noSettings = inbox.ensureConversation(map, 'group:T2', 'alice');
  Object.assign(team, { name: 'Team', owner: 'bob', admins: ['alice'], topic: 'Q3', visibility: 'private', members: ['alice', 'bob'] });
  const withGroups = cache.snapshotCache(map).conversations;
  assert.deepEqual(withGroups.find((c) => c.id === 'group:T1').group, {
    owner: 'bob',
    admins: ['alice'],
    topic: 'Q3',
    visibility: 'private',
  });
  assert.equal('group' in withGroups.find((c) => c.id === 'group:T2'), false, 'settings never read');
  map.delete(team.id);
  map.delete(noSettings.id);

  const stored = JSON.parse(JSON.stringify(snap));
  stored.conversations.push(
    { id: 'bad', lastMessage: null, unread: 0, touched: 0 },
    { id: 'group:T1', name: 'Team', lastMessage: null, unread: 0, touched: 0, group: { owner: 'bob', admins: ['alice', 3], visibility: 'secret' } },
    { id: 'dm:alice:zed', lastMessage: null, unread: 0, touched: 0, group: { owner: 'zed', admins: [] } },
  );
  stored.receipts['group:'] = { delivered: {}, read: {} };
  stored.recent['dm:alice:u25'].push({ ...dmMsg('99-0', 'u25'), conversation: 'dm:alice:other' }, { id: 'x' });
  stored.recent['group:G9'] = 'not a list';
  const restored = new Map();
  const taken = cache.restoreCache(restored, 'alice', stored);
  assert.equal(taken.length, 19 + 40, 'every cached message but the malformed ones');
  assert.equal(restored.size, 28);
  const t1 = restored.get('group:T1');
  assert.deepEqual([t1.name, t1.owner, t1.admins, t1.topic, t1.visibility], ['Team', 'bob', ['alice'], undefined, undefined]);
  assert.equal(restored.get('dm:alice:zed').owner, undefined, 'only groups have settings');
  const r = restored.get('dm:alice:bob');
  assert.deepEqual([r.unread, r.touched, r.peer], [2, 7, 'bob']);
  assert.deepEqual(r.receipts, { delivered: { bob: '3-0' }, read: { bob: '2-0' } });
  const u25 = restored.get('dm:alice:u25');
  assert.equal(u25.messages.length, 40);
  assert.equal(u25.cached.size, 40, 'shown until the server confirms them');
  assert.equal(u25.lastMessage.id, '25045-0');
});

test('toasts: one per text, at most four, the oldest dropped first; errors stay longer', () => {
  let list = [];
  for (let id = 1; id <= 5; id++) list = toasts.addToast(list, { id, kind: 'error', text: `t${id}` });
  assert.deepEqual(
    list.map((t) => t.id),
    [2, 3, 4, 5],
  );
  assert.equal(toasts.isShowing(list, 't3'), true);
  assert.equal(toasts.isShowing(list, 't1'), false);
  const before = list;
  list = toasts.removeToast(list, 3);
  assert.deepEqual(
    list.map((t) => t.id),
    [2, 4, 5],
  );
  assert.equal(before.length, 4, 'a new list each time: the UI compares by reference');
  assert.ok(toasts.toastLifetime('error') > toasts.toastLifetime('info'));
});

test('a refusal reads as an expired session once signed in, otherwise as the server\'s reason', () => {
  assert.equal(errors.describeRefusal('unauthorized: bad token', false), 'Sign-in refused: bad token');
  assert.equal(errors.describeRefusal('unauthorized', false), 'Sign-in refused: unauthorized');
  assert.equal(errors.describeRefusal('unauthorized: bad token', true), 'Your session has expired. Sign in again.');
});

test('contact events: a state per user, none drops it, presence kept while the state stays', () => {
  const roster = new Map();
  const online = { online: true, lastSeen: null, status: 'busy', text: 'in a meeting' };
  assert.equal(contacts.applyContactEvent(roster, { user: 'bob', state: 'outgoing' }), true);
  assert.deepEqual(roster.get('bob'), { user: 'bob', state: 'outgoing' });
  assert.equal(contacts.applyContactEvent(roster, { user: 'bob', state: 'contact', presence: online }), true);
  assert.deepEqual(roster.get('bob'), { user: 'bob', state: 'contact', presence: online });
  // Our own accept, applied without presence: what the event said stays.
  contacts.applyContactEvent(roster, { user: 'bob', state: 'contact' });
  assert.deepEqual(roster.get('bob').presence, online);
  assert.equal(contacts.applyContactEvent(roster, { user: 'bob', state: 'none' }), true);
  assert.equal(roster.has('bob'), false);
  assert.equal(contacts.applyContactEvent(roster, { user: 'bob', state: 'none' }), false, 'already gone');
  assert.equal(contacts.applyContactEvent(roster, { user: 'bob', state: 'friend' }), false);
  assert.equal(contacts.applyContactEvent(roster, { state: 'contact' }), false);
  assert.equal(contacts.applyContactEvent(roster, null), false);
  assert.equal(roster.size, 0);
});

test('the roster is shown by state, each list sorted by user id', () => {
  const roster = new Map();
  for (const [user, state] of [
    ['zed', 'contact'],
    ['amy', 'incoming'],
    ['bob', 'contact'],
    ['cat', 'outgoing'],
    ['Ann', 'contact'],
  ]) {
    contacts.applyContactEvent(roster, { user, state });
  }
  const g = contacts.groupRoster(roster);
  assert.deepEqual(g.contact.map((e) => e.user), ['Ann', 'bob', 'zed']);
  assert.deepEqual(g.incoming.map((e) => e.user), ['amy']);
  assert.deepEqual(g.outgoing.map((e) => e.user), ['cat']);
  assert.equal(contacts.checkContactId(''), 'Enter a user id.');
  assert.match(contacts.checkContactId('not an id'), /User ids are/);
  assert.equal(contacts.checkContactId('bob'), null);
});

test('presence: status and text only while online; the dot and the line that show them', () => {
  assert.deepEqual(presence.toPresence({ online: true, lastSeen: null, status: 'away', text: ' at lunch ' }), {
    online: true,
    lastSeen: null,
    status: 'away',
    text: 'at lunch',
  });
  assert.deepEqual(presence.toPresence({ online: false, lastSeen: 5, status: 'busy', text: 'x' }), {
    online: false,
    lastSeen: 5,
  });
  assert.deepEqual(presence.toPresence({ online: true, status: 'sleeping', text: '' }), { online: true, lastSeen: null });
  assert.deepEqual(presence.toPresence(null), { online: false, lastSeen: null });

  assert.equal(presence.shownStatus(undefined), undefined, 'unknown: no dot');
  assert.equal(presence.shownStatus({ online: false, lastSeen: null }), 'offline');
  assert.equal(presence.shownStatus({ online: true, lastSeen: null }), 'available', 'a server without statuses');
  assert.equal(presence.shownStatus({ online: true, lastSeen: null, status: 'idle' }), 'idle');
  assert.equal(presence.statusLabel('busy'), 'Busy');

  assert.equal(presence.onlineText({ online: true, lastSeen: null }), 'online');
  assert.equal(presence.onlineText({ online: true, lastSeen: null, status: 'available', text: 'hi' }), 'online · hi');
  assert.equal(presence.onlineText({ online: true, lastSeen: null, status: 'busy', text: 'in a meeting' }), 'busy · in a meeting');
  assert.equal(presence.onlineText({ online: true, lastSeen: null, status: 'idle' }), 'idle');
});

test('a device is idle when hidden or after the delay without input', () => {
  assert.equal(idle.isIdle(1000, 0, 5000, false), false);
  assert.equal(idle.isIdle(5000, 0, 5000, false), true);
  assert.equal(idle.isIdle(1000, 0, 5000, true), true, 'hidden is idle at once');
  assert.equal(idle.DEFAULT_IDLE_SECONDS, 300);
});
