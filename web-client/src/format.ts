// Dates, times and names as people read them.

const time = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const shortDate = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const longDate = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

const DAY = 86_400_000;

function startOfDay(ts: number): number {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export function formatTime(ts: number): string {
  return time.format(ts);
}

export function formatFull(ts: number): string {
  return fullDate.format(ts);
}

/** For the conversation list: the time today, the weekday this week, else the date. */
export function formatListTime(ts: number, now = Date.now()): string {
  const today = startOfDay(now);
  if (ts >= today) return time.format(ts);
  if (ts >= today - 6 * DAY) return weekday.format(ts);
  return shortDate.format(ts);
}

export function formatDay(ts: number, now = Date.now()): string {
  const day = startOfDay(ts);
  const today = startOfDay(now);
  if (day === today) return 'Today';
  if (day === today - DAY) return 'Yesterday';
  return longDate.format(ts);
}

export function sameDay(a: number, b: number): boolean {
  return startOfDay(a) === startOfDay(b);
}

export function formatLastSeen(lastSeen: number | null, now = Date.now()): string {
  if (lastSeen === null) return 'offline';
  const minutes = Math.round((now - lastSeen) / 60_000);
  if (minutes < 1) return 'last seen just now';
  if (minutes < 60) return `last seen ${minutes} min ago`;
  if (lastSeen >= startOfDay(now)) return `last seen today at ${time.format(lastSeen)}`;
  if (lastSeen >= startOfDay(now) - DAY) return `last seen yesterday at ${time.format(lastSeen)}`;
  return `last seen ${shortDate.format(lastSeen)}`;
}

export function typingText(users: string[]): string {
  if (users.length === 0) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  return `${users.length} people are typing…`;
}

export function initials(name: string): string {
  const parts = name.split(/[\s._-]+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] ?? name).slice(0, 1);
  return letters.toUpperCase();
}

/** A stable hue per name, for avatars. */
export function hue(name: string): number {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % 360;
}
