import type { JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { ChatClient, Conversation, OutboxItem, StatusInfo } from '../chat';
import { formatDay, formatFull, formatLastSeen, formatTime, sameDay, typingText } from '../format';
import { LIMITS, type Message } from '../protocol';
import { Avatar } from './Avatar';
import { useTick } from './hooks';
import {
  AlertIcon,
  ArrowDownIcon,
  BackIcon,
  CheckIcon,
  ClockIcon,
  CopyIcon,
  DoubleCheckIcon,
  RetryIcon,
  SendIcon,
  TrashIcon,
  UsersIcon,
} from './icons';

interface Props {
  client: ChatClient;
  c: Conversation;
  infoOpen: boolean;
  onToggleInfo(): void;
}

export function ConversationView({ client, c, infoOpen, onToggleInfo }: Props) {
  const title = client.title(c);
  return (
    <section class="chat" aria-label={`Conversation: ${title}`} data-conversation={c.id}>
      <header class="chat-head">
        <button class="icon-btn back-btn" aria-label="Back to conversations" onClick={() => client.openConversation(null)}>
          <BackIcon />
        </button>
        <Avatar
          name={title}
          group={c.kind === 'group'}
          online={c.peer ? client.presence.get(c.peer)?.online : undefined}
        />
        <div class="chat-title">
          <h2 data-testid="chat-title">{title}</h2>
          <Subtitle client={client} c={c} />
        </div>
        {c.kind === 'group' && (
          <button
            class={`icon-btn${infoOpen ? ' is-pressed' : ''}`}
            aria-label="Group info and members"
            aria-expanded={infoOpen}
            aria-controls="group-info"
            title="Group info"
            onClick={onToggleInfo}
          >
            <UsersIcon />
          </button>
        )}
      </header>
      <MessageList client={client} c={c} />
      <TypingLine client={client} c={c} />
      <Composer key={c.id} client={client} c={c} />
    </section>
  );
}

function Subtitle({ client, c }: { client: ChatClient; c: Conversation }) {
  useTick(30_000);
  if (c.kind === 'group') {
    return (
      <p class="chat-sub">
        {c.members ? `${c.members.length} member${c.members.length === 1 ? '' : 's'}` : 'Group'}
        <span class="group-id-sep" aria-hidden="true">
          {' '}
          ·{' '}
        </span>
        <GroupId id={c.groupId ?? ''} />
      </p>
    );
  }
  const p = c.peer ? client.presence.get(c.peer) : undefined;
  return (
    <p class={`chat-sub${p?.online ? ' is-online' : ''}`} data-testid="presence">
      {p ? (p.online ? 'online' : formatLastSeen(p.lastSeen)) : 'direct message'}
    </p>
  );
}

/** The group id, to share so others can join, with a copy button. */
export function GroupId({ id }: { id: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(id);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      // Clipboard blocked (insecure origin): the id stays selectable.
    }
  };
  return (
    <span class="group-id">
      ID <code data-testid="group-id">{id}</code>
      <button class="icon-btn icon-btn-xs" aria-label={copied ? 'Copied' : 'Copy group id'} title="Copy group id" onClick={copy}>
        {copied ? <CheckIcon size={14} /> : <CopyIcon size={14} />}
      </button>
    </span>
  );
}

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

function MessageList({ client, c }: { client: ChatClient; c: Conversation }) {
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

function TypingLine({ client, c }: { client: ChatClient; c: Conversation }) {
  const text = typingText(client.typingUsers(c));
  return (
    <div class="typing-line" aria-live="polite" data-testid="typing">
      {text && (
        <>
          <span class="typing-dots" aria-hidden="true">
            <i />
            <i />
            <i />
          </span>
          {text}
        </>
      )}
    </div>
  );
}

const drafts = new Map<string, string>();

function Composer({ client, c }: { client: ChatClient; c: Conversation }) {
  const [text, setText] = useState(drafts.get(c.id) ?? '');
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  const length = [...text].length;

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
  }, [text]);

  useEffect(() => {
    // Focus the composer when a conversation opens on a wide screen (not on phones,
    // where the keyboard would cover the messages).
    if (window.matchMedia('(min-width: 768px)').matches) ref.current?.focus();
  }, [c.id]);

  const update = (value: string) => {
    setText(value);
    drafts.set(c.id, value);
    setError(null);
    if (value.trim()) client.typing(c.id);
    else client.sendTypingStop();
  };

  const submit = (e?: Event) => {
    e?.preventDefault();
    const problem = client.send(c.id, text);
    if (problem) return setError(problem);
    if (!text.trim()) return;
    update('');
    client.sendTypingStop();
    ref.current?.focus();
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  };

  const over = length > LIMITS.body;
  return (
    <form class="composer" onSubmit={submit}>
      {error && (
        <p class="composer-error" role="alert">
          {error}
        </p>
      )}
      <div class="composer-row">
        <label class="sr-only" for="composer-input">
          Message {client.title(c)}
        </label>
        <textarea
          id="composer-input"
          ref={ref}
          rows={1}
          value={text}
          placeholder={`Message ${client.title(c)}`}
          onInput={(e) => update(e.currentTarget.value)}
          onKeyDown={onKeyDown}
          onBlur={() => client.sendTypingStop()}
          aria-describedby="composer-help"
          aria-invalid={over}
        />
        <button class="send-btn" type="submit" aria-label="Send" disabled={!text.trim() || over}>
          <SendIcon size={18} />
        </button>
      </div>
      <p id="composer-help" class="composer-help">
        <span>Enter to send · Shift+Enter for a new line</span>
        {length > LIMITS.body - 500 && (
          <span class={over ? 'over' : ''}>
            {length}/{LIMITS.body}
          </span>
        )}
      </p>
    </form>
  );
}
