import { useEffect, useRef } from 'preact/hooks';
import type { ChatClient, Conversation } from '../chat';
import { formatLastSeen } from '../format';
import { onlineText, shownStatus } from '../presence';
import { Avatar } from './Avatar';
import { GroupId } from './ConversationView';
import { CloseIcon } from './icons';

export function GroupInfo({ client, c, onClose }: { client: ChatClient; c: Conversation; onClose(): void }) {
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    // Move focus into the panel, and give it back to the toggle when the panel closes.
    const previous = document.activeElement as HTMLElement | null;
    close.current?.focus();
    return () => previous?.focus();
  }, []);
  const members = [...(c.members ?? [])].sort((a, b) => {
    const online = (u: string) => (u === client.me || client.presence.get(u)?.online ? 0 : 1);
    return online(a) - online(b) || a.localeCompare(b);
  });
  return (
    <aside
      class="info-panel"
      id="group-info"
      aria-label="Group info"
      onKeyDown={(e) => {
        if (e.key === 'Escape') onClose();
      }}
    >
      <header class="info-head">
        <h2>Group info</h2>
        <button ref={close} class="icon-btn" aria-label="Close group info" onClick={onClose}>
          <CloseIcon />
        </button>
      </header>
      <div class="info-hero">
        <Avatar name={client.title(c)} group size="lg" />
        <h3>{client.title(c)}</h3>
        <GroupId id={c.groupId ?? ''} />
        <p class="muted small">Anyone with this id can join the group.</p>
      </div>
      <h3 class="info-section">
        Members {c.members && <span class="muted">({c.members.length})</span>}
      </h3>
      {c.members ? (
        <ul class="member-list" data-testid="members">
          {members.map((u) => {
            const p = u === client.me ? (client.myPresence ?? { online: true, lastSeen: null }) : client.presence.get(u);
            return (
              <li key={u} class="member">
                <Avatar name={u} size="sm" status={shownStatus(p)} />
                <span class="member-name">
                  {u}
                  {u === client.me && <span class="muted"> (you)</span>}
                </span>
                {c.owner === u && <span class="tag">owner</span>}
                <span class="member-status muted small">
                  {p ? (p.online ? onlineText(p) : formatLastSeen(p.lastSeen)) : ''}
                </span>
              </li>
            );
          })}
        </ul>
      ) : (
        <p class="muted">Loading members…</p>
      )}
      <div class="info-actions">
        <button class="btn btn-danger-ghost btn-block" onClick={() => void client.leaveGroup(c.id)}>
          Leave group
        </button>
      </div>
    </aside>
  );
}
