// Who may do what in a group (docs/protocol.md, "Roles"), as pure rules the settings panel
// reads: the owner renames, adds and removes members, makes and unmakes admins and deletes the
// group; admins rename, add members and remove plain members; members only read and write.

import type { Conversation } from './conversation';

export type GroupRole = 'owner' | 'admin' | 'member';

type GroupRoles = Pick<Conversation, 'owner' | 'admins'>;

/** `user`'s role, or null while the group's owner is not known yet. */
export function roleOf(c: GroupRoles, user: string): GroupRole | null {
  if (!c.owner) return null;
  if (c.owner === user) return 'owner';
  return c.admins?.includes(user) ? 'admin' : 'member';
}

export function roleLabel(role: GroupRole): string {
  return role === 'owner' ? 'Owner' : role === 'admin' ? 'Admin' : 'Member';
}

/** Renaming, the topic, the visibility and adding members: the owner and admins. */
export function canManage(c: GroupRoles, me: string): boolean {
  const role = roleOf(c, me);
  return role === 'owner' || role === 'admin';
}

export function canDelete(c: GroupRoles, me: string): boolean {
  return roleOf(c, me) === 'owner';
}

export interface MemberActions {
  promote: boolean;
  demote: boolean;
  kick: boolean;
}

/** What `me` may do to `user`: the owner to anyone else; an admin removes plain members. */
export function memberActions(c: GroupRoles, me: string, user: string): MemberActions {
  const mine = roleOf(c, me);
  const theirs = roleOf(c, user);
  const none = { promote: false, demote: false, kick: false };
  if (user === me || !mine || !theirs) return none;
  if (mine === 'owner') return { promote: theirs === 'member', demote: theirs === 'admin', kick: true };
  if (mine === 'admin') return { ...none, kick: theirs === 'member' };
  return none;
}

const RANK: Record<GroupRole, number> = { owner: 0, admin: 1, member: 2 };

/** The owner first, then admins, then members; online before offline, then by user id. */
export function sortMembers(c: GroupRoles, members: string[], online: (user: string) => boolean): string[] {
  const rank = (u: string) => RANK[roleOf(c, u) ?? 'member'];
  const off = (u: string) => (online(u) ? 0 : 1);
  return [...members].sort((a, b) => rank(a) - rank(b) || off(a) - off(b) || a.localeCompare(b));
}
