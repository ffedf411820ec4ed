// The contact roster: requests sent and received, and accepted contacts. Loaded in full (page
// by page) after every `ready`; `contact` events keep it in step, also with the user's other
// devices. Contacts' presence comes with the roster and their `contact` events, and is handed
// to the presence list.

import type { Connection } from './connection';
import { describeError } from './errors';
import {
  LIMITS,
  isValidUserId,
  type ContactEntry,
  type ContactEvent,
  type ContactState,
  type Presence,
} from './protocol';

export type Roster = Map<string, ContactEntry>;

const STATES: readonly string[] = ['outgoing', 'incoming', 'contact'];

/**
 * Applies a `contact` event (or a request's own answer) to the roster; returns whether it
 * changed. `none` drops the entry; a new state without presence keeps what we knew of it.
 */
export function applyContactEvent(roster: Roster, e: ContactEvent): boolean {
  if (!e || typeof e.user !== 'string' || !e.user) return false;
  if (e.state === 'none') return roster.delete(e.user);
  if (!STATES.includes(e.state)) return false;
  const old = roster.get(e.user);
  const presence = e.presence ?? (old?.state === e.state ? old.presence : undefined);
  roster.set(e.user, { user: e.user, state: e.state, ...(presence ? { presence } : {}) });
  return true;
}

/** The roster by state, each sorted by user id. */
export function groupRoster(roster: Roster): Record<ContactState, ContactEntry[]> {
  const out: Record<ContactState, ContactEntry[]> = { incoming: [], outgoing: [], contact: [] };
  for (const entry of roster.values()) out[entry.state]?.push(entry);
  for (const list of Object.values(out)) list.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  return out;
}

/** What is wrong with a user id typed into "add a contact", or null to ask the server. */
export function checkContactId(user: string): string | null {
  if (!user) return 'Enter a user id.';
  if (!isValidUserId(user)) return 'User ids are 1–64 letters, digits, “.”, “_” or “-”.';
  return null;
}

export interface ContactHooks {
  me(): string;
  /** A contact's presence, from the roster or a `contact` event. */
  presence(user: string, presence: Presence): void;
  /** What we may see of `user` may have changed (they became, or stopped being, a contact). */
  relationChanged(user: string, state: ContactEvent['state']): void;
  changed(): void;
}

export class Contacts {
  roster: Roster = new Map();
  /** Whether the roster has been read since the page started; `error` when the last read failed. */
  loaded = false;
  error: string | null = null;
  /** Events that arrive while pages are read, applied again on top of what the pages said. */
  private during: ContactEvent[] | null = null;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly connection: Connection,
    private readonly hooks: ContactHooks,
  ) {}

  /** Reads the whole roster (`contacts`, following `next`). One read at a time. */
  load(): Promise<void> {
    if (!this.loading) {
      this.loading = this.read().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  /** Forgets the roster (another user signed in). */
  clear(): void {
    this.roster = new Map();
    this.loaded = false;
    this.error = null;
  }

  apply(e: ContactEvent): void {
    this.during?.push(e);
    if (!applyContactEvent(this.roster, e)) return;
    if (e.presence) this.hooks.presence(e.user, e.presence);
    this.hooks.relationChanged(e.user, e.state);
    this.hooks.changed();
  }

  grouped(): Record<ContactState, ContactEntry[]> {
    return groupRoster(this.roster);
  }

  /** Requests received and not answered yet. */
  incomingCount(): number {
    let n = 0;
    for (const e of this.roster.values()) if (e.state === 'incoming') n++;
    return n;
  }

  /** Asks `user` to be a contact (accepts when they asked first); returns an error text or null. */
  async request(user: string): Promise<string | null> {
    const id = user.trim();
    const problem = checkContactId(id);
    if (problem) return problem;
    const res = await this.connection.request<{ state: ContactState }>('contacts:request', { user: id });
    if (!res.ok) return describeError(res.error);
    if (STATES.includes(res.state)) this.applyOwn({ user: id, state: res.state });
    return null;
  }

  async accept(user: string): Promise<string | null> {
    const res = await this.connection.request('contacts:accept', { user });
    if (!res.ok) return describeError(res.error);
    this.applyOwn({ user, state: 'contact' });
    return null;
  }

  async decline(user: string): Promise<string | null> {
    return this.forget('contacts:decline', user);
  }

  /** Ends a contact, withdraws our request or turns theirs down. */
  async remove(user: string): Promise<string | null> {
    return this.forget('contacts:remove', user);
  }

  private async forget(event: string, user: string): Promise<string | null> {
    const res = await this.connection.request(event, { user });
    if (!res.ok) {
      // Already gone (they withdrew it meanwhile): the roster just had not heard yet.
      if (res.error.code === 'not_found') this.applyOwn({ user, state: 'none' });
      return describeError(res.error);
    }
    this.applyOwn({ user, state: 'none' });
    return null;
  }

  /** Our own change, answered `ok`: shown now rather than when its `contact` event comes. */
  private applyOwn(e: ContactEvent): void {
    const before = this.roster.get(e.user)?.state ?? 'none';
    if (before === e.state) return;
    this.apply(e);
  }

  private async read(): Promise<void> {
    const roster: Roster = new Map();
    this.during = [];
    let after: string | undefined;
    try {
      for (;;) {
        const res = await this.connection.request<{ contacts: ContactEntry[]; next?: string }>('contacts', {
          limit: LIMITS.contactsPage,
          ...(after ? { after } : {}),
        });
        if (!res.ok) {
          this.error = describeError(res.error);
          this.hooks.changed();
          return;
        }
        for (const entry of res.contacts ?? []) applyContactEvent(roster, entry);
        if (!res.next || res.next === after) break;
        after = res.next;
      }
      for (const e of this.during) applyContactEvent(roster, e);
      this.roster = roster;
      this.loaded = true;
      this.error = null;
      for (const entry of roster.values()) {
        if (entry.presence) this.hooks.presence(entry.user, entry.presence);
      }
      this.hooks.changed();
    } finally {
      this.during = null;
    }
  }
}
