import type { ChatClient } from '../chat';
import { CloseIcon } from './icons';

export function Toasts({ client }: { client: ChatClient }) {
  return (
    <div class="toasts" aria-live="polite" aria-relevant="additions">
      {client.toasts.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`} role={t.kind === 'error' ? 'alert' : 'status'}>
          <span>{t.text}</span>
          <button class="icon-btn icon-btn-sm" aria-label="Dismiss" onClick={() => client.dismissToast(t.id)}>
            <CloseIcon size={16} />
          </button>
        </div>
      ))}
    </div>
  );
}
