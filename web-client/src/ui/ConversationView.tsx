import { useState } from 'preact/hooks';
import type { ChatClient, Conversation } from '../chat';
import { formatLastSeen, typingText } from '../format';
import { onlineText, shownStatus } from '../presence';
import { Avatar } from './Avatar';
import { Composer } from './Composer';
import { useTick } from './hooks';
import { BackIcon, CheckIcon, CopyIcon, UsersIcon } from './icons';
import { MessageList } from './MessageList';

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
          status={c.peer ? shownStatus(client.presence.get(c.peer)) : undefined}
        />
        <div class="chat-title">
          <h2 data-testid="chat-title">{title}</h2>
          {c.kind === 'group' && c.topic && (
            <p class="chat-topic" data-testid="chat-topic" title={c.topic}>
              {c.topic}
            </p>
          )}
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
    <p class={`chat-sub${p?.online ? ' is-online' : ''}`} data-testid="presence" data-status={shownStatus(p)}>
      {p ? (p.online ? onlineText(p) : formatLastSeen(p.lastSeen)) : 'direct message'}
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
