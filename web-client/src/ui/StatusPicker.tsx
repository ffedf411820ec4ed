import { useState } from 'preact/hooks';
import type { ChatClient } from '../chat';
import { shownStatus, statusLabel } from '../presence';
import { LIMITS, SETTABLE_STATUSES, type SettableStatus } from '../protocol';
import { Dialog } from './Dialog';
import { Field, hintId } from './Field';
import { ChevronDownIcon } from './icons';

const HINTS: Record<SettableStatus, string> = {
  available: 'Shown as idle when none of your devices has been used for a while.',
  away: 'You are not at your desk.',
  busy: 'You would rather not be disturbed.',
};

/** The user's current status under their name; opens the picker. */
export function StatusButton({ client, onClick }: { client: ChatClient; onClick(): void }) {
  const own = client.myPresence;
  const status = shownStatus(own) ?? 'available';
  const text = own?.text;
  const label = `${statusLabel(status)}${text ? ` · ${text}` : ''}`;
  return (
    <button
      class="status-btn"
      data-testid="my-status"
      data-status={status}
      aria-label={`Your status: ${label}. Change status`}
      title="Set your status"
      onClick={onClick}
    >
      <span class={`status-dot is-${status}`} aria-hidden="true" />
      <span class="status-btn-text">{label}</span>
      <ChevronDownIcon size={12} class="status-btn-chevron" />
    </button>
  );
}

/** Available / away / busy and a status text, for all of the user's devices. */
export function StatusDialog({ client, onClose }: { client: ChatClient; onClose(): void }) {
  const own = client.myPresence;
  // Idle is shown, not chosen: it is "available" with every device unused.
  const current: SettableStatus = own?.status && own.status !== 'idle' ? own.status : 'available';
  const [status, setStatus] = useState<SettableStatus>(current);
  const [text, setText] = useState(own?.text ?? '');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const save = async (next: SettableStatus, nextText: string) => {
    setBusy(true);
    setError(null);
    const problem = await client.setStatus(next, nextText);
    setBusy(false);
    if (problem) setError(problem);
    else onClose();
  };

  return (
    <Dialog title="Set your status" onClose={onClose}>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void save(status, text);
        }}
      >
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <fieldset class="status-choices">
          <legend class="sr-only">Status</legend>
          {SETTABLE_STATUSES.map((s) => (
            <label key={s} class={`status-choice${status === s ? ' is-checked' : ''}`}>
              <input
                type="radio"
                name="status"
                value={s}
                checked={status === s}
                aria-label={statusLabel(s)}
                aria-describedby={`status-hint-${s}`}
                onChange={() => setStatus(s)}
              />
              <span class={`status-dot is-${s}`} aria-hidden="true" />
              <span class="status-choice-text">
                <span class="status-choice-label">{statusLabel(s)}</span>
                <small class="hint" id={`status-hint-${s}`}>
                  {HINTS[s]}
                </small>
              </span>
            </label>
          ))}
        </fieldset>
        <Field id="status-text" label="Status text" hint={`Optional, up to ${LIMITS.statusText} characters. Shown to people who see you online.`}>
          <input
            id="status-text"
            name="status-text"
            aria-describedby={hintId('status-text')}
            maxLength={LIMITS.statusText}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
            placeholder="In a meeting until 3"
          />
        </Field>
        <div class="dialog-actions">
          {(own?.text || current !== 'available') && (
            <button type="button" class="btn btn-ghost" disabled={busy} onClick={() => void save('available', '')}>
              Clear status
            </button>
          )}
          <span class="spacer" />
          <button type="button" class="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}
