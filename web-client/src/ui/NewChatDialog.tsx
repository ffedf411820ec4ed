import { useState } from 'preact/hooks';
import type { ChatClient } from '../chat';
import { LIMITS, type GroupVisibility } from '../protocol';
import { Dialog } from './Dialog';
import { Field, hintId } from './Field';
import { FindGroups } from './FindGroups';

type Tab = 'direct' | 'group' | 'find';

const TABS: { id: Tab; label: string }[] = [
  { id: 'direct', label: 'Direct message' },
  { id: 'group', label: 'New group' },
  { id: 'find', label: 'Find groups' },
];

export function NewChatDialog({ client, onClose }: { client: ChatClient; onClose(): void }) {
  const [tab, setTab] = useState<Tab>('direct');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (action: () => Promise<string | null> | string | null) => {
    setBusy(true);
    setError(null);
    const problem = await action();
    setBusy(false);
    if (problem) setError(problem);
    else onClose();
  };

  const onTabKey = (e: KeyboardEvent) => {
    const i = TABS.findIndex((t) => t.id === tab);
    const next = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : null;
    if (next === null) return;
    e.preventDefault();
    const t = TABS[(next + TABS.length) % TABS.length];
    setTab(t.id);
    setError(null);
    document.getElementById(`tab-${t.id}`)?.focus();
  };

  return (
    <Dialog title="New conversation" onClose={onClose}>
      <div class="tabs" role="tablist" aria-label="Kind of conversation" onKeyDown={onTabKey}>
        {TABS.map((t) => (
          <button
            key={t.id}
            id={`tab-${t.id}`}
            role="tab"
            class="tab"
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            onClick={() => {
              setTab(t.id);
              setError(null);
            }}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        {tab === 'direct' && <DirectForm busy={busy} onSubmit={(user) => run(() => client.startDirect(user))} />}
        {tab === 'group' && (
          <GroupForm
            busy={busy}
            onSubmit={(name, members, visibility) => run(() => client.createGroup(name, members, visibility))}
          />
        )}
        {tab === 'find' && (
          <>
            <FindGroups client={client} busy={busy} onJoin={(id) => run(() => client.joinGroup(id))} onOpened={onClose} />
            <JoinForm busy={busy} onSubmit={(id) => run(() => client.joinGroup(id))} />
          </>
        )}
      </div>
    </Dialog>
  );
}

function DirectForm({ busy, onSubmit }: { busy: boolean; onSubmit(user: string): void }) {
  const [user, setUser] = useState('');
  return (
    <form
      class="stack"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(user);
      }}
    >
      <Field id="dm-user" label="User id">
        <input
          id="dm-user"
          name="dm-user"
          autoFocus
          autocapitalize="off"
          spellcheck={false}
          required
          maxLength={64}
          value={user}
          onInput={(e) => setUser(e.currentTarget.value)}
          placeholder="bob"
        />
      </Field>
      <button class="btn btn-primary" type="submit" disabled={busy || !user.trim()}>
        Start chat
      </button>
    </form>
  );
}

const VISIBILITY: { id: GroupVisibility; label: string; hint: string }[] = [
  { id: 'public', label: 'Public', hint: 'Anyone can find it by name and join.' },
  { id: 'private', label: 'Private', hint: 'Not listed; you and the admins add members.' },
];

function GroupForm({
  busy,
  onSubmit,
}: {
  busy: boolean;
  onSubmit(name: string, members: string[], visibility: GroupVisibility): void;
}) {
  const [name, setName] = useState('');
  const [members, setMembers] = useState('');
  const [visibility, setVisibility] = useState<GroupVisibility>('public');
  return (
    <form
      class="stack"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(name, members.split(/[\s,]+/).filter(Boolean), visibility);
      }}
    >
      <Field id="group-name" label="Group name">
        <input
          id="group-name"
          name="group-name"
          autoFocus
          required
          maxLength={LIMITS.groupName}
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          placeholder="Weekend plans"
        />
      </Field>
      <Field
        id="group-members"
        label="Members"
        hint={`User ids separated by commas or spaces. ${
          visibility === 'public' ? 'Others can join later with the group id.' : 'You can add others later.'
        }`}
      >
        <input
          id="group-members"
          aria-describedby={hintId('group-members')}
          name="group-members"
          autocapitalize="off"
          spellcheck={false}
          value={members}
          onInput={(e) => setMembers(e.currentTarget.value)}
          placeholder="bob, carol"
        />
      </Field>
      <fieldset class="status-choices choice-row">
        <legend class="choice-legend">Who can join</legend>
        {VISIBILITY.map((v) => (
          <label key={v.id} class={`status-choice${visibility === v.id ? ' is-checked' : ''}`}>
            <input
              type="radio"
              name="group-visibility"
              value={v.id}
              checked={visibility === v.id}
              aria-label={v.label}
              aria-describedby={`visibility-hint-${v.id}`}
              onChange={() => setVisibility(v.id)}
            />
            <span class="status-choice-text">
              <span class="status-choice-label">{v.label}</span>
              <small class="hint" id={`visibility-hint-${v.id}`}>
                {v.hint}
              </small>
            </span>
          </label>
        ))}
      </fieldset>
      <button class="btn btn-primary" type="submit" disabled={busy || !name.trim()}>
        Create group
      </button>
    </form>
  );
}

/** Joining by id: any public group, even one not listed yet; the way in for a group's link. */
function JoinForm({ busy, onSubmit }: { busy: boolean; onSubmit(id: string): void }) {
  const [id, setId] = useState('');
  return (
    <form
      class="join-by-id"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(id);
      }}
    >
      <Field id="join-group-id" label="Group id" hint="Or join by id: ask a member, it is shown in the group's info.">
        <div class="contact-add-row">
          <input
            id="join-group-id"
            aria-describedby={hintId('join-group-id')}
            name="group-id"
            autocapitalize="off"
            spellcheck={false}
            required
            value={id}
            onInput={(e) => setId(e.currentTarget.value)}
            placeholder="Gx1y2z"
          />
          <button class="btn btn-primary" type="submit" disabled={busy || !id.trim()}>
            Join group
          </button>
        </div>
      </Field>
    </form>
  );
}
