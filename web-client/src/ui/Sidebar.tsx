import type { ChatClient, Conversation } from '../chat';
import { formatListTime, typingText } from '../format';
import { shownStatus, statusLabel } from '../presence';
import { Avatar } from './Avatar';
import { ConnectionPill } from './ConnectionBanner';
import { ClockIcon, AlertIcon, ContactsIcon, PlusIcon, SearchIcon, SettingsIcon } from './icons';
import { StatusButton } from './StatusPicker';

interface Props {
  client: ChatClient;
  onNewChat(): void;
  onSearch(): void;
  onContacts(): void;
  onStatus(): void;
  onSettings(): void;
}

export function Sidebar({ client, onNewChat, onSearch, onContacts, onStatus, onSettings }: Props) {
  const list = client.sortedConversations();
  const requests = client.incomingRequests();
  const contactsLabel = requests > 0 ? `Contacts, ${requests} request${requests === 1 ? '' : 's'}` : 'Contacts';
  return (
    <aside class="sidebar" aria-label="Conversations">
      <header class="sidebar-head">
        <Avatar name={client.me || '?'} size="md" status={client.myPresence ? shownStatus(client.myPresence) : undefined} />
        <div class="me">
          <div class="me-name" data-testid="me">
            {client.me}
          </div>
          <StatusButton client={client} onClick={onStatus} />
          <ConnectionPill client={client} />
        </div>
        <button class="icon-btn has-badge" aria-label={contactsLabel} title="Contacts" onClick={onContacts}>
          <ContactsIcon />
          {requests > 0 && (
            <span class="icon-badge" data-testid="contact-requests" aria-hidden="true">
              {requests > 9 ? '9+' : requests}
            </span>
          )}
        </button>
        <button class="icon-btn" aria-label="Search messages" title="Search messages" onClick={onSearch}>
          <SearchIcon />
        </button>
        <button class="icon-btn" aria-label="Settings" title="Settings" onClick={onSettings}>
          <SettingsIcon />
        </button>
      </header>
      <div class="sidebar-actions">
        <button class="btn btn-primary btn-block" onClick={onNewChat}>
          <PlusIcon size={18} /> New chat
        </button>
      </div>
      {list.length === 0 ? (
        <div class="sidebar-empty">
          <p>No conversations yet.</p>
          <p class="muted">Start a direct message or create a group to begin.</p>
        </div>
      ) : (
        <nav class="conv-nav" aria-label="Conversation list">
          <ul class="conv-list">
            {list.map((c) => (
              <li key={c.id}>
                <ConversationItem client={client} c={c} />
              </li>
            ))}
          </ul>
        </nav>
      )}
    </aside>
  );
}

function ConversationItem({ client, c }: { client: ChatClient; c: Conversation }) {
  const title = client.title(c);
  const active = client.openId === c.id;
  const typing = client.typingUsers(c);
  const pending = client.outboxFor(c.id);
  const lastPending = pending.at(-1);
  const presence = c.peer ? client.presence.get(c.peer) : undefined;
  const status = c.kind === 'dm' ? shownStatus(presence) : undefined;
  const last = c.lastMessage;
  const unread = active ? 0 : c.unread;

  let preview;
  if (typing.length > 0) {
    preview = <span class="preview-typing">{c.kind === 'dm' ? 'typing…' : typingText(typing)}</span>;
  } else if (lastPending) {
    preview = (
      <span class={lastPending.state === 'failed' ? 'preview-failed' : ''}>
        {lastPending.state === 'failed' ? <AlertIcon size={14} /> : <ClockIcon size={14} />} {lastPending.body}
      </span>
    );
  } else if (last) {
    const who = last.from === client.me ? 'You: ' : c.kind === 'group' ? `${last.from}: ` : '';
    preview = (
      <span>
        {who && <span class="preview-who">{who}</span>}
        {last.body}
      </span>
    );
  } else {
    preview = <span class="muted">{c.kind === 'group' ? 'No messages yet' : 'Say hello 👋'}</span>;
  }

  const time = lastPending?.createdAt ?? last?.ts;

  return (
    <button
      class={`conv-item${active ? ' is-active' : ''}${unread > 0 ? ' has-unread' : ''}`}
      aria-current={active ? 'true' : undefined}
      data-conversation={c.id}
      onClick={() => client.openConversation(c.id)}
    >
      <Avatar name={title} group={c.kind === 'group'} status={status} />
      <span class="conv-main">
        <span class="conv-top">
          <span class="conv-title">
            {title}
            <span class="sr-only">
              {c.kind === 'group' ? ', group' : status ? `, ${status === 'available' ? 'online' : statusLabel(status).toLowerCase()}` : ''}
            </span>
          </span>
          {time && <span class="conv-time">{formatListTime(time)}</span>}
        </span>
        <span class="conv-bottom">
          <span class="conv-preview">{preview}</span>
          {unread > 0 && (
            <span class="badge" data-testid="unread">
              {unread > 99 ? '99+' : unread}
              <span class="sr-only"> unread</span>
            </span>
          )}
        </span>
      </span>
    </button>
  );
}
