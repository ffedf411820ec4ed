// Groups: creating, joining and leaving them, and their members. The server pushes member
// changes, but a list is only worth updating once it has been read in full.

import type { Connection } from './connection';
import { describeError } from './errors';
import { applyMemberEvent, ensureConversation, type Conversations } from './inbox';
import { groupConversationId, type Group, type GroupMemberEvent } from './protocol';

export interface GroupHooks {
  me(): string;
  /** When each group was created or joined here; see `staleGroups`. */
  readonly joinedAt: Map<string, number>;
  /** Shows the conversation, as if picked in the list. */
  open(conversation: string): void;
  remove(conversation: string): void;
  refreshConversations(): void;
  subscribePresence(users: string[]): void;
  toast(text: string): void;
  persistSoon(): void;
  changed(): void;
}

export class Groups {
  constructor(
    private readonly connection: Connection,
    private readonly conversations: Conversations,
    private readonly hooks: GroupHooks,
  ) {}

  /** Returns an error text, or null once the group is open. */
  async create(name: string, members: string[]): Promise<string | null> {
    const me = this.hooks.me();
    const res = await this.connection.request<{ group: Group }>('group:create', {
      name: name.trim(),
      members: members.filter((m) => m !== me),
    });
    if (!res.ok) return describeError(res.error);
    this.adopt(res.group);
    return null;
  }

  /** Returns an error text, or null once the group is open. */
  async join(groupId: string): Promise<string | null> {
    // People paste the conversation id as often as the group id.
    const id = groupId.trim().replace(/^group:/, '');
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

  async loadMembers(conversation: string): Promise<void> {
    const c = this.conversations.get(conversation);
    if (!c?.groupId) return;
    const res = await this.connection.request<{ members: string[] }>('group:members', { group: c.groupId });
    if (!res.ok) {
      if (res.error.code !== 'offline') this.hooks.toast(describeError(res.error));
      return;
    }
    c.members = res.members;
    const me = this.hooks.me();
    this.hooks.subscribePresence(res.members.filter((u) => u !== me));
    this.hooks.changed();
  }

  onMember(e: GroupMemberEvent): void {
    const change = applyMemberEvent(this.conversations, this.hooks.me(), e);
    switch (change.kind) {
      case 'left':
        this.hooks.remove(change.conversation);
        return;
      case 'unknown':
        this.hooks.refreshConversations();
        return;
      case 'members':
        if (change.joined) this.hooks.subscribePresence([change.joined]);
        this.hooks.changed();
    }
  }

  private adopt(group: Group): void {
    const c = ensureConversation(this.conversations, groupConversationId(group.id), this.hooks.me());
    c.name = group.name;
    c.owner = group.owner;
    c.members = group.members;
    c.touched = Date.now();
    this.hooks.joinedAt.set(c.id, Date.now());
    this.hooks.subscribePresence(group.members);
    this.hooks.open(c.id);
    this.hooks.persistSoon();
  }
}
