import { hue, initials } from '../format';
import type { ShownStatus } from '../presence';
import { UsersIcon } from './icons';

interface Props {
  name: string;
  group?: boolean;
  size?: 'sm' | 'md' | 'lg';
  /**
   * The presence dot: available (green), away or idle (amber), busy (red), offline (grey);
   * undefined when unknown (no dot).
   */
  status?: ShownStatus;
}

export function Avatar({ name, group, size = 'md', status }: Props) {
  return (
    <span class={`avatar avatar-${size}`} style={{ '--avatar-hue': String(hue(name)) }} aria-hidden="true">
      {group ? <UsersIcon size={size === 'sm' ? 14 : 18} /> : initials(name)}
      {status !== undefined && <span class={`presence-dot is-${status}`} data-status={status} />}
    </span>
  );
}
