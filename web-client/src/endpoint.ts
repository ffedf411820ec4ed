// Where to connect. Embedded mode: the page's own origin (chat-server serves both the page
// and /socket.io/). Cluster mode: ask the registry which node to use, on every (re)connect,
// so a drained or dead node is never retried.

import type { Settings } from './settings';

export interface Endpoint {
  /** Base URL of a chat-server; Socket.IO connects to `<url>/socket.io/`. */
  url: string;
  /** The node the registry picked, when it picked one. */
  nodeId?: string;
  via: 'origin' | 'server' | 'registry';
}

export class EndpointError extends Error {}

const PICK_TIMEOUT_MS = 5000;

export async function resolveEndpoint(settings: Settings, signal?: AbortSignal): Promise<Endpoint> {
  if (settings.server.trim()) return { url: settings.server.trim(), via: 'server' };
  if (settings.registry.trim()) return pickFromRegistry(settings.registry.trim(), signal);
  return { url: location.origin, via: 'origin' };
}

/** `GET <registry>/api/v1/servers/pick` → `{url, nodeId}`. */
export async function pickFromRegistry(registry: string, signal?: AbortSignal): Promise<Endpoint> {
  const base = registry.endsWith('/') ? registry : `${registry}/`;
  const timeout = AbortSignal.timeout(PICK_TIMEOUT_MS);
  const response = await fetch(new URL('api/v1/servers/pick', new URL(base, location.href)), {
    headers: { accept: 'application/json' },
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  }).catch((err: unknown) => {
    throw new EndpointError(`cannot reach the registry (${errorText(err)})`);
  });
  const body = (await response.json().catch(() => null)) as
    | { url?: unknown; nodeId?: unknown; error?: { message?: unknown } }
    | null;
  if (!response.ok) {
    const reason = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${response.status}`;
    throw new EndpointError(
      response.status === 503 ? `no chat server is available (${reason})` : `the registry refused: ${reason}`,
    );
  }
  if (!body || typeof body.url !== 'string') throw new EndpointError('the registry answered without a server URL');
  return {
    url: body.url,
    nodeId: typeof body.nodeId === 'string' ? body.nodeId : undefined,
    via: 'registry',
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
