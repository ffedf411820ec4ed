import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { ChatClient } from '../chat';
import { formatLastSeen } from '../format';
import { onlineText, shownStatus, statusLabel } from '../presence';
import type { ContactEntry } from '../protocol';
import { Avatar } from './Avatar';
import { Dialog } from './Dialog';
import { Field } from './Field';
import { useTick } from './hooks';

/**
 * The contact roster: add someone by user id, answer requests, withdraw ours, and the contacts
 * themselves with their status; a contact opens the DM with them.
 */
export function ContactsDialog({ client, onClose }: { client: ChatClient; onClose(): void }) {
  useTick(30_000);
  const [user, setUser] = useState('');
  const [addError, setAddError] = useState<string | null>(null);
  const [added, setAdded] = useState<string | null>(null);
  const [rowError, setRowError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { incoming, outgoing, contact } = client.contactList();

  const add = async () => {
    setBusy(true);
    setAddError(null);
    setAdded(null);
    const id = user.trim();
    const problem = await client.requestContact(id);
    setBusy(false);
    if (problem) return setAddError(problem);
    setUser('');
    setAdded(id);
  };

  /** Runs a row's action; its error shows above the lists. */
  const act = async (action: () => Promise<string | null>) => {
    setRowError(null);
    const problem = await action();
    if (problem) setRowError(problem);
  };

  const empty = incoming.length + outgoing.length + contact.length === 0;
  // What became of the last request sent here, as the roster says now.
  const addedNote = !added
    ? null
    : outgoing.some((e) => e.user === added)
      ? `Request sent to ${added}.`
      : contact.some((e) => e.user === added)
        ? `${added} is a contact.`
        : null;

  return (
    <Dialog title="Contacts" onClose={onClose}>
      <form
        class="contact-add"
        onSubmit={(e) => {
          e.preventDefault();
          void add();
        }}
      >
        <Field id="contact-user" label="Add a contact">
          <div class="contact-add-row">
            <input
              id="contact-user"
              name="contact-user"
              autoFocus
              autocapitalize="off"
              spellcheck={false}
              maxLength={64}
              value={user}
              aria-invalid={addError ? true : undefined}
              aria-describedby={addError ? 'contact-add-error' : addedNote ? 'contact-add-done' : undefined}
              onInput={(e) => {
                setUser(e.currentTarget.value);
                setAddError(null);
              }}
              placeholder="User id, e.g. bob"
            />
            <button class="btn btn-primary" type="submit" disabled={busy || !user.trim()} aria-label="Send contact request">
              Add
            </button>
          </div>
        </Field>
        {addError && (
          <p class="form-error" role="alert" id="contact-add-error">
            {addError}
          </p>
        )}
        {addedNote && !addError && (
          <p class="muted small" role="status" id="contact-add-done">
            {addedNote}
          </p>
        )}
      </form>
      {rowError && (
        <p class="form-error" role="alert">
          {rowError}
        </p>
      )}
      {client.contactsError && (
        <p class="form-error" role="alert">
          Cannot load your contacts: {client.contactsError}
        </p>
      )}
      <div class="contact-lists">
        {incoming.length > 0 && (
          <Section title="Requests" count={incoming.length} testId="contacts-incoming">
            {incoming.map((e) => (
              <Row key={e.user} entry={e} sub="wants to be your contact">
                <button class="btn btn-primary btn-small" aria-label={`Accept ${e.user}`} onClick={() => void act(() => client.acceptContact(e.user))}>
                  Accept
                </button>
                <button class="btn btn-ghost btn-small" aria-label={`Decline ${e.user}`} onClick={() => void act(() => client.declineContact(e.user))}>
                  Decline
                </button>
              </Row>
            ))}
          </Section>
        )}
        {outgoing.length > 0 && (
          <Section title="Sent requests" count={outgoing.length} testId="contacts-outgoing">
            {outgoing.map((e) => (
              <Row key={e.user} entry={e} sub="waiting for an answer">
                <button class="btn btn-ghost btn-small" aria-label={`Cancel request to ${e.user}`} onClick={() => void act(() => client.removeContact(e.user))}>
                  Cancel
                </button>
              </Row>
            ))}
          </Section>
        )}
        {contact.length > 0 && (
          <Section title="Contacts" count={contact.length} testId="contacts-accepted">
            {contact.map((e) => (
              <ContactRow
                key={e.user}
                client={client}
                entry={e}
                onOpen={() => {
                  if (!client.startDirect(e.user)) onClose();
                }}
                onRemove={() => void act(() => client.removeContact(e.user))}
              />
            ))}
          </Section>
        )}
        {empty && (
          <p class="muted" data-testid="contacts-empty">
            {client.contactsLoaded ? 'No contacts yet. Add someone by their user id.' : 'Loading contacts…'}
          </p>
        )}
      </div>
    </Dialog>
  );
}

function Section({ title, count, testId, children }: { title: string; count: number; testId: string; children: ComponentChildren }) {
  const id = `${testId}-title`;
  return (
    <section class="contact-section" aria-labelledby={id}>
      <h3 class="contact-section-title" id={id}>
        {title} <span class="muted">({count})</span>
      </h3>
      <ul class="contact-list" data-testid={testId}>
        {children}
      </ul>
    </section>
  );
}

function Row({ entry, sub, children }: { entry: ContactEntry; sub: string; children: ComponentChildren }) {
  return (
    <li class="contact" data-contact={entry.user} data-state={entry.state}>
      <span class="contact-main">
        <Avatar name={entry.user} size="sm" />
        <span class="contact-text">
          <span class="contact-name">{entry.user}</span>
          <span class="contact-sub muted small">{sub}</span>
        </span>
      </span>
      <span class="contact-actions">{children}</span>
    </li>
  );
}

function ContactRow({
  client,
  entry,
  onOpen,
  onRemove,
}: {
  client: ChatClient;
  entry: ContactEntry;
  onOpen(): void;
  onRemove(): void;
}) {
  // The presence list has the newest (live events); the roster's is from when it was read.
  const p = client.presence.get(entry.user) ?? entry.presence;
  const status = shownStatus(p);
  const sub = p ? (p.online ? onlineText(p) : formatLastSeen(p.lastSeen)) : 'presence not shown';
  const spoken = status ? `, ${statusLabel(status).toLowerCase()}${p?.text ? `: ${p.text}` : ''}` : '';
  return (
    <li class="contact" data-contact={entry.user} data-state={entry.state} data-status={status}>
      <button class="contact-main contact-open" aria-label={`Message ${entry.user}${spoken}`} onClick={onOpen}>
        <Avatar name={entry.user} size="sm" status={status} />
        <span class="contact-text">
          <span class="contact-name">{entry.user}</span>
          <span class={`contact-sub small${status ? ` is-${status}` : ' muted'}`} data-testid="contact-status">
            {sub}
          </span>
        </span>
      </button>
      <span class="contact-actions">
        <button class="btn btn-danger-ghost btn-small" aria-label={`Remove ${entry.user}`} onClick={onRemove}>
          Remove
        </button>
      </span>
    </li>
  );
}
