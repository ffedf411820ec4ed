// Messages not yet acknowledged by the server, persisted so they survive reconnects and
// reloads. They are sent one at a time, in order, each with its own `clientId`: a retry of
// a message the server already stored answers that message again instead of storing it twice.

import type { OutboxItem, UserStorage } from './persist';
import type { Ack, ErrorInfo, Message } from './protocol';

export interface OutboxHooks {
  connected(): boolean;
  send(item: OutboxItem): Promise<Ack<{ message: Message }>>;
  /** The server stored the item as `message`. */
  sent(message: Message): void;
  /** The server refused the item for good; it stays, marked failed, until retried or deleted. */
  failed(item: OutboxItem, error: ErrorInfo): void;
  /** A temporary refusal (rate limit, server busy); the item is retried after a back-off. */
  retrying(error: ErrorInfo): void;
  changed(): void;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 16_000;
const TEMPORARY = new Set(['rate_limited', 'timeout', 'unavailable', 'bad_response']);

export class Outbox {
  items: OutboxItem[];
  private flushing = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private backoff = BACKOFF_MIN_MS;

  constructor(
    private readonly storage: UserStorage,
    private readonly hooks: OutboxHooks,
  ) {
    this.items = storage.outbox();
  }

  for(conversation: string): OutboxItem[] {
    return this.items.filter((i) => i.conversation === conversation);
  }

  pending(): number {
    return this.items.filter((i) => i.state === 'sending').length;
  }

  add(conversation: string, body: string): OutboxItem {
    const item: OutboxItem = { clientId: newClientId(), conversation, body, createdAt: Date.now(), state: 'sending' };
    this.items.push(item);
    this.save();
    return item;
  }

  retry(clientId: string): void {
    const item = this.items.find((i) => i.clientId === clientId);
    if (!item) return;
    item.state = 'sending';
    delete item.error;
    this.save();
    void this.flush();
  }

  /** Drops an item: deleted by the user, or confirmed by a message carrying its clientId. */
  remove(clientId: string): boolean {
    if (!this.items.some((i) => i.clientId === clientId)) return false;
    this.items = this.items.filter((i) => i.clientId !== clientId);
    this.save();
    return true;
  }

  /** Takes the stored version (another tab of the same user changed it). */
  reload(): void {
    this.items = this.storage.outbox();
    this.hooks.changed();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Sends what is waiting, in order, while connected. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    clearTimeout(this.timer);
    try {
      while (this.hooks.connected()) {
        const item = this.items.find((i) => i.state === 'sending');
        if (!item) break;
        const res = await this.hooks.send(item);
        if (res.ok) {
          this.backoff = BACKOFF_MIN_MS;
          this.remove(item.clientId);
          this.hooks.sent(res.message);
          continue;
        }
        const code = res.error.code;
        if (code === 'offline' || code === 'unauthorized') break;
        if (TEMPORARY.has(code)) {
          // Keep the order: wait, then retry this same item.
          if (code !== 'timeout') this.hooks.retrying(res.error);
          this.timer = setTimeout(() => void this.flush(), this.backoff);
          this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
          break;
        }
        item.state = 'failed';
        item.error = res.error;
        this.save();
        this.hooks.failed(item, res.error);
      }
    } finally {
      this.flushing = false;
    }
  }

  private save(): void {
    this.storage.saveOutbox(this.items);
    this.hooks.changed();
  }
}

function newClientId(): string {
  const random =
    typeof crypto.randomUUID === 'function'
      ? crypto.randomUUID()
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  return `w-${random}`;
}
