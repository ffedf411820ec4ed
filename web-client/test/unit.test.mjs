// Pure logic from src/ (protocol ids, message order, receipts → status), compiled on the fly
// with the project's TypeScript; no browser, no server.

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
