// Types and helpers for the chat protocol (docs/protocol.md, version 1).

export type ConversationId = string;

/** A stored message, as the server sends it. */
export interface Message {
  /** `<ms>-<seq>`; compare with {@link compareIds}, never as strings. */
  id: string;
  conversation: ConversationId;
  from: string;
  body: string;
  /** Milliseconds since the epoch. */
  ts: number;
  clientId?: string;
}

/** `public`: found with `group:find`, anyone may join; `private`: members are added (`group:invite`). */
export type GroupVisibility = 'public' | 'private';
export const GROUP_VISIBILITIES: readonly GroupVisibility[] = ['public', 'private'];

/** A group as acks and `group:updated` give it. */
export interface Group {
  id: string;
  name: string;
  owner: string;
  members: string[];
  /** In the order they became admins; the owner is not listed. (Older servers: absent.) */
  admins?: string[];
  /** Only when one is set. */
  topic?: string;
  visibility?: GroupVisibility;
}

/** What `group:update` may change; `topic: ''` clears it. */
export interface GroupChanges {
  name?: string;
  topic?: string;
  visibility?: GroupVisibility;
}

/** A public group as `group:find` lists it to anyone (no member list). */
export interface FoundGroup {
  id: string;
  name: string;
  topic?: string;
  memberCount: number;
}

/** One `search` result: a message and its conversation (a group's with its name). */
export interface SearchResult {
  conversation: { id: ConversationId; name?: string };
  message: Message;
}

export interface ConversationSummary {
  id: ConversationId;
  name?: string;
  lastMessage: Message | null;
  unread: number;
}

/**
 * What an online user is up to. `available`, `away` and `busy` are set (`presence:status`);
 * `idle` is shown for an available user whose every device reported inactivity.
 */
export type PresenceStatus = 'available' | 'away' | 'busy' | 'idle';
/** The statuses a user can choose. */
export type SettableStatus = Exclude<PresenceStatus, 'idle'>;
export const SETTABLE_STATUSES: readonly SettableStatus[] = ['available', 'away', 'busy'];

export interface Presence {
  online: boolean;
  /** When the user's last device disconnected (ms since epoch), `null` if unknown. */
  lastSeen: number | null;
  /** While online (servers that know statuses). */
  status?: PresenceStatus;
  /** The user's status text, while online, when they set one. */
  text?: string;
}

/** An entry of the user's contact roster: asked (`outgoing`), asked by them (`incoming`), agreed. */
export type ContactState = 'outgoing' | 'incoming' | 'contact';

export interface ContactEntry {
  user: string;
  state: ContactState;
  /** Given for contacts who show the user their presence. */
  presence?: Presence;
}

/** The roster's entry for `user` changed; `none`: it is gone (declined, withdrawn, removed, blocked). */
export interface ContactEvent {
  user: string;
  state: ContactState | 'none';
  presence?: Presence;
}

export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  // Client-side only: no answer in time, or no connection to ask on.
  | 'timeout'
  | 'offline';

export interface ErrorInfo {
  code: ErrorCode | string;
  message: string;
}

export type Ack<T> = ({ ok: true } & T) | { ok: false; error: ErrorInfo };

export interface ReadyEvent {
  user: string;
  node: string;
}
export interface TypingEvent {
  conversation: ConversationId;
  user: string;
  typing: boolean;
}
export interface ReceiptEvent {
  conversation: ConversationId;
  user: string;
  messageId: string;
  status: 'delivered' | 'read';
}
export interface PresenceEvent extends Presence {
  user: string;
}
export interface GroupMemberEvent {
  group: string;
  user: string;
  /** `removed`: by `by` (`group:kick`); `left`: by themself. */
  event: 'joined' | 'left' | 'removed';
  by?: string;
}
/** A group's name, topic, visibility, admins or owner changed, or (`deleted`) the owner deleted it. */
export interface GroupUpdatedEvent {
  group: Group;
  deleted?: boolean;
}

/** Protocol limits the page checks before asking the server. */
export const LIMITS = {
  body: 4000,
  groupName: 100,
  groupTopic: 250,
  /** `group:find` page size (the server allows 1–50). */
  findPage: 20,
  historyPage: 50,
  presencePerCall: 100,
  searchQuery: 200,
  statusText: 100,
  contactsPage: 100,
} as const;

const USER_ID = /^[A-Za-z0-9_.-]{1,64}$/;

export function isValidUserId(id: string): boolean {
  return USER_ID.test(id);
}

/** Compares two message ids `<ms>-<seq>` as pairs of numbers. */
export function compareIds(a: string, b: string): number {
  const [am, as] = splitId(a);
  const [bm, bs] = splitId(b);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

function splitId(id: string): [bigint, bigint] {
  const dash = id.indexOf('-');
  try {
    if (dash < 0) return [BigInt(id), 0n];
    return [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
  } catch {
    return [0n, 0n];
  }
}

export function maxId(a: string | undefined, b: string): string {
  return a === undefined || compareIds(b, a) > 0 ? b : a;
}

export function dmId(a: string, b: string): ConversationId {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

export function groupConversationId(groupId: string): ConversationId {
  return `group:${groupId}`;
}

/** A group id from what people paste: the id itself, or its conversation id (`group:<id>`). */
export function toGroupId(idOrConversation: string): string {
  return idOrConversation.trim().replace(/^group:/, '');
}

export type ParsedConversation =
  | { kind: 'dm'; users: [string, string] }
  | { kind: 'group'; group: string };

export function parseConversation(id: ConversationId): ParsedConversation | null {
  if (id.startsWith('dm:')) {
    const parts = id.split(':');
    if (parts.length === 3) return { kind: 'dm', users: [parts[1], parts[2]] };
    return null;
  }
  if (id.startsWith('group:') && id.length > 6) return { kind: 'group', group: id.slice(6) };
  return null;
}

/** The `message:send` target for a conversation, seen from `me`. */
export function sendTarget(id: ConversationId, me: string): { to: string } | { group: string } | null {
  const parsed = parseConversation(id);
  if (!parsed) return null;
  if (parsed.kind === 'group') return { group: parsed.group };
  const [a, b] = parsed.users;
  return { to: a === me ? b : a };
}
