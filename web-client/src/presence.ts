// Who is online, and what they are up to. The server sends `presence` only for users this
// connection subscribed to (and, depending on its visibility setting, to DM partners or
// contacts), so the subscriptions are made again after every `ready`. The user's own status
// comes from a `presence` event about themselves (sent when it changes) and from subscribing
// to themselves after `ready`.

import type { Connection } from './connection';
import { LIMITS, type Presence, type PresenceEvent, type PresenceStatus } from './protocol';

export interface PresenceHooks {
  me(): string;
  changed(): void;
}

/** What a presence dot shows: the status while online, else `offline`. */
export type ShownStatus = PresenceStatus | 'offline';

const STATUSES: readonly string[] = ['available', 'away', 'busy', 'idle'];

/** A presence from the server (event, snapshot, roster), keeping only what the protocol defines. */
export function toPresence(raw: unknown): Presence {
  const p = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const online = !!p.online;
  const out: Presence = { online, lastSeen: typeof p.lastSeen === 'number' ? p.lastSeen : null };
  // Offline users have neither; a server may still be sending them from before they left.
  if (online && typeof p.status === 'string' && STATUSES.includes(p.status)) out.status = p.status as PresenceStatus;
  if (online && typeof p.text === 'string' && p.text.trim()) out.text = p.text.trim();
  return out;
}

/** The dot for a presence: undefined when unknown (no dot), `available` for online without a status. */
export function shownStatus(p: Presence | null | undefined): ShownStatus | undefined {
  if (!p) return undefined;
  if (!p.online) return 'offline';
  return p.status ?? 'available';
}

const LABELS: Record<ShownStatus, string> = {
  available: 'Available',
  away: 'Away',
  busy: 'Busy',
  idle: 'Idle',
  offline: 'Offline',
};

export function statusLabel(s: ShownStatus): string {
  return LABELS[s];
}

/** How an online user reads in a line: `online` when available, else the status; then the text. */
export function onlineText(p: Presence): string {
  const base = !p.status || p.status === 'available' ? 'online' : LABELS[p.status].toLowerCase();
  return p.text ? `${base} · ${p.text}` : base;
}

export class PresenceList {
  readonly users = new Map<string, Presence>();
  /** The user's own presence, as others see it; null until the server told it. */
  own: Presence | null = null;
  private readonly subscribed = new Set<string>();

  constructor(
    private readonly connection: Connection,
    private readonly hooks: PresenceHooks,
  ) {}

  /** A new connection starts without subscriptions. */
  reset(): void {
    this.subscribed.clear();
  }

  async subscribe(users: string[]): Promise<void> {
    const me = this.hooks.me();
    const fresh = [...new Set(users)].filter((u) => u && u !== me && !this.subscribed.has(u));
    for (let i = 0; i < fresh.length; i += LIMITS.presencePerCall) {
      const chunk = fresh.slice(i, i + LIMITS.presencePerCall);
      // Marked before the answer so that a second call meanwhile does not ask again.
      chunk.forEach((u) => this.subscribed.add(u));
      const res = await this.connection.request<{ presence: Record<string, Presence>; hidden?: string[] }>(
        'presence:subscribe',
        { users: chunk },
      );
      if (!res.ok) {
        chunk.forEach((u) => this.subscribed.delete(u));
        return;
      }
      for (const [user, p] of Object.entries(res.presence ?? {})) this.users.set(user, toPresence(p));
      // Users who do not show us their presence (visibility `contacts`): forget what we knew.
      for (const user of res.hidden ?? []) this.users.delete(user);
      this.hooks.changed();
    }
  }

  /** Asks again about `user` (a contact came or went: what we may see of them changed). */
  recheck(user: string): Promise<void> {
    this.subscribed.delete(user);
    return this.subscribe([user]);
  }

  /** The user's own status, asked after `ready` (the server answers for yourself in every mode). */
  async loadOwn(): Promise<void> {
    const me = this.hooks.me();
    if (!me) return;
    const res = await this.connection.request<{ presence: Record<string, Presence> }>('presence:subscribe', {
      users: [me],
    });
    if (!res.ok || !res.presence?.[me]) return;
    this.own = toPresence(res.presence[me]);
    this.hooks.changed();
  }

  /** Presence learnt elsewhere (the contact roster). */
  set(user: string, presence: unknown): void {
    if (user === this.hooks.me()) return;
    this.users.set(user, toPresence(presence));
    this.hooks.changed();
  }

  apply(e: PresenceEvent): void {
    if (!e || typeof e.user !== 'string') return;
    if (e.user === this.hooks.me()) this.own = toPresence(e);
    else this.users.set(e.user, toPresence(e));
    this.hooks.changed();
  }
}
