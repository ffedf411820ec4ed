import type { ComponentChildren } from 'preact';

interface Props {
  id: string;
  label: string;
  hint?: string;
  /** The control; give it `id={id}` and `aria-describedby={hintId(id)}` when there is a hint. */
  children: ComponentChildren;
}

/** A labelled form control with an optional hint read after the label. */
export function Field({ id, label, hint, children }: Props) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint && (
        <small class="hint" id={hintId(id)}>
          {hint}
        </small>
      )}
    </div>
  );
}

export function hintId(id: string): string {
  return `${id}-hint`;
}
