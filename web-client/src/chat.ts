// The page's model as the UI sees it: conversations, messages, outbox, receipts, typing and
// presence, kept in step with the server over one Connection. The UI reads `ChatClient` fields
// and calls its methods; every change ends in `changed()`, which re-renders.
//
// This class only routes: the rules are pure functions (inbox.ts, conversation.ts, cache.ts),
// round trips live in sync.ts, groups.ts, contacts.ts and presence.ts, timers in typing.ts,
// idle.ts and view.ts, and the user's device data and the socket's events in session.ts.

import type { Connection } from './connection';
import { Contacts } from './contacts';
import { messageStatus, title, typingUsers, type Conversation, type StatusInfo } from './conversation';
import { describeError, describeRefusal } from './errors';
import { Groups, type FoundPage } from './groups';
import { IdleReporter } from './idle';
import {
  applyReceipt,
  ensureConversation,
  isMessage,
  receiveMessage,
  sortedConversations,
  totalUnread,
  type Conversations,
} from './inbox';
import type { Outbox } from './outbox';
import type { OutboxItem } from './persist';
import { PresenceList } from './presence';
import {
  LIMITS,
  SETTABLE_STATUSES,
  dmId,
  isValidUserId,
  sendTarget,
  type ContactEntry,
  type ContactState,
  type ConversationId,
  type GroupChanges,
  type GroupVisibility,
  type Message,
  type Presence,
  type ReadyEvent,
  type SearchResult,
  type SettableStatus,
} from './protocol';
import { connect, Session } from './session';
import { expectedUser, type Credentials, type Settings } from './settings';
import { Sync } from './sync';
import type { Toast } from './toasts';
import { Typing } from './typing';
import { View } from './view';

export type { Conversation, MessageStatus, StatusInfo } from './conversation';
export type { OutboxItem } from './persist';
export type { FoundPage } from './groups';
export type { ShownStatus } from './presence';
export type { Toast } from './toasts';

export class ChatClient {
  node: string | null = null;
  readonly conversations: Conversations = new Map();
  /** Set when the server refused the credentials or the session expired. */
  authError: string | null = null;
  readonly connection: Connection;
  /** Bumped on every change; the UI re-renders on it. */
  version = 0;

  private readonly session: Session;
  private readonly view: View;
  private readonly people: PresenceList;
  private readonly typingState: Typing;
  private readonly sync: Sync;
  private readonly groups: Groups;
  private readonly roster: Contacts;
  private readonly idle: IdleReporter;
  private listeners = new Set<() => void>();
  private notifyQueued = false;

  constructor(
    readonly credentials: Credentials,
    private settings: Settings,
  ) {
    // One object for every part's hooks; each part's interface names what it may use.
    const hooks = {
      me: () => this.me,
      changed: () => this.changed(),
      toast: (text: string, kind?: Toast['kind']) => this.toast(text, kind),
      persistSoon: () => this.session.persistSoon(),
      settle: (messages: Message[]) => this.session.settle(messages),
      storage: () => this.session.storage,
      readingId: () => this.view.readingId(),
      markRead: () => this.view.markRead(),
      subscribePresence: (users: string[]) => void this.people.subscribe(users),
      refreshConversations: () => void this.sync.refreshConversations(),
      open: (id: string) => this.openConversation(id),
      remove: (id: string) => this.remove(id),
      joinedAt: new Map<string, number>(),
    };
    this.connection = connect(credentials, settings, {
      message: (m) => this.onMessage(m),
      typing: (e) => this.typingState.receive(e),
      receipt: (e) => {
        if (!applyReceipt(this.conversations, e)) return;
        this.session.persistSoon();
        this.changed();
      },
      presence: (e) => this.people.apply(e),
      groupMember: (e) => this.groups.onMember(e),
      groupUpdated: (e) => this.groups.onUpdated(e),
      contact: (e) => this.roster.apply(e),
      ready: (event) => void this.onReady(event),
      refused: (message) => {
        this.authError = describeRefusal(message, !!this.node);
        this.changed();
      },
      changed: hooks.changed,
    });
    this.session = new Session(expectedUser(credentials) ?? '', this.connection, this.conversations, hooks);
    this.view = new View(this.connection, this.conversations, hooks);
    this.people = new PresenceList(this.connection, hooks);
    this.typingState = new Typing(this.connection, this.conversations, hooks);
    this.groups = new Groups(this.connection, this.conversations, hooks);
    this.sync = new Sync(this.connection, this.conversations, hooks);
    this.roster = new Contacts(this.connection, {
      ...hooks,
      presence: (user, presence) => this.people.set(user, presence),
      relationChanged: (user, state) => {
        // Contacts are followed live whatever the server's visibility (asked again: a DM
        // partner may have been hidden until now); one gone may now be hidden.
        if (state === 'contact') void this.people.recheck(user);
        else if (state === 'none' && this.people.users.has(user)) void this.people.recheck(user);
      },
    });
    this.idle = new IdleReporter(this.connection, settings.idleSeconds * 1000);
    this.restore();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  start(): void {
    this.view.start();
    this.session.start();
    this.typingState.start();
    this.idle.start();
    this.connection.start();
  }

  stop(): void {
    this.idle.stop();
    this.typingState.stop();
    this.view.stop();
    this.session.stop();
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
    if (settings.idleSeconds !== this.settings.idleSeconds) this.idle.setDelay(settings.idleSeconds);
    this.settings = settings;
    if (changed) this.connection.reconfigure(settings);
  }

  // ---- queries for the UI ------------------------------------------------------------------

  get me(): string {
    return this.session.me;
  }

  get outbox(): Outbox {
    return this.session.outbox;
  }

  get presence(): Map<string, Presence> {
    return this.people.users;
  }

  /** The user's own presence as others see it (status and text); null until the server said. */
  get myPresence(): Presence | null {
    return this.people.own;
  }

  /** Whether this device currently counts as idle (no input for a while, or the page hidden). */
  get idleHere(): boolean {
    return this.idle.idle;
  }

  /** The contact roster by state, sorted by user id. */
  contactList(): Record<ContactState, ContactEntry[]> {
    return this.roster.grouped();
  }

  /** Whether the roster has been read, and why the last read failed (null if it did not). */
  get contactsLoaded(): boolean {
    return this.roster.loaded;
  }

  get contactsError(): string | null {
    return this.roster.error;
  }

  /** Contact requests waiting for an answer. */
  incomingRequests(): number {
    return this.roster.incomingCount();
  }

  get openId(): string | null {
    return this.view.openId;
  }

  get open(): Conversation | null {
    return this.view.open;
  }

  get toasts(): Toast[] {
    return this.view.toasts;
  }

  /** Conversations, most recently active first. */
  sortedConversations(): Conversation[] {
    return sortedConversations(this.conversations);
  }

  outboxFor(conversation: string): OutboxItem[] {
    return this.outbox.for(conversation);
  }

  title(c: Conversation): string {
    return title(c);
  }

  /** Unread messages in conversations other than the one being read. */
  totalUnread(): number {
    return totalUnread(this.conversations, this.openId);
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
    this.view.select(id);
    this.session.storage.saveOpenConversation(id);
    const c = this.open;
    if (c) {
      if (c.history === 'none' || c.history === 'error') void this.sync.loadHistory(c);
      if (c.kind === 'group' && !c.groupLoaded) void this.groups.loadMembers(c.id);
      if (c.kind === 'dm' && c.peer) void this.people.subscribe([c.peer]);
      this.view.markRead();
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
    this.session.persistSoon();
    return null;
  }

  /** Creates a group (public unless said) and opens it; an error text or null. */
  createGroup(name: string, members: string[], visibility: GroupVisibility = 'public'): Promise<string | null> {
    return this.groups.create(name, members, visibility);
  }

  /** Joins a group by id (or conversation id) and opens it; an error text or null. */
  joinGroup(groupId: string): Promise<string | null> {
    return this.groups.join(groupId);
  }

  leaveGroup(conversation: string): Promise<void> {
    return this.groups.leave(conversation);
  }

  // Managing a group: `group` is its id or its conversation id. Each returns an error text
  // for people when the server refuses (not allowed, no such member, too long), or null.

  /** Renames the group, sets (`''` clears) its topic, or makes it public or private. */
  updateGroup(group: string, changes: GroupChanges): Promise<string | null> {
    return this.groups.update(group, changes);
  }

  /** Adds `user` as a member (owner and admins). */
  inviteToGroup(group: string, user: string): Promise<string | null> {
    return this.groups.invite(group, user);
  }

  /** Removes `user` from the group (the owner anyone, admins plain members). */
  kick(group: string, user: string): Promise<string | null> {
    return this.groups.kick(group, user);
  }

  /** Makes `user` an admin (the owner only). */
  promote(group: string, user: string): Promise<string | null> {
    return this.groups.promote(group, user);
  }

  /** Makes admin `user` a plain member again (the owner only). */
  demote(group: string, user: string): Promise<string | null> {
    return this.groups.demote(group, user);
  }

  /** Deletes the group and its messages for everyone (the owner only). */
  deleteGroup(group: string): Promise<string | null> {
    return this.groups.delete(group);
  }

  /** Public groups whose name starts with `prefix`, in any case, by name; or an error text. */
  findGroups(prefix: string, cursor?: string): Promise<FoundPage | string> {
    return this.groups.find(prefix, cursor);
  }

  /**
   * Searches the archive (the server's `search`): results newest first and the cursor of the
   * next page, or an error text (no archive on the server: `unavailable`).
   */
  async search(query: string, cursor?: string): Promise<{ results: SearchResult[]; cursor?: string } | string> {
    const q = query.trim();
    if (!q) return 'Type something to search for.';
    if ([...q].length > LIMITS.searchQuery) return `Searches can be at most ${LIMITS.searchQuery} characters.`;
    const ack = await this.connection.request<{ results: SearchResult[]; cursor?: string }>('search', {
      query: q,
      ...(cursor ? { cursor } : {}),
    });
    if (!ack.ok) return describeError(ack.error);
    return { results: ack.results, cursor: ack.cursor };
  }

  /** Asks `user` to be a contact (accepts their request if they asked first); an error text or null. */
  requestContact(user: string): Promise<string | null> {
    return this.roster.request(user);
  }

  acceptContact(user: string): Promise<string | null> {
    return this.roster.accept(user);
  }

  declineContact(user: string): Promise<string | null> {
    return this.roster.decline(user);
  }

  /** Ends a contact, or withdraws a request we sent. */
  removeContact(user: string): Promise<string | null> {
    return this.roster.remove(user);
  }

  /** Sets what the user is up to, for all their devices (`presence:status`); an error text or null. */
  async setStatus(status: SettableStatus, text: string): Promise<string | null> {
    if (!SETTABLE_STATUSES.includes(status)) return 'Pick available, away or busy.';
    const t = text.trim();
    if ([...t].length > LIMITS.statusText) return `A status text can be at most ${LIMITS.statusText} characters.`;
    const ack = await this.connection.request('presence:status', { status, ...(t ? { text: t } : {}) });
    if (!ack.ok) return describeError(ack.error);
    // The `presence` event about ourselves follows (when others see a change); show it now.
    const own = this.people.own;
    if (own?.online !== false) this.people.apply({ user: this.me, online: true, lastSeen: null, status, ...(t ? { text: t } : {}) });
    return null;
  }

  /** Opens a conversation a search found (known here or not). */
  openFound(conversation: ConversationId): void {
    this.ensure(conversation);
    this.openConversation(conversation);
  }

  loadOlder(conversation: string): Promise<void> {
    return this.sync.loadOlder(conversation);
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
    this.typingState.keystroke(conversation);
  }

  sendTypingStop(): void {
    this.typingState.stopSending();
  }

  /** The message list tells whether its newest message is in view. */
  setAtBottom(atBottom: boolean): void {
    this.view.setAtBottom(atBottom);
  }

  toast(text: string, kind: Toast['kind'] = 'error'): void {
    this.view.toast(text, kind);
  }

  dismissToast(id: number): void {
    this.view.dismissToast(id);
  }

  // ---- server events ---------------------------------------------------------------------------

  private async onReady(event: ReadyEvent): Promise<void> {
    if (event.user !== this.me) {
      this.session.switchUser(event.user);
      this.roster.clear();
      this.people.own = null;
      this.restore();
    }
    this.node = event.node;
    // Group changes made while away were not told: read them again when shown.
    for (const c of this.conversations.values()) c.groupLoaded = false;
    this.people.reset();
    this.view.resetReads();
    this.authError = null;
    this.idle.connected();
    this.changed();
    void this.people.loadOwn();
    void this.roster.load().then(() => {
      const { contact } = this.roster.grouped();
      void this.people.subscribe(contact.map((e) => e.user));
    });
    await Promise.all([this.sync.catchUp(), this.sync.refreshConversations()]);
    const open = this.open;
    if (open) {
      if (open.history === 'none' || open.history === 'error') void this.sync.loadHistory(open);
      if (open.kind === 'group') void this.groups.loadMembers(open.id);
    }
    this.view.markRead();
    void this.outbox.flush();
  }

  private onMessage(m: Message): void {
    if (!isMessage(m)) return;
    const known = this.conversations.has(m.conversation);
    const c = this.ensure(m.conversation);
    if (!known && c.peer) void this.people.subscribe([c.peer]);
    this.session.settle([m]);
    const reading = this.view.isReading(c);
    if (!receiveMessage(c, m, this.me, reading)) return;
    if (m.from !== this.me && reading) this.view.markRead();
    this.session.persistSoon();
    this.changed();
  }

  // ---- model helpers ------------------------------------------------------------------------------

  private ensure(id: string): Conversation {
    return ensureConversation(this.conversations, id, this.me);
  }

  private remove(id: string): void {
    this.conversations.delete(id);
    if (this.openId === id) this.openConversation(null);
    this.session.persistSoon();
    this.changed();
  }

  /** What the cache remembers, shown before the server is reached. */
  private restore(): void {
    const open = this.session.restore();
    if (open) this.view.openId = open;
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
