import { hue, initials } from '../format';
import { UsersIcon } from './icons';

interface Props {
  name: string;
  group?: boolean;
  size?: 'sm' | 'md' | 'lg';
  /** DM partners: true online, false offline, undefined unknown (no dot). */
  online?: boolean;
}

export function Avatar({ name, group, size = 'md', online }: Props) {
  return (
    <span class={`avatar avatar-${size}`} style={{ '--avatar-hue': String(hue(name)) }} aria-hidden="true">
      {group ? <UsersIcon size={size === 'sm' ? 14 : 18} /> : initials(name)}
      {online !== undefined && <span class={`presence-dot ${online ? 'is-online' : 'is-offline'}`} />}
    </span>
  );
}
