import type { JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { ChatClient, Conversation, OutboxItem, StatusInfo } from '../chat';
import { formatDay, formatFull, formatTime, sameDay } from '../format';
import type { Message } from '../protocol';
import { Avatar } from './Avatar';
import {
  AlertIcon,
  ArrowDownIcon,
  CheckIcon,
  ClockIcon,
  DoubleCheckIcon,
  RetryIcon,
  TrashIcon,
} from './icons';

type Row =
  | { kind: 'day'; key: string; ts: number }
  | { kind: 'message'; key: string; m: Message; first: boolean }
  | { kind: 'outbox'; key: string; item: OutboxItem };

function buildRows(client: ChatClient, c: Conversation): Row[] {
  const rows: Row[] = [];
  let prev: { from: string; ts: number } | null = null;
  const day = (ts: number) => {
    if (!prev || !sameDay(prev.ts, ts)) {
      rows.push({ kind: 'day', key: `day-${ts}`, ts });
      prev = null;
    }
  };
  for (const m of c.messages) {
    day(m.ts);
    const first = !prev || prev.from !== m.from || m.ts - prev.ts > 5 * 60_000;
    rows.push({ kind: 'message', key: m.clientId && m.from === client.me ? m.clientId : m.id, m, first });
    prev = { from: m.from, ts: m.ts };
  }
  for (const item of client.outboxFor(c.id)) {
    day(item.createdAt);
    rows.push({ kind: 'outbox', key: item.clientId, item });
    prev = { from: client.me, ts: item.createdAt };
  }
  return rows;
}

export function MessageList({ client, c }: { client: ChatClient; c: Conversation }) {
  const ref = useRef<HTMLDivElement>(null);
  const snap = useRef({ conv: '', first: '', last: '', height: 0, top: 0, atBottom: true });
  const [atBottom, setAtBottom] = useState(true);
  const rows = buildRows(client, c);
  const firstKey = c.messages[0]?.id ?? '';
  const lastKey = rows.at(-1)?.key ?? '';

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const s = snap.current;
    if (s.conv !== c.id) {
      el.scrollTop = el.scrollHeight;
      s.atBottom = true;
      setAtBottom(true);
    } else if (s.first && firstKey !== s.first && lastKey === s.last && !s.atBottom) {
      // Older messages were prepended: keep what the reader was looking at in place.
      el.scrollTop = s.top + (el.scrollHeight - s.height);
    } else if (s.atBottom || (lastKey !== s.last && rows.at(-1)?.kind === 'outbox')) {
      // Following the conversation, or we just sent something: show the newest.
      el.scrollTop = el.scrollHeight;
      s.atBottom = true;
    }
    Object.assign(s, { conv: c.id, first: firstKey, last: lastKey, height: el.scrollHeight, top: el.scrollTop });
    // A short page that does not fill the view: fetch more right away.
    if (c.hasMore && el.scrollHeight <= el.clientHeight + 40) void client.loadOlder(c.id);
  });

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    // The composer or window size changed: stay at the bottom if we were there.
    const observer = new ResizeObserver(() => {
      if (snap.current.atBottom) el.scrollTop = el.scrollHeight;
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const onScroll = () => {
    const el = ref.current;
    if (!el) return;
    const s = snap.current;
    s.top = el.scrollTop;
    s.height = el.scrollHeight;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    s.atBottom = bottom;
    setAtBottom(bottom);
    client.setAtBottom(bottom);
    if (el.scrollTop < 200) void client.loadOlder(c.id);
  };

  const toBottom = () => {
    const el = ref.current;
    if (el) el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
  };

  return (
    <div class="messages-wrap">
      <div class="messages" ref={ref} onScroll={onScroll} role="log" aria-label="Messages" tabIndex={0}>
        <div class="history-edge">
          {c.history === 'loading' || c.loadingOlder ? (
            <span class="spinner" role="status" aria-label="Loading messages" />
          ) : c.history === 'error' ? (
            <span class="muted">Could not load messages.</span>
          ) : c.history === 'loaded' && !c.hasMore && c.messages.length > 0 ? (
            <span class="muted small">Beginning of the conversation</span>
          ) : null}
        </div>
        {c.history === 'loaded' && rows.length === 0 && (
          <div class="chat-empty">
            <Avatar name={client.title(c)} group={c.kind === 'group'} size="lg" />
            <p>
              {c.kind === 'dm'
                ? `This is the beginning of your conversation with ${c.peer}.`
                : `Welcome to ${client.title(c)}. Share the group id so others can join.`}
            </p>
          </div>
        )}
        <ol class="message-rows">
          {rows.map((row) =>
            row.kind === 'day' ? (
              <li key={row.key} class="day-sep">
                <span>{formatDay(row.ts)}</span>
              </li>
            ) : row.kind === 'message' ? (
              <MessageRow key={row.key} client={client} c={c} m={row.m} first={row.first} />
            ) : (
              <OutboxRow key={row.key} client={client} item={row.item} />
            ),
          )}
        </ol>
      </div>
      {!atBottom && (
        <button class="jump-btn" onClick={toBottom} aria-label={c.unread > 0 ? `${c.unread} new messages, jump to latest` : 'Jump to latest'}>
          <ArrowDownIcon size={18} />
          {c.unread > 0 && <span class="badge">{c.unread}</span>}
        </button>
      )}
    </div>
  );
}

function MessageRow({ client, c, m, first }: { client: ChatClient; c: Conversation; m: Message; first: boolean }) {
  const mine = m.from === client.me;
  const status = client.status(c, m);
  return (
    <li
      class={`msg ${mine ? 'msg-out' : 'msg-in'}${first ? ' msg-first' : ''}${!mine && c.kind === 'group' ? ' msg-group' : ''}`}
      data-id={m.id}
      data-client-id={m.clientId}
      data-status={status?.status}
    >
      {!mine && c.kind === 'group' && first && (
        <>
          <span class="msg-avatar">
            <Avatar name={m.from} size="sm" />
          </span>
          <span class="msg-author">{m.from}</span>
        </>
      )}
      <div class="bubble">
        <span class="sr-only">{mine ? 'You' : m.from}: </span>
        <span class="msg-body">
          <Linkified text={m.body} />
        </span>
        <span class="msg-meta">
          <time dateTime={new Date(m.ts).toISOString()} title={formatFull(m.ts)}>
            {formatTime(m.ts)}
          </time>
          {status && <StatusMark c={c} status={status} />}
        </span>
      </div>
    </li>
  );
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** Message text with http(s) links made clickable; everything else stays plain text. */
function Linkified({ text }: { text: string }) {
  const parts: (string | JSX.Element)[] = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const start = match.index ?? 0;
    if (start > last) parts.push(text.slice(last, start));
    parts.push(
      <a key={start} href={match[0]} target="_blank" rel="noopener noreferrer">
        {match[0]}
      </a>,
    );
    last = start + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return <>{parts}</>;
}

function StatusMark({ c, status }: { c: Conversation; status: StatusInfo }) {
  let label: string;
  if (status.status === 'read') label = c.kind === 'group' ? `Read by ${status.readBy.join(', ')}` : 'Read';
  else if (status.status === 'delivered')
    label =
      c.kind === 'group'
        ? `Delivered to ${status.deliveredTo.join(', ')}${status.readBy.length ? `; read by ${status.readBy.join(', ')}` : ''}`
        : 'Delivered';
  else label = 'Sent';
  return (
    <span class={`status status-${status.status}`} title={label} data-testid="status">
      {status.status === 'sent' ? <CheckIcon size={15} /> : <DoubleCheckIcon size={15} />}
      <span class="sr-only">{label}</span>
    </span>
  );
}

function OutboxRow({ client, item }: { client: ChatClient; item: OutboxItem }) {
  const failed = item.state === 'failed';
  return (
    <li class={`msg msg-out msg-pending${failed ? ' msg-failed' : ''}`} data-client-id={item.clientId} data-status={item.state}>
      <div class="bubble">
        <span class="sr-only">You: </span>
        <span class="msg-body">{item.body}</span>
        <span class="msg-meta">
          <time dateTime={new Date(item.createdAt).toISOString()}>{formatTime(item.createdAt)}</time>
          <span class="status" title={failed ? 'Not sent' : 'Sending'} data-testid="status">
            {failed ? <AlertIcon size={15} /> : <ClockIcon size={15} />}
            <span class="sr-only">{failed ? 'Not sent' : 'Sending'}</span>
          </span>
        </span>
      </div>
      {failed && (
        <div class="msg-actions">
          <span class="msg-error">{item.error?.message ? `Not sent: ${item.error.message}` : 'Not sent'}</span>
          <button class="btn btn-small btn-ghost" onClick={() => client.retry(item.clientId)}>
            <RetryIcon size={14} /> Retry
          </button>
          <button class="btn btn-small btn-ghost" onClick={() => client.discard(item.clientId)}>
            <TrashIcon size={14} /> Delete
          </button>
        </div>
      )}
    </li>
  );
}
