// The page's model: conversations, messages, outbox, receipts, typing and presence, kept in
// step with the server over one Connection. The UI reads `ChatClient` fields and calls its
// methods; every change ends in `changed()`, which re-renders.

import type { Socket } from 'socket.io-client';
import { Connection } from './connection';
import {
  activity,
  bumpLast,
  insertMessage,
  messageStatus,
  newConversation,
  retainMessages,
  title,
  typingUsers,
  type Conversation,
  type StatusInfo,
} from './conversation';
import { Outbox } from './outbox';
import { UserStorage, type CachedReceipts, type OutboxItem } from './persist';
import {
  LIMITS,
  compareIds,
  dmId,
  groupConversationId,
  isValidUserId,
  maxId,
  parseConversation,
  sendTarget,
  type ConversationSummary,
  type Group,
  type GroupMemberEvent,
  type Message,
  type Presence,
  type PresenceEvent,
  type ReadyEvent,
  type ReceiptEvent,
  type TypingEvent,
} from './protocol';
import { expectedUser, type Credentials, type Settings } from './settings';
import { describeError } from './errors';

export type { Conversation, MessageStatus, StatusInfo } from './conversation';
export type { OutboxItem } from './persist';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

const TYPING_REFRESH_MS = 2500;
const TYPING_IDLE_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const SYNC_MAX_PAGES = 50;
const CACHED_CONVERSATIONS = 20;
const CACHED_MESSAGES = 40;

let toastIds = 0;

export class ChatClient {
  me: string;
  node: string | null = null;
  readonly conversations = new Map<string, Conversation>();
  outbox: Outbox;
  readonly presence = new Map<string, Presence>();
  openId: string | null = null;
  toasts: Toast[] = [];
  /** Set when the server refused the credentials or the session expired. */
  authError: string | null = null;
  readonly connection: Connection;
  /** Bumped on every change; the UI re-renders on it. */
  version = 0;

  private storage: UserStorage;
  private listeners = new Set<() => void>();
  private notifyQueued = false;
  private atBottom = true;
  private readSent = new Map<string, string>();
  private subscribed = new Set<string>();
  private typingSent: { conversation: string; at: number } | null = null;
  private typingIdle: ReturnType<typeof setTimeout> | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private persistTimer: ReturnType<typeof setTimeout> | undefined;
  private recentGroups = new Map<string, number>();
  private olderFailedAt = new Map<string, number>();
  private readonly onVisibility = () => this.markReadIfVisible();
  private readonly onPageHide = () => this.persistNow();
  private readonly onStorage = (e: StorageEvent) => {
    // Another tab of this user changed the outbox: take its version (sends are idempotent by
    // clientId, so two tabs sending the same item store and deliver it once).
    if (!this.storage.isOutboxKey(e.key)) return;
    this.outbox.reload();
    for (const item of this.outbox.items) this.ensure(item.conversation);
    void this.outbox.flush();
  };

  constructor(
    readonly credentials: Credentials,
    private settings: Settings,
  ) {
    this.me = expectedUser(credentials) ?? '';
    this.storage = new UserStorage(this.me || '_');
    this.outbox = this.newOutbox();
    this.loadCached();
    const auth: Record<string, string> = credentials.token
      ? { token: credentials.token }
      : { user: credentials.user };
    this.connection = new Connection(settings, auth, {
      bind: (socket) => this.bind(socket),
      ready: (event) => void this.onReady(event),
      refused: (message) => {
        const reason = message.replace(/^unauthorized:?\s*/, '') || 'unauthorized';
        // Refused after having been in: the token expired. Otherwise the sign-in itself failed.
        this.authError = this.node ? 'Your session has expired. Sign in again.' : `Sign-in refused: ${reason}`;
        this.changed();
      },
      changed: () => this.changed(),
    });
  }

  // ---- lifecycle -------------------------------------------------------------------------

  start(): void {
    document.addEventListener('visibilitychange', this.onVisibility);
    window.addEventListener('pagehide', this.onPageHide);
    window.addEventListener('storage', this.onStorage);
    this.sweeper = setInterval(() => this.sweepTyping(), 1000);
    this.connection.start();
  }

  stop(): void {
    this.sendTypingStop();
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.removeEventListener('pagehide', this.onPageHide);
    window.removeEventListener('storage', this.onStorage);
    clearInterval(this.sweeper);
    this.outbox.stop();
    this.persistNow();
    this.connection.stop();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  applySettings(settings: Settings): void {
    const changed =
      settings.forcePolling !== this.settings.forcePolling ||
      settings.registry !== this.settings.registry ||
      settings.server !== this.settings.server;
    this.settings = settings;
    if (changed) this.connection.reconfigure(settings);
  }

  // ---- queries for the UI ------------------------------------------------------------------

  get open(): Conversation | null {
    return this.openId ? (this.conversations.get(this.openId) ?? null) : null;
  }

  /** Conversations, most recently active first. */
  sortedConversations(): Conversation[] {
    return [...this.conversations.values()].sort((a, b) => activity(b) - activity(a));
  }

  outboxFor(conversation: string): OutboxItem[] {
    return this.outbox.for(conversation);
  }

  title(c: Conversation): string {
    return title(c);
  }

  /** Unread messages in conversations other than the one being read. */
  totalUnread(): number {
    let total = 0;
    for (const c of this.conversations.values()) if (c.id !== this.openId) total += c.unread;
    return total;
  }

  typingUsers(c: Conversation): string[] {
    return typingUsers(c);
  }

  status(c: Conversation, m: Message): StatusInfo | null {
    return messageStatus(c, m, this.me);
  }

  // ---- actions -----------------------------------------------------------------------------

  openConversation(id: string | null): void {
    if (this.openId !== id) this.sendTypingStop();
    this.openId = id;
    this.atBottom = true;
    this.storage.saveOpenConversation(id);
    const c = this.open;
    if (c) {
      if (c.history === 'none' || c.history === 'error') void this.loadHistory(c);
      if (c.kind === 'group' && !c.members) void this.loadMembers(c.id);
      if (c.kind === 'dm' && c.peer) void this.subscribePresence([c.peer]);
      this.markReadIfVisible();
    }
    this.changed();
  }

  /** Opens (creating locally if needed) the DM with `user`; returns an error text or null. */
  startDirect(user: string): string | null {
    const id = user.trim();
    if (!isValidUserId(id)) return 'User ids are 1–64 letters, digits, “.”, “_” or “-”.';
    if (id === this.me) return 'You cannot message yourself.';
    const c = this.ensure(dmId(this.me, id));
    c.touched = Date.now();
    this.openConversation(c.id);
    this.persistSoon();
    return null;
  }

  async createGroup(name: string, members: string[]): Promise<string | null> {
    const res = await this.connection.request<{ group: Group }>('group:create', {
      name: name.trim(),
      members: members.filter((m) => m !== this.me),
    });
    if (!res.ok) return describeError(res.error);
    this.adoptGroup(res.group);
    return null;
  }

  async joinGroup(groupId: string): Promise<string | null> {
    const id = groupId.trim().replace(/^group:/, '');
    if (!id) return 'Enter a group id.';
    const res = await this.connection.request<{ group: Group }>('group:join', { group: id });
    if (!res.ok) return describeError(res.error);
    this.adoptGroup(res.group);
    return null;
  }

  async leaveGroup(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c?.groupId) return;
    const res = await this.connection.request('group:leave', { group: c.groupId });
    if (!res.ok) return this.toast(describeError(res.error));
    this.remove(conversation);
  }

  async loadMembers(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c?.groupId) return;
    const res = await this.connection.request<{ members: string[] }>('group:members', { group: c.groupId });
    if (!res.ok) {
      if (res.error.code !== 'offline') this.toast(describeError(res.error));
      return;
    }
    c.members = res.members;
    void this.subscribePresence(res.members.filter((u) => u !== this.me));
    this.changed();
  }

  async loadOlder(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c || c.history !== 'loaded' || !c.hasMore || c.loadingOlder || !this.connection.connected) return;
    // After a failure, wait a little: the list asks again on every render and scroll.
    if (Date.now() - (this.olderFailedAt.get(conversation) ?? 0) < 3000) return;
    const oldest = c.messages[0];
    if (!oldest) return;
    c.loadingOlder = true;
    this.changed();
    const res = await this.connection.request<{ messages: Message[]; hasMore: boolean }>('history', {
      conversation,
      before: oldest.id,
      limit: LIMITS.historyPage,
    });
    c.loadingOlder = false;
    if (res.ok) {
      for (const m of res.messages.filter(isMessage)) this.insert(c, m);
      c.hasMore = res.hasMore;
    } else {
      this.olderFailedAt.set(conversation, Date.now());
      if (res.error.code !== 'offline') this.toast(describeError(res.error));
    }
    this.changed();
  }

  /** Queues a message; returns an error text when it cannot be sent as is. */
  send(conversation: string, text: string): string | null {
    const body = text.trim();
    if (!body) return null;
    if ([...body].length > LIMITS.body) return `Messages can be at most ${LIMITS.body} characters.`;
    if (!sendTarget(conversation, this.me)) return 'Unknown conversation.';
    this.sendTypingStop();
    this.outbox.add(conversation, body);
    this.ensure(conversation).touched = Date.now();
    void this.outbox.flush();
    return null;
  }

  retry(clientId: string): void {
    this.outbox.retry(clientId);
  }

  discard(clientId: string): void {
    this.outbox.remove(clientId);
  }

  /** Call on every keystroke in the composer. */
  typing(conversation: string): void {
    const now = Date.now();
    const sent = this.typingSent;
    if (!sent || sent.conversation !== conversation || now - sent.at > TYPING_REFRESH_MS) {
      if (sent && sent.conversation !== conversation) this.sendTypingStop();
      this.connection.volatile('typing', { conversation, typing: true });
      this.typingSent = { conversation, at: now };
    }
    clearTimeout(this.typingIdle);
    this.typingIdle = setTimeout(() => this.sendTypingStop(), TYPING_IDLE_MS);
  }

  sendTypingStop(): void {
    clearTimeout(this.typingIdle);
    const sent = this.typingSent;
    if (!sent) return;
    this.typingSent = null;
    this.connection.volatile('typing', { conversation: sent.conversation, typing: false });
  }

  /** The message list tells whether its newest message is in view. */
  setAtBottom(atBottom: boolean): void {
    if (this.atBottom === atBottom) return;
    this.atBottom = atBottom;
    if (atBottom) this.markReadIfVisible();
  }

  toast(text: string, kind: Toast['kind'] = 'error'): void {
    if (this.toasts.some((t) => t.text === text)) return;
    const toast = { id: ++toastIds, kind, text };
    this.toasts = [...this.toasts, toast].slice(-4);
    setTimeout(() => this.dismissToast(toast.id), kind === 'error' ? 8000 : 5000);
    this.changed();
  }

  dismissToast(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
    this.changed();
  }

  // ---- server events ---------------------------------------------------------------------------

  private bind(socket: Socket): void {
    socket.on('message', (m: Message, ack?: () => void) => {
      this.onMessage(m);
      ack?.();
    });
    socket.on('typing', (e: TypingEvent) => this.onTyping(e));
    socket.on('receipt', (e: ReceiptEvent) => this.onReceipt(e));
    socket.on('presence', (e: PresenceEvent) => {
      if (!e || typeof e.user !== 'string') return;
      this.presence.set(e.user, { online: !!e.online, lastSeen: e.lastSeen ?? null });
      this.changed();
    });
    socket.on('group:member', (e: GroupMemberEvent) => this.onGroupMember(e));
    socket.on('drain', () => this.connection.reconnect('The server is restarting; reconnecting…'));
  }

  private async onReady(event: ReadyEvent): Promise<void> {
    if (event.user !== this.me) this.switchUser(event.user);
    this.node = event.node;
    this.subscribed.clear();
    this.readSent.clear();
    this.authError = null;
    this.changed();
    await Promise.all([this.sync(), this.refreshConversations()]);
    const open = this.open;
    if (open) {
      if (open.history === 'none' || open.history === 'error') void this.loadHistory(open);
      if (open.kind === 'group') void this.loadMembers(open.id);
    }
    this.markReadIfVisible();
    void this.outbox.flush();
  }

  private onMessage(m: Message): void {
    if (!isMessage(m)) return;
    const known = this.conversations.has(m.conversation);
    const c = this.ensure(m.conversation);
    if (!known && c.peer) void this.subscribePresence([c.peer]);
    if (!this.insert(c, m)) return;
    if (m.from !== this.me) {
      delete c.typing[m.from];
      if (this.isReading(c)) this.markReadIfVisible();
      else c.unread++;
    }
    this.persistSoon();
    this.changed();
  }

  private onTyping(e: TypingEvent): void {
    if (!e || typeof e.user !== 'string' || e.user === this.me) return;
    const c = this.conversations.get(e.conversation);
    if (!c) return;
    if (e.typing) c.typing[e.user] = Date.now() + TYPING_SHOWN_MS;
    else delete c.typing[e.user];
    this.changed();
  }

  private onReceipt(e: ReceiptEvent): void {
    if (!e || typeof e.messageId !== 'string' || typeof e.user !== 'string') return;
    const c = this.conversations.get(e.conversation);
    if (!c) return;
    const { delivered, read } = c.receipts;
    delivered[e.user] = maxId(delivered[e.user], e.messageId);
    if (e.status === 'read') read[e.user] = maxId(read[e.user], e.messageId);
    this.persistSoon();
    this.changed();
  }

  private onGroupMember(e: GroupMemberEvent): void {
    if (!e || typeof e.group !== 'string') return;
    const id = groupConversationId(e.group);
    const c = this.conversations.get(id);
    if (e.user === this.me) {
      if (e.event === 'left') this.remove(id);
      else if (!c) void this.refreshConversations();
      return;
    }
    if (!c?.members) return;
    if (e.event === 'joined' && !c.members.includes(e.user)) {
      c.members = [...c.members, e.user];
      void this.subscribePresence([e.user]);
    }
    if (e.event === 'left') c.members = c.members.filter((u) => u !== e.user);
    this.changed();
  }

  // ---- catching up -----------------------------------------------------------------------------

  /** Everything since the stored cursor, page by page. */
  private async sync(): Promise<void> {
    let cursor = this.storage.cursor();
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
          this.storage.saveCursor(undefined);
          continue;
        }
        if (res.error.code !== 'offline') this.toast(`Could not catch up: ${describeError(res.error)}`);
        return;
      }
      if (res.truncated) this.forgetLoadedHistory();
      for (const m of res.messages) {
        if (!isMessage(m)) continue;
        const c = this.ensure(m.conversation);
        this.insert(c, m);
      }
      cursor = res.cursor;
      this.storage.saveCursor(cursor);
      this.changed();
      if (!res.hasMore) break;
    }
    this.persistSoon();
  }

  private async refreshConversations(): Promise<void> {
    const res = await this.connection.request<{ conversations: ConversationSummary[] }>('conversations', {});
    if (!res.ok || !Array.isArray(res.conversations)) return;
    const listed = new Set<string>();
    for (const s of res.conversations) {
      if (!s || typeof s.id !== 'string' || !parseConversation(s.id)) continue;
      listed.add(s.id);
      const c = this.ensure(s.id);
      if (s.name) c.name = s.name;
      if (s.lastMessage && isMessage(s.lastMessage)) bumpLast(c, s.lastMessage);
      c.unread = this.isReading(c) ? 0 : Math.max(0, s.unread | 0);
    }
    // Groups missing from the list were left (maybe on another device). A group created or
    // joined a moment ago may be missing only because the list was read just before.
    const now = Date.now();
    for (const c of [...this.conversations.values()]) {
      if (c.kind === 'group' && !listed.has(c.id) && now - (this.recentGroups.get(c.id) ?? 0) > 30_000) {
        this.remove(c.id);
      }
    }
    const peers = [...this.conversations.values()].flatMap((c) => (c.peer ? [c.peer] : []));
    void this.subscribePresence(peers);
    this.persistSoon();
    this.changed();
  }

  private async loadHistory(c: Conversation): Promise<void> {
    c.history = 'loading';
    this.changed();
    const res = await this.connection.request<{ messages: Message[]; hasMore: boolean }>('history', {
      conversation: c.id,
      limit: LIMITS.historyPage,
    });
    if (!res.ok) {
      c.history = res.error.code === 'offline' ? 'none' : 'error';
      if (res.error.code !== 'offline') this.toast(describeError(res.error));
      this.changed();
      return;
    }
    const page = res.messages.filter(isMessage);
    if (c.cached.size > 0) {
      // The server's page replaces what the reload cache showed.
      const confirmed = new Set(page.map((m) => m.id));
      retainMessages(c, (m) => !c.cached.has(m.id) || confirmed.has(m.id));
      c.cached.clear();
    }
    if (res.hasMore && page.length > 0) {
      // Keep only what joins this page without a gap; older ones come back when scrolling up.
      const oldest = page[0].id;
      retainMessages(c, (m) => compareIds(m.id, oldest) >= 0);
    }
    for (const m of page) this.insert(c, m);
    c.hasMore = res.hasMore;
    c.history = 'loaded';
    this.markReadIfVisible();
    this.persistSoon();
    this.changed();
  }

  private async subscribePresence(users: string[]): Promise<void> {
    const fresh = [...new Set(users)].filter((u) => u && u !== this.me && !this.subscribed.has(u));
    for (let i = 0; i < fresh.length; i += LIMITS.presencePerCall) {
      const chunk = fresh.slice(i, i + LIMITS.presencePerCall);
      chunk.forEach((u) => this.subscribed.add(u));
      const res = await this.connection.request<{ presence: Record<string, Presence> }>('presence:subscribe', {
        users: chunk,
      });
      if (!res.ok) {
        chunk.forEach((u) => this.subscribed.delete(u));
        return;
      }
      for (const [user, p] of Object.entries(res.presence ?? {})) {
        this.presence.set(user, { online: !!p?.online, lastSeen: p?.lastSeen ?? null });
      }
      this.changed();
    }
  }

  // ---- reading -----------------------------------------------------------------------------------

  private isReading(c: Conversation): boolean {
    return c.id === this.openId && this.atBottom && document.visibilityState === 'visible';
  }

  /** Tells the server we read the open conversation, when it is on screen and scrolled down. */
  private markReadIfVisible(): void {
    const c = this.open;
    if (!c || !this.isReading(c)) return;
    if (c.unread !== 0) {
      c.unread = 0;
      this.changed();
    }
    const newest = c.messages.at(-1);
    if (!newest || !this.connection.connected) return;
    const sent = this.readSent.get(c.id);
    const unreadFromOthers = c.messages.some(
      (m) => m.from !== this.me && (sent === undefined || compareIds(m.id, sent) > 0),
    );
    if (!unreadFromOthers) return;
    this.readSent.set(c.id, newest.id);
    void this.connection.request('read', { conversation: c.id, messageId: newest.id }).then((res) => {
      if (!res.ok && this.readSent.get(c.id) === newest.id) this.readSent.delete(c.id);
    });
    this.persistSoon();
  }

  // ---- model helpers ------------------------------------------------------------------------------

  private ensure(id: string): Conversation {
    let c = this.conversations.get(id);
    if (!c) {
      c = newConversation(id, this.me);
      this.conversations.set(id, c);
    }
    return c;
  }

  /** Adds a confirmed message in id order; false when it was already there. */
  private insert(c: Conversation, m: Message): boolean {
    // Our own message came back (ack, other device, sync after a lost ack): it is sent.
    if (m.clientId && m.from === this.me) this.outbox.remove(m.clientId);
    return insertMessage(c, m);
  }

  private newOutbox(): Outbox {
    return new Outbox(this.storage, {
      connected: () => this.connection?.connected ?? false,
      send: (item) => {
        const target = sendTarget(item.conversation, this.me);
        if (!target) return Promise.resolve({ ok: false, error: { code: 'bad_request', message: 'unknown conversation' } });
        return this.connection.request('message:send', { ...target, body: item.body, clientId: item.clientId });
      },
      sent: (m) => {
        if (isMessage(m)) this.insert(this.ensure(m.conversation), m);
        this.persistSoon();
        this.changed();
      },
      failed: (_item, error) => this.toast(`Message not sent: ${describeError(error)}`),
      retrying: (error) => this.toast(`${describeError(error)} Retrying…`, 'info'),
      changed: () => this.changed(),
    });
  }

  private adoptGroup(group: Group): void {
    const c = this.ensure(groupConversationId(group.id));
    c.name = group.name;
    c.owner = group.owner;
    c.members = group.members;
    c.touched = Date.now();
    this.recentGroups.set(c.id, Date.now());
    void this.subscribePresence(group.members);
    this.openConversation(c.id);
    this.persistSoon();
  }

  private remove(id: string): void {
    this.conversations.delete(id);
    if (this.openId === id) this.openConversation(null);
    this.persistSoon();
    this.changed();
  }

  private forgetLoadedHistory(): void {
    for (const c of this.conversations.values()) {
      c.messages = [];
      c.ids = new Set();
      c.cached = new Set();
      c.history = 'none';
      c.hasMore = false;
    }
  }

  private sweepTyping(): void {
    const now = Date.now();
    let changed = false;
    for (const c of this.conversations.values()) {
      for (const [user, until] of Object.entries(c.typing)) {
        if (until <= now) {
          delete c.typing[user];
          changed = true;
        }
      }
    }
    if (changed) this.changed();
  }

  private switchUser(user: string): void {
    this.persistNow();
    this.me = user;
    this.storage = new UserStorage(user);
    this.outbox.stop();
    this.outbox = this.newOutbox();
    this.conversations.clear();
    this.loadCached();
  }

  private loadCached(): void {
    const receipts = this.storage.receipts();
    for (const cached of this.storage.conversations()) {
      if (!parseConversation(cached.id)) continue;
      const c = this.ensure(cached.id);
      c.name = cached.name;
      c.lastMessage = cached.lastMessage;
      c.unread = cached.unread;
      c.touched = cached.touched;
    }
    for (const [id, r] of Object.entries(receipts)) {
      if (!parseConversation(id)) continue;
      this.ensure(id).receipts = { delivered: { ...r?.delivered }, read: { ...r?.read } };
    }
    for (const [id, messages] of Object.entries(this.storage.recentMessages())) {
      if (!parseConversation(id) || !Array.isArray(messages)) continue;
      const c = this.ensure(id);
      for (const m of messages) {
        if (isMessage(m) && m.conversation === id && this.insert(c, m)) c.cached.add(m.id);
      }
    }
    for (const item of this.outbox.items) this.ensure(item.conversation);
    const open = this.storage.openConversation();
    if (open && this.conversations.has(open)) this.openId = open;
  }

  private persistSoon(): void {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => this.persistNow(), 300);
  }

  private persistNow(): void {
    clearTimeout(this.persistTimer);
    const list = [...this.conversations.values()];
    this.storage.saveConversations(
      list.map((c) => ({ id: c.id, name: c.name, lastMessage: c.lastMessage, unread: c.unread, touched: c.touched })),
    );
    const receipts: Record<string, CachedReceipts> = {};
    for (const c of list) {
      if (Object.keys(c.receipts.delivered).length) receipts[c.id] = c.receipts;
    }
    this.storage.saveReceipts(receipts);
    const recent: Record<string, Message[]> = {};
    for (const c of this.sortedConversations().slice(0, CACHED_CONVERSATIONS)) {
      if (c.messages.length) recent[c.id] = c.messages.slice(-CACHED_MESSAGES);
    }
    this.storage.saveRecentMessages(recent);
  }

  private changed(): void {
    this.version++;
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      this.listeners.forEach((l) => l());
    });
  }
}

function isMessage(m: unknown): m is Message {
  const x = m as Message;
  return !!x && typeof x.id === 'string' && typeof x.conversation === 'string' && typeof x.from === 'string';
}
