// The checker must find what it claims to find: small hand-written histories, each with one
// planted fault (and a clean one that passes).   node --test e2e/chaos/

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { check, passed, summary } from './check.mjs';

const meta = {
  type: 'meta',
  t: 0,
  users: { a: ['a/0'], b: ['b/0', 'b/1'] },
  convs: { 'dm:a:b': ['a', 'b'] },
};
const m = (id, cid, from = 'a') => ({ id, conv: 'dm:a:b', from, cid });
const presence = { type: 'presence', t: 99, converged: true, ms: 10, mismatches: [] };

/** A clean history: a sends two messages, b's devices get them live or by sync. */
function clean() {
  return [
    meta,
    { type: 'send', t: 1, dev: 'a/0', cid: 'a/0#1', conv: 'dm:a:b' },
    { type: 'ack', t: 2, dev: 'a/0', cid: 'a/0#1', conv: 'dm:a:b', id: '10-0' },
    { type: 'live', t: 3, dev: 'b/0', conn: 1, m: m('10-0', 'a/0#1') },
    { type: 'send', t: 4, dev: 'a/0', cid: 'a/0#2', conv: 'dm:a:b' },
    { type: 'ack', t: 9, dev: 'a/0', cid: 'a/0#2', conv: 'dm:a:b', id: '10-1' },
    { type: 'live', t: 10, dev: 'b/0', conn: 1, m: m('10-1', 'a/0#2') },
    // b/1 was away: its sync brings both; a reconnect of b/0 repeats one live (allowed).
    { type: 'sync', t: 11, dev: 'b/1', conn: 1, round: 1, msgs: [m('10-0', 'a/0#1'), m('10-1', 'a/0#2')] },
    { type: 'live', t: 12, dev: 'b/0', conn: 2, m: m('10-1', 'a/0#2') },
    { type: 'history', t: 13, conv: 'dm:a:b', msgs: [m('10-0', 'a/0#1'), m('10-1', 'a/0#2')] },
    presence,
  ];
}

test('a clean history passes, with the outage measured', () => {
  const r = check(clean());
  assert.equal(passed(r), true, JSON.stringify(r));
  assert.equal(r.acked, 2);
  // The second send waited 5 ms (4 → 9) with no ack in between.
  assert.equal(r.outage.ms, 5);
  assert.match(summary(r), /^chaos: 2 acked, 0 lost, 0 dup, 0 reordered, outage max 0\.0 s, presence converged/);
});

test('an acked message a device never got is lost', () => {
  const h = clean().filter((e) => !(e.type === 'sync' && e.dev === 'b/1'));
  const r = check(h);
  assert.equal(r.lost.length, 2);
  assert.ok(r.lost.every((l) => l.dev === 'b/1'));
  assert.equal(passed(r), false);
});

test('an acked message missing from the final history is lost', () => {
  const h = clean().map((e) => (e.type === 'history' ? { ...e, msgs: [m('10-0', 'a/0#1')] } : e));
  assert.deepEqual(check(h).lost.map((l) => l.kind), ['not in the final history']);
});

test('the same id twice on one connection is a dup; one clientId with two ids is a dup', () => {
  const h = clean();
  h.splice(4, 0, { type: 'live', t: 3, dev: 'b/0', conn: 1, m: m('10-0', 'a/0#1') });
  assert.deepEqual(check(h).dup.map((d) => d.kind), ['live twice on one connection']);
  const h2 = clean();
  h2.push({ type: 'ack', t: 14, dev: 'a/0', cid: 'a/0#1', conv: 'dm:a:b', id: '11-0' });
  const kinds = check(h2).dup.map((d) => d.kind);
  assert.ok(kinds.includes('one clientId, several message ids'), kinds.join());
});

test('a smaller id after a larger one on one connection is reordered; across connections it is not', () => {
  const h = [
    ...clean().slice(0, -2),
    { type: 'live', t: 12, dev: 'b/1', conn: 2, m: m('10-1', 'a/0#2') },
    { type: 'live', t: 13, dev: 'b/1', conn: 2, m: m('10-0', 'a/0#1') },
    clean().at(-2),
    presence,
  ];
  const r = check(h);
  assert.deepEqual(r.reordered.map((x) => [x.kind, x.id]), [['live', '10-0']]);
  assert.equal(r.dup.length, 0);
});

test('a history out of id order is reordered; presence not converged fails', () => {
  const h = clean().map((e) => (e.type === 'history' ? { ...e, msgs: [m('10-1', 'a/0#2'), m('10-0', 'a/0#1')] } : e));
  assert.deepEqual(check(h).reordered.map((x) => x.kind), ['history']);
  const p = clean().map((e) => (e.type === 'presence' ? { ...e, converged: false, mismatches: [{ dev: 'b/0' }] } : e));
  const r = check(p);
  assert.equal(passed(r), false);
  assert.match(summary(r), /presence NOT converged/);
});

test('a live reorder fails the run, concurrent sends or not; the report says which', () => {
  // 10-1 reaches b/1 before 10-0. Sequential: 10-0 acked at 2, 10-1 sent at 4.
  const seq = [
    ...clean().slice(0, -2),
    { type: 'live', t: 12, dev: 'b/1', conn: 2, m: m('10-1', 'a/0#2') },
    { type: 'live', t: 13, dev: 'b/1', conn: 2, m: m('10-0', 'a/0#1') },
    clean().at(-2),
    presence,
  ];
  assert.equal(check(seq).reordered[0].concurrent, false);
  assert.equal(passed(check(seq)), false);
  // Concurrent: 10-1's send started (t=1.5) before 10-0's ack (t=2).
  const conc = seq.map((e) => (e.type === 'send' && e.cid === 'a/0#2' ? { ...e, t: 1.5 } : e));
  const r = check(conc);
  assert.equal(r.reordered[0].concurrent, true);
  assert.equal(passed(r), false);
  assert.match(summary(r), /1 reordered, outage max [0-9.]+ s, presence converged in 0\.0 s$/);
});
