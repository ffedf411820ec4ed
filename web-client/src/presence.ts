// Who is online. The server sends `presence` only for users this connection subscribed to, so
// the subscriptions are made again after every `ready`.

import type { Connection } from './connection';
import { LIMITS, type Presence, type PresenceEvent } from './protocol';

export interface PresenceHooks {
  me(): string;
  changed(): void;
}

export class PresenceList {
  readonly users = new Map<string, Presence>();
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
      const res = await this.connection.request<{ presence: Record<string, Presence> }>('presence:subscribe', {
        users: chunk,
      });
      if (!res.ok) {
        chunk.forEach((u) => this.subscribed.delete(u));
        return;
      }
      for (const [user, p] of Object.entries(res.presence ?? {})) {
        this.users.set(user, { online: !!p?.online, lastSeen: p?.lastSeen ?? null });
      }
      this.hooks.changed();
    }
  }

  apply(e: PresenceEvent): void {
    if (!e || typeof e.user !== 'string') return;
    this.users.set(e.user, { online: !!e.online, lastSeen: e.lastSeen ?? null });
    this.hooks.changed();
  }
}
