import type { ChatClient } from '../chat';
import { useTick } from './hooks';

/** Shown while not connected: why, when the next attempt is, and a way to try now. */
export function ConnectionBanner({ client }: { client: ChatClient }) {
  const info = client.connection.info;
  useTick(1000);
  if (info.status === 'connected' || info.status === 'stopped' || info.status === 'refused') return null;
  const pending = client.outbox.pending();
  const seconds = info.retryAt ? Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000)) : 0;
  let text: string;
  if (info.status === 'connecting') text = 'Connecting…';
  else if (info.retryAt && seconds > 0) text = `${info.error ?? 'Disconnected.'} Retrying in ${seconds}s.`;
  else text = `${info.error ?? 'Disconnected.'} Reconnecting…`;
  return (
    <div class={`banner banner-${info.status}`} role="status" data-testid="connection-banner">
      <span class="banner-dot" aria-hidden="true" />
      <span class="banner-text">
        {text}
        {pending > 0 && ` ${pending} message${pending === 1 ? '' : 's'} will be sent when the connection is back.`}
      </span>
      {info.status === 'reconnecting' && (
        <button class="btn btn-small btn-on-banner" onClick={() => client.connection.connectNow()}>
          Retry now
        </button>
      )}
    </div>
  );
}

/** A compact status for the sidebar: a dot, the state and the transport in use. */
export function ConnectionPill({ client }: { client: ChatClient }) {
  const info = client.connection.info;
  const label =
    info.status === 'connected' ? 'Online' : info.status === 'connecting' ? 'Connecting' : info.status === 'refused' ? 'Signed out' : 'Offline';
  return (
    <span
      class={`conn-pill conn-${info.status}`}
      data-testid="connection"
      data-status={info.status}
      data-transport={info.transport ?? ""}
    >
      <span class="conn-dot" aria-hidden="true" />
      <span>{label}</span>
      {info.transport && (
        <span class="conn-transport" data-testid="transport" title="Transport in use">
          {info.transport === 'websocket' ? 'WebSocket' : info.transport === 'polling' ? 'Long-polling' : info.transport}
        </span>
      )}
    </span>
  );
}
