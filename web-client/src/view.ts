// What the reader sees, which the server cannot know: the open conversation, whether its
// newest message is scrolled into view, whether the tab is visible, and toasts that go away
// by themselves. Together the first three decide when a conversation is read.

import type { Connection } from './connection';
import type { Conversation } from './conversation';
import { readMark, type Conversations } from './inbox';
import { addToast, isShowing, removeToast, toastLifetime, type Toast } from './toasts';

export interface ViewHooks {
  me(): string;
  persistSoon(): void;
  changed(): void;
}

let toastIds = 0;

export class View {
  openId: string | null = null;
  toasts: Toast[] = [];
  private atBottom = true;
  /** The newest id we sent `read` for, per conversation, since `ready`. */
  private readonly readSent = new Map<string, string>();
  private readonly onVisibility = () => this.markRead();

  constructor(
    private readonly connection: Connection,
    private readonly conversations: Conversations,
    private readonly hooks: ViewHooks,
  ) {}

  get open(): Conversation | null {
    return this.openId ? (this.conversations.get(this.openId) ?? null) : null;
  }

  start(): void {
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  stop(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  /** A newly opened conversation is shown from its newest message. */
  select(id: string | null): void {
    this.openId = id;
    this.atBottom = true;
  }

  /** The message list tells whether its newest message is in view. */
  setAtBottom(atBottom: boolean): void {
    if (this.atBottom === atBottom) return;
    this.atBottom = atBottom;
    if (atBottom) this.markRead();
  }

  isReading(c: Conversation): boolean {
    return c.id === this.openId && this.atBottom && document.visibilityState === 'visible';
  }

  /** The conversation being read, if any (see `isReading`). */
  readingId(): string | null {
    return this.atBottom && document.visibilityState === 'visible' ? this.openId : null;
  }

  /** A new connection: the server may not have what the old one sent. */
  resetReads(): void {
    this.readSent.clear();
  }

  /** Tells the server we read the open conversation, when it is on screen and scrolled down. */
  markRead(): void {
    const c = this.open;
    if (!c || !this.isReading(c)) return;
    if (c.unread !== 0) {
      c.unread = 0;
      this.hooks.changed();
    }
    if (!this.connection.connected) return;
    const newest = readMark(c, this.hooks.me(), this.readSent.get(c.id));
    if (!newest) return;
    this.readSent.set(c.id, newest);
    void this.connection.request('read', { conversation: c.id, messageId: newest }).then((res) => {
      // Unless a newer mark went out meanwhile, let the next chance send it again.
      if (!res.ok && this.readSent.get(c.id) === newest) this.readSent.delete(c.id);
    });
    this.hooks.persistSoon();
  }

  toast(text: string, kind: Toast['kind'] = 'error'): void {
    if (isShowing(this.toasts, text)) return;
    const toast = { id: ++toastIds, kind, text };
    this.toasts = addToast(this.toasts, toast);
    setTimeout(() => this.dismissToast(toast.id), toastLifetime(kind));
    this.hooks.changed();
  }

  dismissToast(id: number): void {
    this.toasts = removeToast(this.toasts, id);
    this.hooks.changed();
  }
}
