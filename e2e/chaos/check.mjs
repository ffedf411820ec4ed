// The history checker of the fault run. It reads what every client recorded (one JSON event a
// line, written by run.mjs) and reports, by the rules below, acked messages lost, messages
// delivered or stored twice, messages out of order, whether presence converged, and the longest
// write outage. It decides from the recorded history alone, so it can be re-run on a saved
// file:
//
//   node e2e/chaos/check.mjs target/chaos/<run>/history.jsonl
//
// Events (every one has `t`, ms since the run started):
//   meta      {users: {user: [device]}, convs: {conversation: [member users]}}
//   conn      {dev, conn, node}                  a device's connection `conn` got `ready`
//   live      {dev, conn, m}                     a `message` event on that connection
//   sync      {dev, conn, round, msgs: [m]}      one `sync` page; `round` numbers the pages of
//                                                one catch-up (one per connection, plus the final)
//   send      {dev, cid, conv}                   a `message:send` with clientId `cid` starts
//   ack       {dev, cid, conv, id, duplicate}    ... and is acked with message id `id`
//   giveup    {dev, cid}, refused {dev, cid, code} it never was (outcome unknown) / was refused
//   history   {conv, msgs: [m]}                  the conversation's whole history at the end
//   presence  {converged, ms, mismatches}        the end-of-run presence check (run.mjs)
// where m is {id, conv, from, cid}.
//
// Rules:
//   lost       an acked message missing from its conversation's final history, or missing
//              from some device of some member of the conversation (the sending device
//              excepted), counting both live deliveries and every sync (the final one included)
//   dup        one connection's live stream carries the same id twice; or one sender's
//              clientId maps to two message ids (in acks, deliveries or history); or a final
//              history holds an id twice. The same id again after a reconnect (live, or by a
//              sync that repeats what came live) is allowed: clients dedupe by id.
//   reordered  within one connection's live stream, the ids of one conversation do not
//              strictly increase in receive order; the same within one catch-up's sync pages;
//              or a final history is not in strictly increasing id order. A live reorder is
//              marked `concurrent` when the larger id's send started before the smaller id's
//              ack (the two sends overlapped), else `sequential`
//   outage     the longest stretch without any ack cluster-wide while at least one send was
//              pending (from the later of the previous ack and the oldest pending send's start)

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Compares message ids `<ms>-<seq>` as pairs of numbers. */
export function compareIds(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

/** Checks a list of events; returns the findings (see the rules above). */
export function check(events) {
  const meta = events.find((e) => e.type === 'meta');
  if (!meta) throw new Error('history has no meta event');
  const lost = [];
  const dup = [];
  const reordered = [];

  // Acks: clientId → ids; the acked messages.
  const acked = new Map(); // id → {conv, dev, cid, from}
  const idsOfCid = new Map(); // `${from}\0${cid}` → Set(id)
  const noteCid = (from, cid, id) => {
    if (!cid) return;
    const k = `${from}\0${cid}`;
    if (!idsOfCid.has(k)) idsOfCid.set(k, new Set());
    idsOfCid.get(k).add(id);
  };
  const userOfDev = new Map();
  for (const [u, devs] of Object.entries(meta.users)) for (const d of devs) userOfDev.set(d, u);
  const sendStart = new Map(); // dev/cid → t of the first try
  for (const e of events) if (e.type === 'send') sendStart.set(`${e.dev}/${e.cid}`, e.t);
  for (const e of events) {
    if (e.type !== 'ack') continue;
    const from = userOfDev.get(e.dev);
    noteCid(from, e.cid, e.id);
    if (!acked.has(e.id)) {
      acked.set(e.id, { conv: e.conv, dev: e.dev, cid: e.cid, from, node: e.node, t: e.t, sent: sendStart.get(`${e.dev}/${e.cid}`) });
    }
  }

  // Deliveries per device; live streams per connection; sync rounds.
  const received = new Map(); // dev → Set(id)
  const liveSeen = new Map(); // `${dev}/${conn}` → Set(id)
  const lastLive = new Map(); // `${dev}/${conn}/${conv}` → id
  const lastSync = new Map(); // `${dev}/${round}/${conv}` → id
  const got = (dev) => {
    if (!received.has(dev)) received.set(dev, new Set());
    return received.get(dev);
  };
  for (const e of events) {
    if (e.type === 'live') {
      const { m } = e;
      got(e.dev).add(m.id);
      noteCid(m.from, m.cid, m.id);
      const ck = `${e.dev}/${e.conn}`;
      if (!liveSeen.has(ck)) liveSeen.set(ck, new Set());
      if (liveSeen.get(ck).has(m.id)) {
        dup.push({ kind: 'live twice on one connection', dev: e.dev, conn: e.conn, id: m.id, t: e.t });
        continue;
      }
      liveSeen.get(ck).add(m.id);
      const ok = `${ck}/${m.conv}`;
      const prev = lastLive.get(ok);
      if (prev && compareIds(prev, m.id) > 0) {
        // Where each of the two was sent from, and where this device is: for the diagnosis.
        const via = (id) => (acked.has(id) ? `${acked.get(id).node ?? '?'}@${acked.get(id).t}` : '?');
        // Concurrent: the larger id was sent before the smaller one was acked (the two sends
        // overlapped); else the smaller one was acked before the larger one was even sent.
        const small = acked.get(m.id);
        const large = acked.get(prev);
        const concurrent = !small || !large || large.sent === undefined || large.sent < small.t;
        reordered.push({ kind: 'live', concurrent, dev: e.dev, conn: e.conn, node: e.node, conv: m.conv, after: prev, afterSentVia: via(prev), id: m.id, sentVia: via(m.id), t: e.t });
      } else {
        lastLive.set(ok, m.id);
      }
    } else if (e.type === 'sync') {
      for (const m of e.msgs) {
        got(e.dev).add(m.id);
        noteCid(m.from, m.cid, m.id);
        const ok = `${e.dev}/${e.round}/${m.conv}`;
        const prev = lastSync.get(ok);
        if (prev && compareIds(prev, m.id) >= 0) {
          reordered.push({ kind: 'sync', dev: e.dev, round: e.round, conv: m.conv, after: prev, id: m.id, t: e.t });
        } else {
          lastSync.set(ok, m.id);
        }
      }
    }
  }

  // Final histories: ordered, each id once, each acked message there.
  const histories = new Map();
  for (const e of events) {
    if (e.type !== 'history') continue;
    histories.set(e.conv, new Set(e.msgs.map((m) => m.id)));
    const seen = new Set();
    for (let i = 0; i < e.msgs.length; i++) {
      const m = e.msgs[i];
      noteCid(m.from, m.cid, m.id);
      if (seen.has(m.id)) dup.push({ kind: 'history holds an id twice', conv: e.conv, id: m.id });
      seen.add(m.id);
      if (i > 0 && compareIds(e.msgs[i - 1].id, m.id) >= 0) {
        reordered.push({ kind: 'history', conv: e.conv, after: e.msgs[i - 1].id, id: m.id });
      }
    }
  }
  for (const [k, ids] of idsOfCid) {
    if (ids.size > 1) {
      const [from, cid] = k.split('\0');
      dup.push({ kind: 'one clientId, several message ids', from, cid, ids: [...ids] });
    }
  }

  for (const [id, a] of acked) {
    const hist = histories.get(a.conv);
    if (!hist) lost.push({ kind: 'no final history of the conversation', id, conv: a.conv });
    else if (!hist.has(id)) lost.push({ kind: 'not in the final history', id, conv: a.conv, cid: a.cid });
    for (const u of meta.convs[a.conv] ?? []) {
      for (const d of meta.users[u] ?? []) {
        if (d === a.dev) continue;
        if (!got(d).has(id)) lost.push({ kind: 'never reached a device', id, conv: a.conv, dev: d, cid: a.cid });
      }
    }
  }

  // Outage: the longest time without an ack while some send was pending.
  const sends = new Map(); // dev/cid → {start, end}
  const ackTimes = [];
  for (const e of events) {
    const k = `${e.dev}/${e.cid}`;
    if (e.type === 'send') sends.set(k, { start: e.t, end: Infinity });
    else if (e.type === 'ack' || e.type === 'giveup' || e.type === 'refused') {
      const s = sends.get(k);
      if (s && s.end === Infinity) s.end = e.t;
      if (e.type === 'ack') ackTimes.push(e.t);
    }
  }
  ackTimes.sort((x, y) => x - y);
  const intervals = [...sends.values()].sort((x, y) => x.start - y.start);
  let outage = { ms: 0, from: null, to: null };
  // Sends give up after 60 s, so a send pending after prevAck started at most this long before it.
  const MAX_SEND_MS = 120_000;
  const firstFrom = (t) => {
    let lo = 0;
    let hi = intervals.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (intervals[mid].start < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const lastT = events.reduce((m, e) => Math.max(m, e.t), 0);
  const ends = [...ackTimes];
  if (intervals.some((s) => s.end === Infinity)) ends.push(lastT);
  let prevAck = intervals.length ? intervals[0].start : 0;
  for (const t of ends) {
    let oldest = Infinity;
    for (let j = firstFrom(prevAck - MAX_SEND_MS); j < intervals.length && intervals[j].start < t; j++) {
      if (intervals[j].end > prevAck) oldest = Math.min(oldest, intervals[j].start);
    }
    if (oldest !== Infinity) {
      const from = Math.max(prevAck, oldest);
      if (t - from > outage.ms) outage = { ms: t - from, from, to: t };
    }
    prevAck = Math.max(prevAck, t);
  }

  const presence = events.find((e) => e.type === 'presence') ?? null;
  const count = (type) => events.filter((e) => e.type === type).length;
  return {
    acked: acked.size,
    lost,
    dup,
    reordered,
    outage,
    presence,
    givenUp: count('giveup'),
    refused: events.filter((e) => e.type === 'refused'),
    live: count('live'),
    connections: count('conn'),
  };
}

/** The one-line summary. */
export function summary(r) {
  const p = r.presence
    ? r.presence.converged
      ? `presence converged in ${(r.presence.ms / 1000).toFixed(1)} s`
      : `presence NOT converged (${r.presence.mismatches.length} wrong views)`
    : 'presence not checked';
  return (
    `chaos: ${r.acked} acked, ${r.lost.length} lost, ${r.dup.length} dup, ${r.reordered.length} reordered, ` +
    `outage max ${(r.outage.ms / 1000).toFixed(1)} s, ${p}`
  );
}

/** True when the run passes: nothing lost, twice or out of order, presence converged. */
export function passed(r) {
  return !r.lost.length && !r.dup.length && !r.reordered.length && !!r.presence?.converged && !r.refused.length;
}

export function readHistory(file) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node e2e/chaos/check.mjs <history.jsonl>');
    process.exit(2);
  }
  const r = check(readHistory(file));
  for (const [name, list] of [['lost', r.lost], ['dup', r.dup], ['reordered', r.reordered], ['refused', r.refused]]) {
    for (const x of list.slice(0, 20)) console.log(`${name}: ${JSON.stringify(x)}`);
    if (list.length > 20) console.log(`${name}: ... ${list.length - 20} more`);
  }
  console.log(summary(r));
  process.exit(passed(r) ? 0 : 1);
}
