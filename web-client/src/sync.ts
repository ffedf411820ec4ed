// Catching up with the server: what was missed while away (`sync`, page by page from the
// cursor), the conversation list, and history pages when a conversation is shown or scrolled up.

import type { Connection } from './connection';
import type { Conversation } from './conversation';
import { describeError } from './errors';
import {
  addMessages,
  applyHistoryPage,
  applyOlderPage,
  applySummaries,
  forgetLoadedHistory,
  isMessage,
  peers,
  staleGroups,
  type Conversations,
} from './inbox';
import type { UserStorage } from './persist';
import { LIMITS, type ConversationSummary, type Message } from './protocol';

/** A bound on one catch-up; whatever is left comes with the next `ready`. */
const SYNC_MAX_PAGES = 50;
/** The list asks for older pages on every render and scroll: after a failure, wait a little. */
const OLDER_RETRY_MS = 3000;

export interface SyncHooks {
  me(): string;
  /** Read on every use: a `ready` for another user replaces it. */
  storage(): UserStorage;
  /** See `View.readingId`. */
  readingId(): string | null;
  /** When each group was created or joined here; see `staleGroups`. */
  readonly joinedAt: ReadonlyMap<string, number>;
  /** Messages were taken in: ours among them have left the outbox. */
  settle(messages: Message[]): void;
  remove(conversation: string): void;
  subscribePresence(users: string[]): void;
  markRead(): void;
  toast(text: string): void;
  persistSoon(): void;
  changed(): void;
}

export class Sync {
  private readonly olderFailedAt = new Map<string, number>();

  constructor(
    private readonly connection: Connection,
    private readonly conversations: Conversations,
    private readonly hooks: SyncHooks,
  ) {}

  /** Everything since the stored cursor, page by page. */
  async catchUp(): Promise<void> {
    let cursor = this.hooks.storage().cursor();
    for (let page = 0; page < SYNC_MAX_PAGES; page++) {
      const res = await this.connection.request<{
        messages: Message[];
        cursor: string;
        hasMore: boolean;
        truncated?: boolean;
      }>('sync', cursor ? { cursor } : {});
      if (!res.ok) {
        if (res.error.code === 'bad_request' && cursor) {
          // The server no longer understands our cursor (e.g. it was reset): start over.
          cursor = undefined;
          this.hooks.storage().saveCursor(undefined);
          continue;
        }
        if (res.error.code !== 'offline') this.hooks.toast(`Could not catch up: ${describeError(res.error)}`);
        return;
      }
      if (res.truncated) forgetLoadedHistory(this.conversations);
      this.hooks.settle(addMessages(this.conversations, this.hooks.me(), res.messages));
      cursor = res.cursor;
      this.hooks.storage().saveCursor(cursor);
      this.hooks.changed();
      if (!res.hasMore) break;
    }
    this.hooks.persistSoon();
  }

  async refreshConversations(): Promise<void> {
    const res = await this.connection.request<{ conversations: ConversationSummary[] }>('conversations', {});
    if (!res.ok || !Array.isArray(res.conversations)) return;
    const listed = applySummaries(this.conversations, this.hooks.me(), res.conversations, this.hooks.readingId());
    for (const id of staleGroups(this.conversations, listed, this.hooks.joinedAt, Date.now())) this.hooks.remove(id);
    this.hooks.subscribePresence(peers(this.conversations));
    this.hooks.persistSoon();
    this.hooks.changed();
  }

  /** The newest page, when a conversation is shown without one. */
  async loadHistory(c: Conversation): Promise<void> {
    c.history = 'loading';
    this.hooks.changed();
    const res = await this.connection.request<{ messages: Message[]; hasMore: boolean }>('history', {
      conversation: c.id,
      limit: LIMITS.historyPage,
    });
    if (!res.ok) {
      // Offline is no failure to show: the next `ready` asks again.
      c.history = res.error.code === 'offline' ? 'none' : 'error';
      if (res.error.code !== 'offline') this.hooks.toast(describeError(res.error));
      this.hooks.changed();
      return;
    }
    const page = res.messages.filter(isMessage);
    this.hooks.settle(page);
    applyHistoryPage(c, page, res.hasMore);
    this.hooks.markRead();
    this.hooks.persistSoon();
    this.hooks.changed();
  }

  async loadOlder(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c || c.history !== 'loaded' || !c.hasMore || c.loadingOlder || !this.connection.connected) return;
    if (Date.now() - (this.olderFailedAt.get(conversation) ?? 0) < OLDER_RETRY_MS) return;
    const oldest = c.messages[0];
    if (!oldest) return;
    c.loadingOlder = true;
    this.hooks.changed();
    const res = await this.connection.request<{ messages: Message[]; hasMore: boolean }>('history', {
      conversation,
      before: oldest.id,
      limit: LIMITS.historyPage,
    });
    c.loadingOlder = false;
    if (res.ok) {
      const page = res.messages.filter(isMessage);
      this.hooks.settle(page);
      applyOlderPage(c, page, res.hasMore);
    } else {
      this.olderFailedAt.set(conversation, Date.now());
      if (res.error.code !== 'offline') this.hooks.toast(describeError(res.error));
    }
    this.hooks.changed();
  }
}
