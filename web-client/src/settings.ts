// Page settings: saved in localStorage, overridable per visit with query parameters
// (`?registry=<url>`, `?server=<url>`, `?transport=polling`, `?idle=<seconds>`).

import { DEFAULT_IDLE_SECONDS } from './idle';

export interface Settings {
  /** Registry base URL; when set, every (re)connection asks it for a node first. */
  registry: string;
  /** A fixed chat-server URL; empty means the page's own origin. */
  server: string;
  /** Use HTTP long-polling only (no WebSocket upgrade). */
  forcePolling: boolean;
  /**
   * Seconds without input before this device reports itself idle (`presence:idle`); the
   * page being hidden reports it at once. Default 300 (5 minutes).
   */
  idleSeconds: number;
}

export interface Credentials {
  /** Development mode: a user id, no password. */
  user: string;
  /** Token mode: a JWT whose `sub` is the user id. Wins over `user` when set. */
  token: string;
}

const SETTINGS_KEY = 'chat.settings';
const AUTH_KEY = 'chat.auth';

const DEFAULTS: Settings = { registry: '', server: '', forcePolling: false, idleSeconds: DEFAULT_IDLE_SECONDS };

export function loadSettings(): Settings {
  const saved = { ...DEFAULTS, ...readJson<Partial<Settings>>(SETTINGS_KEY) };
  const query = new URLSearchParams(location.search);
  const registry = query.get('registry');
  const server = query.get('server');
  const transport = query.get('transport');
  const idle = query.get('idle');
  if (registry !== null) saved.registry = registry;
  if (server !== null) saved.server = server;
  if (transport !== null) saved.forcePolling = transport === 'polling';
  if (idle !== null) saved.idleSeconds = Number(idle);
  if (!(Number.isFinite(saved.idleSeconds) && saved.idleSeconds > 0)) saved.idleSeconds = DEFAULTS.idleSeconds;
  return saved;
}

export function saveSettings(settings: Settings): void {
  writeJson(SETTINGS_KEY, settings);
}

export function loadCredentials(): Credentials | null {
  const saved = readJson<Partial<Credentials>>(AUTH_KEY);
  if (!saved || (!saved.user && !saved.token)) return null;
  return { user: saved.user ?? '', token: saved.token ?? '' };
}

export function saveCredentials(credentials: Credentials | null): void {
  if (credentials) writeJson(AUTH_KEY, credentials);
  else localStorage.removeItem(AUTH_KEY);
}

/** The user id the credentials stand for, before the server confirms it in `ready`. */
export function expectedUser(credentials: Credentials): string | null {
  if (!credentials.token) return credentials.user || null;
  try {
    const payload = credentials.token.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

export function readJson<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? null : (JSON.parse(raw) as T);
  } catch {
    return null;
  }
}

export function writeJson(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page still works, it just forgets on reload.
  }
}
