// All of the page's conversations, and the pure rules for taking in what the server says about
// them. Nothing here talks to the socket, storage or timers: callers pass the time and which
// conversation is being read, and carry out what a function reports back (a removal, presence
// to ask for, outbox items that came back as messages).

import {
  activity,
  applyGroup,
  bumpLast,
  insertMessage,
  newConversation,
  retainMessages,
  type Conversation,
} from './conversation';
import {
  compareIds,
  groupConversationId,
  maxId,
  parseConversation,
  type ConversationSummary,
  type GroupMemberEvent,
  type GroupUpdatedEvent,
  type Message,
  type ReceiptEvent,
  type TypingEvent,
} from './protocol';

export type Conversations = Map<string, Conversation>;

/** A `typing: true` that is never followed by `false` (the typist's tab died) fades after this. */
export const TYPING_SHOWN_MS = 6000;
/** A group created or joined this recently may be missing from a list read just before. */
const RECENT_GROUP_MS = 30_000;

export function isMessage(m: unknown): m is Message {
  const x = m as Message;
  return !!x && typeof x.id === 'string' && typeof x.conversation === 'string' && typeof x.from === 'string';
}

/** The conversation `id`, created empty when the page does not know it yet. */
export function ensureConversation(conversations: Conversations, id: string, me: string): Conversation {
  let c = conversations.get(id);
  if (!c) {
    c = newConversation(id, me);
    conversations.set(id, c);
  }
  return c;
}

/** Most recently active first. */
export function sortedConversations(conversations: Conversations): Conversation[] {
  return [...conversations.values()].sort((a, b) => activity(b) - activity(a));
}

/** Unread messages in conversations other than the one being read. */
export function totalUnread(conversations: Conversations, openId: string | null): number {
  let total = 0;
  for (const c of conversations.values()) if (c.id !== openId) total += c.unread;
  return total;
}

/**
 * Takes in a message pushed by the server; false when it was already there. `reading`: the
 * conversation is on screen at its newest message, so nothing becomes unread.
 */
export function receiveMessage(c: Conversation, m: Message, me: string, reading: boolean): boolean {
  if (!insertMessage(c, m)) return false;
  if (m.from !== me) {
    // Their message is what they were typing.
    delete c.typing[m.from];
    if (!reading) c.unread++;
  }
  return true;
}

/** Takes in a page of `sync`, creating conversations as needed; returns the messages taken. */
export function addMessages(conversations: Conversations, me: string, messages: unknown[]): Message[] {
  const taken: Message[] = [];
  for (const m of messages) {
    if (!isMessage(m)) continue;
    insertMessage(ensureConversation(conversations, m.conversation, me), m);
    taken.push(m);
  }
  return taken;
}

/** False when the event changes nothing shown (our own typing, an unknown conversation). */
export function applyTyping(conversations: Conversations, me: string, e: TypingEvent, now: number): boolean {
  if (!e || typeof e.user !== 'string' || e.user === me) return false;
  const c = conversations.get(e.conversation);
  if (!c) return false;
  if (e.typing) c.typing[e.user] = now + TYPING_SHOWN_MS;
  else delete c.typing[e.user];
  return true;
}

/** Drops typing indicators that ran out; true when any did. */
export function expireTyping(conversations: Conversations, now: number): boolean {
  let changed = false;
  for (const c of conversations.values()) {
    for (const [user, until] of Object.entries(c.typing)) {
      if (until <= now) {
        delete c.typing[user];
        changed = true;
      }
    }
  }
  return changed;
}

/** Receipts only move forward: an older one arriving late must not undo a newer one. */
export function applyReceipt(conversations: Conversations, e: ReceiptEvent): boolean {
  if (!e || typeof e.messageId !== 'string' || typeof e.user !== 'string') return false;
  const c = conversations.get(e.conversation);
  if (!c) return false;
  const { delivered, read } = c.receipts;
  delivered[e.user] = maxId(delivered[e.user], e.messageId);
  if (e.status === 'read') read[e.user] = maxId(read[e.user], e.messageId);
  return true;
}

/** What a `group:member` event asks of the page. */
export type MemberChange =
  | { kind: 'none' }
  /** We left the group (perhaps on another device): drop the conversation. */
  | { kind: 'left'; conversation: string }
  /** `by` removed us from the group: drop the conversation and say so. */
  | { kind: 'removed'; conversation: string; by: string | null }
  /** We are in a group the page does not know: read the conversation list again. */
  | { kind: 'unknown'; conversation: string }
  /** The members list changed; `joined` is someone new to ask presence for. */
  | { kind: 'members'; joined: string | null };

export function applyMemberEvent(conversations: Conversations, me: string, e: GroupMemberEvent): MemberChange {
  if (!e || typeof e.group !== 'string') return { kind: 'none' };
  const id = groupConversationId(e.group);
  const c = conversations.get(id);
  const gone = e.event === 'left' || e.event === 'removed';
  if (e.user === me) {
    if (e.event === 'left') return { kind: 'left', conversation: id };
    if (e.event === 'removed') return c ? { kind: 'removed', conversation: id, by: typeof e.by === 'string' ? e.by : null } : { kind: 'none' };
    return c ? { kind: 'none' } : { kind: 'unknown', conversation: id };
  }
  // Someone gone is no admin any more (known even when the members list was not read).
  const wasAdmin = gone && !!c?.admins?.includes(e.user);
  if (c?.admins && wasAdmin) c.admins = c.admins.filter((u) => u !== e.user);
  // Without a members list there is nothing more to update: it is read in full when shown.
  if (!c?.members) return wasAdmin ? { kind: 'members', joined: null } : { kind: 'none' };
  let joined: string | null = null;
  if (e.event === 'joined' && !c.members.includes(e.user)) {
    c.members = [...c.members, e.user];
    joined = e.user;
  }
  if (gone) c.members = c.members.filter((u) => u !== e.user);
  return { kind: 'members', joined };
}

/** What a `group:updated` event asks of the page. */
export type GroupChange =
  | { kind: 'none' }
  /** The group's settings, roles or members were taken in. */
  | { kind: 'updated'; conversation: string }
  /** The owner deleted the group: drop the conversation; `name` as it was shown. */
  | { kind: 'deleted'; conversation: string; name: string; owner: string | null }
  /** A group the page does not know: read the conversation list again. */
  | { kind: 'unknown'; conversation: string };

export function applyGroupUpdated(conversations: Conversations, e: GroupUpdatedEvent): GroupChange {
  const group = e?.group;
  if (!group || typeof group.id !== 'string' || !group.id) return { kind: 'none' };
  const id = groupConversationId(group.id);
  const c = conversations.get(id);
  if (e.deleted) {
    if (!c) return { kind: 'none' };
    return {
      kind: 'deleted',
      conversation: id,
      name: (typeof group.name === 'string' && group.name) || c.name || `Group ${group.id}`,
      owner: typeof group.owner === 'string' ? group.owner : (c.owner ?? null),
    };
  }
  if (!c) return { kind: 'unknown', conversation: id };
  applyGroup(c, group);
  return { kind: 'updated', conversation: id };
}

/**
 * Takes in the server's conversation list; returns the ids it listed. The server counts unread
 * messages only up to our last `read`, so the one being read (`readingId`) shows none.
 */
export function applySummaries(
  conversations: Conversations,
  me: string,
  summaries: ConversationSummary[],
  readingId: string | null,
): Set<string> {
  const listed = new Set<string>();
  for (const s of summaries) {
    if (!s || typeof s.id !== 'string' || !parseConversation(s.id)) continue;
    listed.add(s.id);
    const c = ensureConversation(conversations, s.id, me);
    if (s.name) c.name = s.name;
    if (s.lastMessage && isMessage(s.lastMessage)) bumpLast(c, s.lastMessage);
    c.unread = c.id === readingId ? 0 : Math.max(0, s.unread | 0);
  }
  return listed;
}

/**
 * Groups missing from the server's list: they were left, maybe on another device. `joinedAt`
 * spares groups created or joined just before the list was read.
 */
export function staleGroups(
  conversations: Conversations,
  listed: Set<string>,
  joinedAt: ReadonlyMap<string, number>,
  now: number,
): string[] {
  return [...conversations.values()]
    .filter((c) => c.kind === 'group' && !listed.has(c.id) && now - (joinedAt.get(c.id) ?? 0) > RECENT_GROUP_MS)
    .map((c) => c.id);
}

/** Everyone we have a DM with. */
export function peers(conversations: Conversations): string[] {
  return [...conversations.values()].flatMap((c) => (c.peer ? [c.peer] : []));
}

/** After a `truncated` sync the loaded pages may have gaps: load them again when shown. */
export function forgetLoadedHistory(conversations: Conversations): void {
  for (const c of conversations.values()) {
    c.messages = [];
    c.ids = new Set();
    c.cached = new Set();
    c.history = 'none';
    c.hasMore = false;
  }
}

/** Takes in the newest page of history, the first one asked for when a conversation is shown. */
export function applyHistoryPage(c: Conversation, page: Message[], hasMore: boolean): void {
  if (c.cached.size > 0) {
    // The server's page replaces what the reload cache showed.
    const confirmed = new Set(page.map((m) => m.id));
    retainMessages(c, (m) => !c.cached.has(m.id) || confirmed.has(m.id));
    c.cached.clear();
  }
  if (hasMore && page.length > 0) {
    // Keep only what joins this page without a gap; older ones come back when scrolling up.
    const oldest = page[0].id;
    retainMessages(c, (m) => compareIds(m.id, oldest) >= 0);
  }
  for (const m of page) insertMessage(c, m);
  c.hasMore = hasMore;
  c.history = 'loaded';
}

/** Takes in a page of older history, asked for when scrolling up. */
export function applyOlderPage(c: Conversation, page: Message[], hasMore: boolean): void {
  for (const m of page) insertMessage(c, m);
  c.hasMore = hasMore;
}

/**
 * The message id to send `read` for, or null when there is nothing new from others since
 * `sent` (the last id we sent `read` for): `read` costs the server a write and a fan-out.
 */
export function readMark(c: Conversation, me: string, sent: string | undefined): string | null {
  const newest = c.messages.at(-1);
  if (!newest) return null;
  const unreadFromOthers = c.messages.some((m) => m.from !== me && (sent === undefined || compareIds(m.id, sent) > 0));
  return unreadFromOthers ? newest.id : null;
}
