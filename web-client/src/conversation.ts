// One conversation as the page holds it, and the pure rules about it: message order,
// receipts → message status, who is typing.

import type { CachedReceipts } from './persist';
import { compareIds, parseConversation, type Group, type GroupVisibility, type Message } from './protocol';

export interface Conversation {
  id: string;
  kind: 'dm' | 'group';
  /** DM: the other participant. */
  peer?: string;
  /** Group: its id (share it so others can join). */
  groupId?: string;
  name?: string;
  /** Group: its owner, admins (owner not listed), topic and visibility, once known (acks, `group:updated`). */
  owner?: string;
  admins?: string[];
  topic?: string;
  visibility?: GroupVisibility;
  /** Group members, once asked for. */
  members?: string[];
  /** Group: members and settings were read on this connection (events keep them since). */
  groupLoaded?: boolean;
  lastMessage: Message | null;
  unread: number;
  /** Confirmed messages, oldest first, without gaps. */
  messages: Message[];
  ids: Set<string>;
  /** Ids of messages shown from the reload cache that the server has not confirmed yet. */
  cached: Set<string>;
  history: 'none' | 'loading' | 'loaded' | 'error';
  hasMore: boolean;
  loadingOlder: boolean;
  /** Who is typing, until when (ms since epoch). */
  typing: Record<string, number>;
  /** Receipts for `me`'s messages: user → newest message id covered. */
  receipts: CachedReceipts;
  /** Last local activity, for ordering conversations without messages. */
  touched: number;
}

export type MessageStatus = 'sending' | 'failed' | 'sent' | 'delivered' | 'read';

export interface StatusInfo {
  status: MessageStatus;
  readBy: string[];
  deliveredTo: string[];
}

export function newConversation(id: string, me: string): Conversation {
  const parsed = parseConversation(id);
  const c: Conversation = {
    id,
    kind: parsed?.kind ?? 'dm',
    lastMessage: null,
    unread: 0,
    messages: [],
    ids: new Set(),
    cached: new Set(),
    history: 'none',
    hasMore: false,
    loadingOlder: false,
    typing: {},
    receipts: { delivered: {}, read: {} },
    touched: 0,
  };
  if (parsed?.kind === 'dm') c.peer = parsed.users[0] === me ? parsed.users[1] : parsed.users[0];
  if (parsed?.kind === 'group') c.groupId = parsed.group;
  return c;
}

export function title(c: Conversation): string {
  if (c.kind === 'dm') return c.peer ?? c.id;
  return c.name || `Group ${c.groupId}`;
}

/**
 * Takes in a group object (an ack, `group:updated`): its name, owner, admins, topic, visibility
 * and members. An absent topic means none is set; the rest is kept when a field is missing.
 */
export function applyGroup(c: Conversation, group: Group): void {
  if (typeof group.name === 'string') c.name = group.name;
  if (typeof group.owner === 'string') c.owner = group.owner;
  // A group object comes whole: no `admins` is none, no `visibility` is public.
  c.admins = Array.isArray(group.admins) ? group.admins.filter((u) => u !== group.owner) : [];
  c.topic = typeof group.topic === 'string' && group.topic ? group.topic : undefined;
  c.visibility = group.visibility === 'private' ? 'private' : 'public';
  if (Array.isArray(group.members)) c.members = group.members;
}

/** For ordering the list: the newest message, or local activity for empty conversations. */
export function activity(c: Conversation): number {
  return Math.max(c.lastMessage?.ts ?? 0, c.touched);
}

/** Adds a confirmed message in id order; false when it was already there. */
export function insertMessage(c: Conversation, m: Message): boolean {
  bumpLast(c, m);
  if (c.ids.has(m.id)) return false;
  c.ids.add(m.id);
  let lo = 0;
  let hi = c.messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareIds(c.messages[mid].id, m.id) < 0) lo = mid + 1;
    else hi = mid;
  }
  c.messages.splice(lo, 0, m);
  return true;
}

export function bumpLast(c: Conversation, m: Message): void {
  if (!c.lastMessage || compareIds(m.id, c.lastMessage.id) >= 0) c.lastMessage = m;
}

/** Drops messages for which `keep` is false (and their ids). */
export function retainMessages(c: Conversation, keep: (m: Message) => boolean): void {
  c.messages = c.messages.filter(keep);
  c.ids = new Set(c.messages.map((m) => m.id));
}

/**
 * Where `me`'s message `m` stands. Receipts are cumulative, so a receipt covers `m` when its
 * id is at or after `m.id`. In groups "read" means read by every other member.
 */
export function messageStatus(c: Conversation, m: Message, me: string): StatusInfo | null {
  if (m.from !== me) return null;
  const others =
    c.kind === 'dm'
      ? [c.peer ?? '']
      : (c.members?.filter((u) => u !== me) ?? [
          ...new Set([...Object.keys(c.receipts.read), ...Object.keys(c.receipts.delivered)]),
        ]);
  const covers = (id: string | undefined) => id !== undefined && compareIds(id, m.id) >= 0;
  const readBy = others.filter((u) => covers(c.receipts.read[u]));
  const deliveredTo = others.filter((u) => covers(c.receipts.read[u]) || covers(c.receipts.delivered[u]));
  let status: MessageStatus = 'sent';
  if (others.length > 0 && readBy.length === others.length) status = 'read';
  else if (deliveredTo.length > 0) status = 'delivered';
  return { status, readBy, deliveredTo };
}

export function typingUsers(c: Conversation, now = Date.now()): string[] {
  return Object.entries(c.typing)
    .filter(([, until]) => until > now)
    .map(([user]) => user);
}
