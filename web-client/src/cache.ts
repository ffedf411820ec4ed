// The reload cache as plain data: what of the conversations is saved, and how it is shown again
// at the next start, before the server is reached. session.ts reads and writes the storage.

import { insertMessage } from './conversation';
import { ensureConversation, isMessage, sortedConversations, type Conversations } from './inbox';
import type { CachedConversation, CachedGroup, CachedReceipts } from './persist';
import { parseConversation, type Message } from './protocol';

/** Enough to fill the list and the first screen of the likely next conversations. */
const CACHED_CONVERSATIONS = 20;
const CACHED_MESSAGES = 40;

export interface CacheSnapshot {
  conversations: CachedConversation[];
  receipts: Record<string, CachedReceipts>;
  /** The newest messages of the most recently active conversations. */
  recent: Record<string, Message[]>;
}

export function snapshotCache(conversations: Conversations): CacheSnapshot {
  const list = [...conversations.values()];
  const receipts: Record<string, CachedReceipts> = {};
  for (const c of list) {
    if (Object.keys(c.receipts.delivered).length) receipts[c.id] = c.receipts;
  }
  const recent: Record<string, Message[]> = {};
  for (const c of sortedConversations(conversations).slice(0, CACHED_CONVERSATIONS)) {
    if (c.messages.length) recent[c.id] = c.messages.slice(-CACHED_MESSAGES);
  }
  return {
    conversations: list.map((c) => ({
      id: c.id,
      name: c.name,
      lastMessage: c.lastMessage,
      unread: c.unread,
      touched: c.touched,
      ...(c.kind === 'group' && c.owner ? { group: cachedGroup(c.owner, c.admins, c.topic, c.visibility) } : {}),
    })),
    receipts,
    recent,
  };
}

/**
 * Shows what the cache holds. Storage is shared with older versions of the page and other
 * tabs, so anything malformed is skipped. Cached messages stay marked until the server's first
 * history page confirms or replaces them. Returns the messages taken in.
 */
export function restoreCache(conversations: Conversations, me: string, cache: CacheSnapshot): Message[] {
  for (const cached of cache.conversations) {
    if (!parseConversation(cached.id)) continue;
    const c = ensureConversation(conversations, cached.id, me);
    c.name = cached.name;
    c.lastMessage = cached.lastMessage;
    c.unread = cached.unread;
    c.touched = cached.touched;
    const g = cached.group;
    if (c.kind === 'group' && g && typeof g.owner === 'string') {
      c.owner = g.owner;
      c.admins = Array.isArray(g.admins) ? g.admins.filter((u) => typeof u === 'string') : [];
      c.topic = typeof g.topic === 'string' && g.topic ? g.topic : undefined;
      c.visibility = g.visibility === 'public' || g.visibility === 'private' ? g.visibility : undefined;
    }
  }
  for (const [id, r] of Object.entries(cache.receipts)) {
    if (!parseConversation(id)) continue;
    ensureConversation(conversations, id, me).receipts = { delivered: { ...r?.delivered }, read: { ...r?.read } };
  }
  const taken: Message[] = [];
  for (const [id, messages] of Object.entries(cache.recent)) {
    if (!parseConversation(id) || !Array.isArray(messages)) continue;
    const c = ensureConversation(conversations, id, me);
    for (const m of messages) {
      if (!isMessage(m) || m.conversation !== id) continue;
      taken.push(m);
      if (insertMessage(c, m)) c.cached.add(m.id);
    }
  }
  return taken;
}

function cachedGroup(owner: string, admins: string[] | undefined, topic: string | undefined, visibility: CachedGroup['visibility']): CachedGroup {
  return { owner, admins: admins ?? [], ...(topic ? { topic } : {}), ...(visibility ? { visibility } : {}) };
}
