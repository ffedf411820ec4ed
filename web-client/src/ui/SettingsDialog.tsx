import { useState } from 'preact/hooks';
import type { ChatClient } from '../chat';
import type { Settings } from '../settings';
import { Dialog } from './Dialog';
import { Field, hintId } from './Field';

interface Props {
  settings: Settings;
  client: ChatClient | null;
  onSave(settings: Settings): void;
  onSignOut(): void;
  onClose(): void;
}

export function SettingsDialog({ settings, client, onSave, onSignOut, onClose }: Props) {
  const [draft, setDraft] = useState(settings);
  const info = client?.connection.info;
  const set = (patch: Partial<Settings>) => setDraft({ ...draft, ...patch });
  return (
    <Dialog title="Settings" onClose={onClose}>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          onSave({ ...draft, registry: draft.registry.trim(), server: draft.server.trim() });
        }}
      >
        {client && info && (
          <dl class="facts">
            <dt>Signed in as</dt>
            <dd>{client.me}</dd>
            <dt>Server</dt>
            <dd>{info.url ?? '—'}</dd>
            <dt>Node</dt>
            <dd>{info.node ?? '—'}</dd>
            <dt>Transport</dt>
            <dd>{info.transport ?? '—'}</dd>
          </dl>
        )}
        <div class="check">
          <input
            type="checkbox"
            id="settings-polling"
            name="force-polling"
            aria-describedby={hintId('settings-polling')}
            checked={draft.forcePolling}
            onChange={(e) => set({ forcePolling: e.currentTarget.checked })}
          />
          <div>
            <label for="settings-polling">Use long-polling only</label>
            <small class="hint" id={hintId('settings-polling')}>
              For networks that block WebSocket. Slower, but works through most proxies.
            </small>
          </div>
        </div>
        <Field
          id="settings-registry"
          label="Registry URL"
          hint="In a cluster: ask this registry which server to use. Empty: this page's server."
        >
          <input
            id="settings-registry"
            aria-describedby={hintId('settings-registry')}
            name="registry"
            type="url"
            spellcheck={false}
            value={draft.registry}
            onInput={(e) => set({ registry: e.currentTarget.value })}
            placeholder="https://chat.example.com/registry"
          />
        </Field>
        <Field
          id="settings-server"
          label="Server URL"
          hint="A fixed chat server, bypassing the registry. Empty: this page's server."
        >
          <input
            id="settings-server"
            aria-describedby={hintId('settings-server')}
            name="server"
            type="url"
            spellcheck={false}
            value={draft.server}
            onInput={(e) => set({ server: e.currentTarget.value })}
            placeholder={location.origin}
          />
        </Field>
        <div class="dialog-actions">
          {client && (
            <button type="button" class="btn btn-danger-ghost" onClick={onSignOut}>
              Sign out
            </button>
          )}
          <span class="spacer" />
          <button type="button" class="btn btn-ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary">
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}
