// Short notices over the page, as plain data; view.ts owns the timers that dismiss them.

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

/** More at once would cover the conversation on a phone. */
const MAX_TOASTS = 4;

/** The same text twice at once says nothing more (a burst of failures for one reason). */
export function isShowing(toasts: Toast[], text: string): boolean {
  return toasts.some((t) => t.text === text);
}

/** A new list with `toast` last; the oldest go first when there are too many. */
export function addToast(toasts: Toast[], toast: Toast): Toast[] {
  return [...toasts, toast].slice(-MAX_TOASTS);
}

export function removeToast(toasts: Toast[], id: number): Toast[] {
  return toasts.filter((t) => t.id !== id);
}

/** Errors stay longer: they usually ask the reader to do something. */
export function toastLifetime(kind: Toast['kind']): number {
  return kind === 'error' ? 8000 : 5000;
}
