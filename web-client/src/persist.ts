// What the page remembers per user across reloads, in localStorage under `chat.u.<user>.*`.

import type { ErrorInfo, GroupVisibility, Message } from './protocol';
import { readJson, writeJson } from './settings';

/** A message the server has not acknowledged yet (or refused). */
export interface OutboxItem {
  /** Idempotency key: retries with it are never stored or delivered twice. */
  clientId: string;
  conversation: string;
  body: string;
  createdAt: number;
  state: 'sending' | 'failed';
  error?: ErrorInfo;
}

export interface CachedConversation {
  id: string;
  name?: string;
  lastMessage: Message | null;
  unread: number;
  touched: number;
  /** Groups whose settings were known: shown until they are read again. */
  group?: CachedGroup;
}

export interface CachedGroup {
  owner: string;
  admins: string[];
  topic?: string;
  visibility?: GroupVisibility;
}

/** Receipts for this user's messages, per conversation: other user → newest message id covered. */
export interface CachedReceipts {
  delivered: Record<string, string>;
  read: Record<string, string>;
}

export class UserStorage {
  private readonly prefix: string;

  constructor(readonly user: string) {
    this.prefix = `chat.u.${user}.`;
  }

  outbox(): OutboxItem[] {
    const items = readJson<OutboxItem[]>(this.prefix + 'outbox');
    return Array.isArray(items) ? items.filter((i) => i && typeof i.clientId === 'string') : [];
  }
  saveOutbox(items: OutboxItem[]): void {
    writeJson(this.prefix + 'outbox', items);
  }

  /**
   * The sync cursor is per tab (sessionStorage: kept across reloads, not shared): each tab is
   * a device to the server, and a cursor advanced by another tab would skip what this tab
   * missed while it was offline. A new tab starts without one and gets the unread messages.
   */
  cursor(): string | undefined {
    try {
      return sessionStorage.getItem(this.prefix + 'cursor') ?? undefined;
    } catch {
      return undefined;
    }
  }
  saveCursor(cursor: string | undefined): void {
    try {
      if (cursor === undefined) sessionStorage.removeItem(this.prefix + 'cursor');
      else sessionStorage.setItem(this.prefix + 'cursor', cursor);
    } catch {
      // Storage disabled: every reconnect syncs from the unread messages instead.
    }
  }

  /** True when a `storage` event is about this user's outbox (changed in another tab). */
  isOutboxKey(key: string | null): boolean {
    return key === this.prefix + 'outbox';
  }

  conversations(): CachedConversation[] {
    const list = readJson<CachedConversation[]>(this.prefix + 'conversations');
    return Array.isArray(list) ? list.filter((c) => c && typeof c.id === 'string') : [];
  }
  saveConversations(list: CachedConversation[]): void {
    writeJson(this.prefix + 'conversations', list);
  }

  receipts(): Record<string, CachedReceipts> {
    return readJson<Record<string, CachedReceipts>>(this.prefix + 'receipts') ?? {};
  }
  saveReceipts(receipts: Record<string, CachedReceipts>): void {
    writeJson(this.prefix + 'receipts', receipts);
  }

  /** The newest messages of recent conversations, shown at once after a reload. */
  recentMessages(): Record<string, Message[]> {
    const recent = readJson<Record<string, Message[]>>(this.prefix + 'recent');
    return recent && typeof recent === 'object' ? recent : {};
  }
  saveRecentMessages(recent: Record<string, Message[]>): void {
    writeJson(this.prefix + 'recent', recent);
  }

  openConversation(): string | null {
    const id = readJson<string>(this.prefix + 'open');
    return typeof id === 'string' ? id : null;
  }
  saveOpenConversation(id: string | null): void {
    writeJson(this.prefix + 'open', id);
  }
}
