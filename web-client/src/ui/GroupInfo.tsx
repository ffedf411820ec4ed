import { useEffect, useRef, useState } from 'preact/hooks';
import type { ChatClient, Conversation } from '../chat';
import { formatLastSeen } from '../format';
import { onlineText, shownStatus } from '../presence';
import { LIMITS } from '../protocol';
import { canDelete, canManage, memberActions, roleLabel, roleOf, sortMembers, type GroupRole } from '../roles';
import { Avatar } from './Avatar';
import { GroupId } from './ConversationView';
import { Field, hintId } from './Field';
import { CloseIcon } from './icons';

/**
 * The group panel beside the conversation: its name, topic, id and members for everyone; for
 * the owner and admins its settings (name, topic, public or private), adding members and the
 * actions on members their role allows; for the owner, deleting the group.
 */
export function GroupInfo({ client, c, onClose }: { client: ChatClient; c: Conversation; onClose(): void }) {
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    // Move focus into the panel, and give it back to the toggle when the panel closes.
    const previous = document.activeElement as HTMLElement | null;
    close.current?.focus();
    return () => previous?.focus();
  }, []);
  const me = client.me;
  const manage = canManage(c, me);
  const title = client.title(c);
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
        <h2>{manage ? 'Group settings' : 'Group info'}</h2>
        <button ref={close} class="icon-btn" aria-label="Close group info" onClick={onClose}>
          <CloseIcon />
        </button>
      </header>
      <div class="info-hero">
        <Avatar name={title} group size="lg" />
        <h3 data-testid="group-name">{title}</h3>
        {c.topic && (
          <p class="info-topic" data-testid="group-topic">
            {c.topic}
          </p>
        )}
        {c.visibility && (
          <span class={`tag tag-${c.visibility}`} data-testid="group-visibility">
            {c.visibility === 'public' ? 'Public' : 'Private'}
          </span>
        )}
        <GroupId id={c.groupId ?? ''} />
        <p class="muted small">
          {c.visibility === 'private'
            ? 'Private: the owner and admins add members.'
            : 'Public: anyone can find this group by name and join it.'}
        </p>
      </div>
      {manage && <SettingsForm key={c.id} client={client} c={c} />}
      <Members client={client} c={c} manage={manage} />
      <div class="info-actions">
        <button class="btn btn-danger-ghost btn-block" onClick={() => void client.leaveGroup(c.id)}>
          Leave group
        </button>
        {canDelete(c, me) && <DeleteGroup key={c.id} client={client} c={c} />}
      </div>
    </aside>
  );
}

/** Name and topic (saved together) and the public/private switch (applied at once). */
function SettingsForm({ client, c }: { client: ChatClient; c: Conversation }) {
  // A draft is null until edited: until then the field follows the group (others' changes).
  const [name, setName] = useState<string | null>(null);
  const [topic, setTopic] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const [visibilityError, setVisibilityError] = useState<string | null>(null);
  const [switching, setSwitching] = useState(false);

  const shownName = name ?? c.name ?? '';
  const shownTopic = topic ?? c.topic ?? '';
  const changes = {
    ...(name !== null && name.trim() !== (c.name ?? '') ? { name } : {}),
    ...(topic !== null && topic.trim() !== (c.topic ?? '') ? { topic } : {}),
  };
  const dirty = Object.keys(changes).length > 0;

  const save = async () => {
    setBusy(true);
    setError(null);
    setSaved(false);
    const problem = await client.updateGroup(c.id, changes);
    setBusy(false);
    if (problem) return setError(problem);
    setName(null);
    setTopic(null);
    setSaved(true);
  };

  const setPublic = async (on: boolean) => {
    setSwitching(true);
    setVisibilityError(null);
    const problem = await client.updateGroup(c.id, { visibility: on ? 'public' : 'private' });
    setSwitching(false);
    if (problem) setVisibilityError(problem);
  };

  const isPublic = c.visibility !== 'private';
  return (
    <section class="info-block" aria-labelledby="group-settings-title">
      <h3 class="info-section" id="group-settings-title">
        Settings
      </h3>
      <form
        class="stack info-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (dirty) void save();
        }}
      >
        <Field id="group-settings-name" label="Group name">
          <input
            id="group-settings-name"
            name="group-settings-name"
            required
            maxLength={LIMITS.groupName}
            value={shownName}
            onInput={(e) => {
              setName(e.currentTarget.value);
              setSaved(false);
            }}
          />
        </Field>
        <Field id="group-settings-topic" label="Topic" hint={`Optional, up to ${LIMITS.groupTopic} characters; empty clears it.`}>
          <input
            id="group-settings-topic"
            name="group-settings-topic"
            aria-describedby={hintId('group-settings-topic')}
            maxLength={LIMITS.groupTopic}
            value={shownTopic}
            onInput={(e) => {
              setTopic(e.currentTarget.value);
              setSaved(false);
            }}
            placeholder="What the group is about"
          />
        </Field>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <div class="dialog-actions">
          {saved && !dirty && (
            <span class="muted small" role="status">
              Saved.
            </span>
          )}
          <span class="spacer" />
          {dirty && (
            <button
              type="button"
              class="btn btn-ghost btn-small"
              onClick={() => {
                setName(null);
                setTopic(null);
                setError(null);
              }}
            >
              Cancel
            </button>
          )}
          <button type="submit" class="btn btn-primary btn-small" disabled={busy || !dirty || !shownName.trim()}>
            Save
          </button>
        </div>
      </form>
      <div class="info-form">
        <label class="switch-row">
          <span class="switch-text">
            <span class="switch-label" id="group-public-label">
              Public group
            </span>
            <small class="hint" id="group-public-hint">
              {isPublic ? 'Listed in Find groups; anyone may join.' : 'Not listed; members are added by the owner and admins.'}
            </small>
          </span>
          <input
            type="checkbox"
            role="switch"
            class="switch"
            checked={isPublic}
            disabled={switching || !c.visibility}
            aria-labelledby="group-public-label"
            aria-describedby="group-public-hint"
            onChange={(e) => void setPublic(e.currentTarget.checked)}
          />
        </label>
        {visibilityError && (
          <p class="form-error" role="alert">
            {visibilityError}
          </p>
        )}
      </div>
    </section>
  );
}

function Members({ client, c, manage }: { client: ChatClient; c: Conversation; manage: boolean }) {
  const [rowError, setRowError] = useState<string | null>(null);
  const [pending, setPending] = useState<string | null>(null);
  const me = client.me;
  const online = (u: string) => u === me || !!client.presence.get(u)?.online;
  const members = c.members ? sortMembers(c, c.members, online) : [];

  const act = async (user: string, action: () => Promise<string | null>) => {
    setRowError(null);
    setPending(user);
    const problem = await action();
    setPending(null);
    if (problem) setRowError(problem);
  };

  return (
    <section class="info-block" aria-labelledby="group-members-title">
      <h3 class="info-section" id="group-members-title">
        Members {c.members && <span class="muted">({c.members.length})</span>}
      </h3>
      {manage && <AddMember client={client} c={c} />}
      {rowError && (
        <p class="form-error info-error" role="alert">
          {rowError}
        </p>
      )}
      {c.members ? (
        <ul class="member-list" data-testid="members">
          {members.map((u) => {
            const p = u === me ? (client.myPresence ?? { online: true, lastSeen: null }) : client.presence.get(u);
            const role = roleOf(c, u);
            const can = memberActions(c, me, u);
            const busy = pending === u;
            return (
              <li key={u} class="member" data-member={u} data-role={role ?? undefined}>
                <span class="member-main">
                  <Avatar name={u} size="sm" status={shownStatus(p)} />
                  <span class="member-text">
                    <span class="member-name">
                      {u}
                      {u === me && <span class="muted"> (you)</span>}
                    </span>
                    <span class="member-status muted small">
                      {p ? (p.online ? onlineText(p) : formatLastSeen(p.lastSeen)) : ''}
                    </span>
                  </span>
                  {role && <RoleBadge role={role} />}
                </span>
                {(can.promote || can.demote || can.kick) && (
                  <span class="member-actions">
                    {can.promote && (
                      <button
                        class="btn btn-ghost btn-small"
                        disabled={busy}
                        aria-label={`Make ${u} an admin`}
                        onClick={() => void act(u, () => client.promote(c.id, u))}
                      >
                        Make admin
                      </button>
                    )}
                    {can.demote && (
                      <button
                        class="btn btn-ghost btn-small"
                        disabled={busy}
                        aria-label={`Remove ${u}'s admin role`}
                        onClick={() => void act(u, () => client.demote(c.id, u))}
                      >
                        Remove admin role
                      </button>
                    )}
                    {can.kick && (
                      <button
                        class="btn btn-danger-ghost btn-small"
                        disabled={busy}
                        aria-label={`Remove ${u} from the group`}
                        onClick={() => void act(u, () => client.kick(c.id, u))}
                      >
                        Remove
                      </button>
                    )}
                  </span>
                )}
              </li>
            );
          })}
        </ul>
      ) : (
        <p class="muted info-note">Loading members…</p>
      )}
    </section>
  );
}

function RoleBadge({ role }: { role: GroupRole }) {
  return (
    <span class={`tag role-${role}`} data-testid="role">
      {roleLabel(role)}
    </span>
  );
}

/** `group:invite`: the owner and admins add someone by user id. */
function AddMember({ client, c }: { client: ChatClient; c: Conversation }) {
  const [user, setUser] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const add = async () => {
    const id = user.trim();
    setBusy(true);
    setError(null);
    setAdded(null);
    const problem = await client.inviteToGroup(c.id, id);
    setBusy(false);
    if (problem) return setError(problem);
    setUser('');
    setAdded(id);
  };
  return (
    <form
      class="info-form contact-add"
      onSubmit={(e) => {
        e.preventDefault();
        void add();
      }}
    >
      <Field id="group-invite-user" label="Add a member">
        <div class="contact-add-row">
          <input
            id="group-invite-user"
            name="group-invite-user"
            autocapitalize="off"
            spellcheck={false}
            maxLength={64}
            value={user}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'group-invite-error' : added ? 'group-invite-done' : undefined}
            onInput={(e) => {
              setUser(e.currentTarget.value);
              setError(null);
            }}
            placeholder="User id, e.g. dave"
          />
          <button class="btn btn-primary" type="submit" disabled={busy || !user.trim()} aria-label="Add to the group">
            Add
          </button>
        </div>
      </Field>
      {error && (
        <p class="form-error" role="alert" id="group-invite-error">
          {error}
        </p>
      )}
      {added && !error && (
        <p class="muted small" role="status" id="group-invite-done">
          {added} was added.
        </p>
      )}
    </form>
  );
}

/** Deleting asks once more, with the consequences, before anything is sent. */
function DeleteGroup({ client, c }: { client: ChatClient; c: Conversation }) {
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const cancel = useRef<HTMLButtonElement>(null);
  const start = useRef<HTMLButtonElement>(null);
  const asked = useRef(false);
  useEffect(() => {
    // Focus the safe answer when asking, and the button again when the question goes.
    if (confirming) cancel.current?.focus();
    else if (asked.current) start.current?.focus();
    asked.current = confirming;
  }, [confirming]);

  if (!confirming) {
    return (
      <button ref={start} class="btn btn-danger-ghost btn-block" onClick={() => setConfirming(true)}>
        Delete group
      </button>
    );
  }
  const remove = async () => {
    setBusy(true);
    setError(null);
    const problem = await client.deleteGroup(c.id);
    setBusy(false);
    if (problem) setError(problem);
  };
  return (
    <div class="confirm" role="group" aria-labelledby="delete-group-question">
      <p id="delete-group-question">
        Delete <strong>{client.title(c)}</strong> and all its messages for everyone? This cannot be undone.
      </p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div class="confirm-actions">
        <button class="btn btn-danger btn-small btn-block" disabled={busy} onClick={() => void remove()}>
          Delete for everyone
        </button>
        <button
          ref={cancel}
          class="btn btn-ghost btn-small btn-block"
          onClick={() => {
            setConfirming(false);
            setError(null);
          }}
        >
          Cancel
        </button>
      </div>
    </div>
  );
}
