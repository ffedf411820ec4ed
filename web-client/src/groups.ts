// Groups: creating, finding, joining and leaving them, their members, and managing them (the
// name, topic and visibility; adding and removing members; admins; deleting). The server pushes
// member changes (`group:member`) and settings changes (`group:updated`), but a members list is
// only worth updating once it has been read in full.

import type { Connection } from './connection';
import { applyGroup } from './conversation';
import { describeError } from './errors';
import {
  applyGroupUpdated,
  applyMemberEvent,
  ensureConversation,
  type Conversations,
} from './inbox';
import {
  LIMITS,
  groupConversationId,
  isValidUserId,
  toGroupId,
  type FoundGroup,
  type Group,
  type GroupChanges,
  type GroupMemberEvent,
  type GroupUpdatedEvent,
  type GroupVisibility,
} from './protocol';
import type { Toast } from './toasts';

export interface GroupHooks {
  me(): string;
  /** When each group was created or joined here; see `staleGroups`. */
  readonly joinedAt: Map<string, number>;
  /** Shows the conversation, as if picked in the list. */
  open(conversation: string): void;
  remove(conversation: string): void;
  refreshConversations(): void;
  subscribePresence(users: string[]): void;
  toast(text: string, kind?: Toast['kind']): void;
  persistSoon(): void;
  changed(): void;
}

/** A page of `group:find`: the groups, and the cursor of the next page when more may follow. */
export interface FoundPage {
  groups: FoundGroup[];
  cursor?: string;
}

export class Groups {
  /** Groups this device is deleting: their `group:updated` needs no toast here. */
  private readonly deleting = new Set<string>();

  constructor(
    private readonly connection: Connection,
    private readonly conversations: Conversations,
    private readonly hooks: GroupHooks,
  ) {}

  /** Returns an error text, or null once the group is open. */
  async create(name: string, members: string[], visibility: GroupVisibility = 'public'): Promise<string | null> {
    const me = this.hooks.me();
    const res = await this.connection.request<{ group: Group }>('group:create', {
      name: name.trim(),
      members: members.filter((m) => m !== me),
      visibility,
    });
    if (!res.ok) return describeError(res.error);
    this.adopt(res.group);
    return null;
  }

  /** Returns an error text, or null once the group is open. */
  async join(groupId: string): Promise<string | null> {
    // People paste the conversation id as often as the group id.
    const id = toGroupId(groupId);
    if (!id) return 'Enter a group id.';
    const res = await this.connection.request<{ group: Group }>('group:join', { group: id });
    if (!res.ok) return describeError(res.error);
    this.adopt(res.group);
    return null;
  }

  async leave(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c?.groupId) return;
    const res = await this.connection.request('group:leave', { group: c.groupId });
    if (!res.ok) return this.hooks.toast(describeError(res.error));
    this.hooks.remove(conversation);
  }

  /** Public groups whose name starts with `prefix` (any case), by name; or an error text. */
  async find(prefix: string, cursor?: string): Promise<FoundPage | string> {
    const p = prefix.trimStart();
    if ([...p].length > LIMITS.groupName) return `Group names are at most ${LIMITS.groupName} characters.`;
    const res = await this.connection.request<{ groups: FoundGroup[]; cursor?: string }>('group:find', {
      prefix: p,
      limit: LIMITS.findPage,
      ...(cursor ? { cursor } : {}),
    });
    if (!res.ok) return describeError(res.error);
    const groups = Array.isArray(res.groups) ? res.groups.filter((g) => g && typeof g.id === 'string') : [];
    return { groups, ...(res.cursor ? { cursor: res.cursor } : {}) };
  }

  /**
   * Reads the members of a group being shown and its settings (owner, admins, topic,
   * visibility): `group:members` answers both, to members only.
   */
  async loadMembers(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c?.groupId) return;
    const res = await this.connection.request<{ members: string[]; group?: Group }>('group:members', {
      group: c.groupId,
    });
    if (!res.ok) {
      if (res.error.code !== 'offline') this.hooks.toast(describeError(res.error));
      return;
    }
    // Still ours? A removal or deletion may have come in meanwhile.
    if (this.conversations.get(conversation) !== c) return;
    c.members = res.members;
    const me = this.hooks.me();
    this.hooks.subscribePresence(res.members.filter((u) => u !== me));
    if (res.group) {
      applyGroup(c, res.group);
      c.groupLoaded = true;
      this.hooks.persistSoon();
    }
    this.hooks.changed();
  }

  /** Renames the group, sets or clears (`''`) its topic, or its visibility; an error text or null. */
  async update(group: string, changes: GroupChanges): Promise<string | null> {
    const payload: GroupChanges = {};
    if (changes.name !== undefined) {
      const name = changes.name.trim();
      if (!name) return 'A group needs a name.';
      if ([...name].length > LIMITS.groupName) return `Group names are at most ${LIMITS.groupName} characters.`;
      payload.name = name;
    }
    if (changes.topic !== undefined) {
      const topic = changes.topic.trim();
      if ([...topic].length > LIMITS.groupTopic) return `A topic is at most ${LIMITS.groupTopic} characters.`;
      payload.topic = topic;
    }
    if (changes.visibility !== undefined) payload.visibility = changes.visibility;
    if (Object.keys(payload).length === 0) return 'Nothing to change.';
    return this.withGroup('group:update', group, payload);
  }

  /** Adds `user` to the group (owner and admins; the way into a private group). */
  invite(group: string, user: string): Promise<string | null> {
    const u = user.trim();
    if (!isValidUserId(u)) return Promise.resolve('User ids are 1–64 letters, digits, “.”, “_” or “-”.');
    return this.withGroup('group:invite', group, { user: u });
  }

  promote(group: string, user: string): Promise<string | null> {
    return this.withGroup('group:promote', group, { user });
  }

  demote(group: string, user: string): Promise<string | null> {
    return this.withGroup('group:demote', group, { user });
  }

  /** Removes `user` from the group; the `group:member` `removed` event tells everyone. */
  async kick(group: string, user: string): Promise<string | null> {
    const id = toGroupId(group);
    const res = await this.connection.request('group:kick', { group: id, user });
    if (!res.ok) return describeError(res.error);
    this.onMember({ group: id, user, event: 'removed', by: this.hooks.me() });
    return null;
  }

  /** Deletes the group and its messages for everyone (the owner only). */
  async delete(group: string): Promise<string | null> {
    const id = toGroupId(group);
    this.deleting.add(id);
    const res = await this.connection.request('group:delete', { group: id });
    if (!res.ok) {
      this.deleting.delete(id);
      return describeError(res.error);
    }
    this.hooks.remove(groupConversationId(id));
    // The event may still be on its way: let it find nothing to announce.
    setTimeout(() => this.deleting.delete(id), 10_000);
    return null;
  }

  onMember(e: GroupMemberEvent): void {
    const conversation = this.conversations.get(groupConversationId(e?.group));
    const name = conversation?.name || `Group ${e?.group}`;
    const change = applyMemberEvent(this.conversations, this.hooks.me(), e);
    switch (change.kind) {
      case 'left':
        this.hooks.remove(change.conversation);
        return;
      case 'removed':
        this.hooks.remove(change.conversation);
        this.hooks.toast(`${change.by ?? 'Someone'} removed you from ${name}`, 'info');
        return;
      case 'unknown':
        this.hooks.refreshConversations();
        return;
      case 'members':
        if (change.joined) this.hooks.subscribePresence([change.joined]);
        this.hooks.changed();
    }
  }

  onUpdated(e: GroupUpdatedEvent): void {
    const change = applyGroupUpdated(this.conversations, e);
    switch (change.kind) {
      case 'deleted': {
        const id = e.group.id;
        this.hooks.remove(change.conversation);
        if (this.deleting.has(id)) return;
        const who = change.owner === this.hooks.me() ? 'You' : (change.owner ?? 'The owner');
        this.hooks.toast(`${who} deleted ${change.name}`, 'info');
        return;
      }
      case 'unknown':
        this.hooks.refreshConversations();
        return;
      case 'updated':
        this.hooks.persistSoon();
        this.hooks.changed();
    }
  }

  /** A request answered with the group as it is now, taken in; an error text or null. */
  private async withGroup(event: string, group: string, payload: object): Promise<string | null> {
    const id = toGroupId(group);
    if (!id) return 'Unknown group.';
    const res = await this.connection.request<{ group: Group }>(event, { group: id, ...payload });
    if (!res.ok) return describeError(res.error);
    const c = this.conversations.get(groupConversationId(id));
    if (c && res.group) {
      const known = new Set(c.members ?? []);
      applyGroup(c, res.group);
      const added = (c.members ?? []).filter((u) => !known.has(u) && u !== this.hooks.me());
      if (c.members && known.size > 0 && added.length > 0) this.hooks.subscribePresence(added);
      this.hooks.persistSoon();
      this.hooks.changed();
    }
    return null;
  }

  private adopt(group: Group): void {
    const c = ensureConversation(this.conversations, groupConversationId(group.id), this.hooks.me());
    applyGroup(c, group);
    c.groupLoaded = true;
    c.touched = Date.now();
    this.hooks.joinedAt.set(c.id, Date.now());
    this.hooks.subscribePresence(group.members);
    this.hooks.open(c.id);
    this.hooks.persistSoon();
  }
}
