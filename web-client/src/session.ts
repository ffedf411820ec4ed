// Who we are. To the server: one connection, whose events are handed on to the client. On this
// device: the user's storage, outbox and reload cache. A `ready` for another user than the
// credentials seemed to name (a token the page could not decode) swaps the device side whole,
// so two users' data never mix.

import { restoreCache, snapshotCache } from './cache';
import { Connection } from './connection';
import { insertMessage } from './conversation';
import { describeError } from './errors';
import { ensureConversation, isMessage, type Conversations } from './inbox';
import { Outbox } from './outbox';
import { UserStorage } from './persist';
import {
  sendTarget,
  type ContactEvent,
  type GroupMemberEvent,
  type GroupUpdatedEvent,
  type Message,
  type PresenceEvent,
  type ReadyEvent,
  type ReceiptEvent,
  type TypingEvent,
} from './protocol';
import type { Credentials, Settings } from './settings';
import type { Toast } from './toasts';

/** Writes wait this long, so that a burst of changes is saved once. */
const PERSIST_DELAY_MS = 300;

export interface ServerEvents {
  message(m: Message): void;
  typing(e: TypingEvent): void;
  receipt(e: ReceiptEvent): void;
  presence(e: PresenceEvent): void;
  groupMember(e: GroupMemberEvent): void;
  groupUpdated(e: GroupUpdatedEvent): void;
  contact(e: ContactEvent): void;
  ready(e: ReadyEvent): void;
  /** The server refused the credentials; see `Connection`. */
  refused(message: string): void;
  changed(): void;
}

export function connect(credentials: Credentials, settings: Settings, events: ServerEvents): Connection {
  const auth: Record<string, string> = credentials.token ? { token: credentials.token } : { user: credentials.user };
  const connection: Connection = new Connection(settings, auth, {
    bind: (socket) => {
      socket.on('message', (m: Message, ack?: () => void) => {
        events.message(m);
        // The ack is what tells the sender "delivered": only once the message is taken in.
        ack?.();
      });
      socket.on('typing', (e: TypingEvent) => events.typing(e));
      socket.on('receipt', (e: ReceiptEvent) => events.receipt(e));
      socket.on('presence', (e: PresenceEvent) => events.presence(e));
      socket.on('group:member', (e: GroupMemberEvent) => events.groupMember(e));
      socket.on('group:updated', (e: GroupUpdatedEvent) => events.groupUpdated(e));
      socket.on('contact', (e: ContactEvent) => events.contact(e));
      socket.on('drain', () => connection.reconnect('The server is restarting; reconnecting…'));
    },
    ready: (event) => events.ready(event),
    refused: (message) => events.refused(message),
    changed: () => events.changed(),
  });
  return connection;
}

export interface SessionHooks {
  toast(text: string, kind?: Toast['kind']): void;
  changed(): void;
}

export class Session {
  me: string;
  storage: UserStorage;
  outbox: Outbox;
  private persistTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onPageHide = () => this.persistNow();
  private readonly onStorage = (e: StorageEvent) => {
    // Another tab of this user changed the outbox: take its version (sends are idempotent by
    // clientId, so two tabs sending the same item store and deliver it once).
    if (!this.storage.isOutboxKey(e.key)) return;
    this.outbox.reload();
    for (const item of this.outbox.items) ensureConversation(this.conversations, item.conversation, this.me);
    void this.outbox.flush();
  };

  constructor(
    me: string,
    private readonly connection: Connection,
    private readonly conversations: Conversations,
    private readonly hooks: SessionHooks,
  ) {
    this.me = me;
    this.storage = new UserStorage(me || '_');
    this.outbox = this.newOutbox();
  }

  start(): void {
    window.addEventListener('pagehide', this.onPageHide);
    window.addEventListener('storage', this.onStorage);
  }

  stop(): void {
    window.removeEventListener('pagehide', this.onPageHide);
    window.removeEventListener('storage', this.onStorage);
    this.outbox.stop();
    this.persistNow();
  }

  /** Saves what we have for the old user, then starts over, empty, as `user`. */
  switchUser(user: string): void {
    this.persistNow();
    this.me = user;
    this.storage = new UserStorage(user);
    this.outbox.stop();
    this.outbox = this.newOutbox();
    this.conversations.clear();
  }

  /** Shows what the cache remembers; returns the conversation that was open, if it still exists. */
  restore(): string | null {
    const taken = restoreCache(this.conversations, this.me, {
      conversations: this.storage.conversations(),
      receipts: this.storage.receipts(),
      recent: this.storage.recentMessages(),
    });
    this.settle(taken);
    for (const item of this.outbox.items) ensureConversation(this.conversations, item.conversation, this.me);
    const open = this.storage.openConversation();
    return open && this.conversations.has(open) ? open : null;
  }

  /** Our own message came back (ack, other device, sync after a lost ack): it is sent. */
  settle(messages: Message[]): void {
    for (const m of messages) if (m.clientId && m.from === this.me) this.outbox.remove(m.clientId);
  }

  persistSoon(): void {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => this.persistNow(), PERSIST_DELAY_MS);
  }

  persistNow(): void {
    clearTimeout(this.persistTimer);
    const cache = snapshotCache(this.conversations);
    this.storage.saveConversations(cache.conversations);
    this.storage.saveReceipts(cache.receipts);
    this.storage.saveRecentMessages(cache.recent);
  }

  private newOutbox(): Outbox {
    return new Outbox(this.storage, {
      connected: () => this.connection.connected,
      send: (item) => {
        const target = sendTarget(item.conversation, this.me);
        if (!target) {
          return Promise.resolve({ ok: false, error: { code: 'bad_request', message: 'unknown conversation' } });
        }
        return this.connection.request('message:send', { ...target, body: item.body, clientId: item.clientId });
      },
      sent: (m) => {
        if (isMessage(m)) {
          this.settle([m]);
          insertMessage(ensureConversation(this.conversations, m.conversation, this.me), m);
        }
        this.persistSoon();
        this.hooks.changed();
      },
      failed: (_item, error) => this.hooks.toast(`Message not sent: ${describeError(error)}`),
      retrying: (error) => this.hooks.toast(`${describeError(error)} Retrying…`, 'info'),
      changed: () => this.hooks.changed(),
    });
  }
}
