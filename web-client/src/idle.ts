// This device's inactivity, reported to the server with `presence:idle`: idle after a while
// without input (pointer, keys, wheel, touch) or as soon as the page is hidden; in use again on
// the next input or when the page is shown. Only changes are sent, and the state is sent again
// on every new connection when it is idle (a new socket starts as "in use").

import type { Connection } from './connection';

/** The default delay without input before the device counts as idle. */
export const DEFAULT_IDLE_SECONDS = 300;

const INPUT_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart'] as const;
const RETRY_MS = 2000;

/**
 * Whether the device is idle at `now`: hidden, or no input for `delayMs` since `lastInput`.
 * Pure; the timer below calls it.
 */
export function isIdle(now: number, lastInput: number, delayMs: number, hidden: boolean): boolean {
  return hidden || now - lastInput >= delayMs;
}

export class IdleReporter {
  /** What this device is, locally. */
  idle = false;
  /** What the server was told on this connection (a new one starts as not idle). */
  private sent = false;
  private lastInput = Date.now();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private sending = false;
  /** Bumped on every connection: an answer for an older one says nothing of this one. */
  private generation = 0;
  private started = false;
  private readonly onInput = () => {
    this.lastInput = Date.now();
    if (this.idle) this.update();
  };
  private readonly onVisibility = () => {
    // Showing the page counts as input: the user came back to it.
    if (!this.hidden()) this.lastInput = Date.now();
    this.update();
  };

  constructor(
    private readonly connection: Connection,
    private delayMs: number,
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const name of INPUT_EVENTS) window.addEventListener(name, this.onInput, { capture: true, passive: true });
    document.addEventListener('visibilitychange', this.onVisibility);
    this.update();
  }

  stop(): void {
    this.started = false;
    for (const name of INPUT_EVENTS) window.removeEventListener(name, this.onInput, { capture: true });
    document.removeEventListener('visibilitychange', this.onVisibility);
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
  }

  setDelay(seconds: number): void {
    this.delayMs = seconds * 1000;
    this.update();
  }

  /** A new connection (`ready`): the server knows nothing of this device yet. */
  connected(): void {
    this.generation++;
    this.sent = false;
    this.update();
  }

  private hidden(): boolean {
    return document.visibilityState === 'hidden';
  }

  /** Works out the state now, sends a change, and sets the timer for the next check. */
  private update(): void {
    if (!this.started) return;
    const now = Date.now();
    this.idle = isIdle(now, this.lastInput, this.delayMs, this.hidden());
    clearTimeout(this.timer);
    // Idle stays idle until an event; otherwise look again when the delay would run out.
    if (!this.idle) this.timer = setTimeout(() => this.update(), Math.max(0, this.lastInput + this.delayMs - now) + 50);
    void this.report();
  }

  private async report(): Promise<void> {
    if (this.sending || this.idle === this.sent || !this.connection.connected) return;
    const idle = this.idle;
    const generation = this.generation;
    this.sending = true;
    const res = await this.connection.request('presence:idle', { idle });
    this.sending = false;
    if (generation !== this.generation) return void this.report();
    if (res.ok) this.sent = idle;
    else if (res.error.code !== 'offline') {
      // Rate limited or a hiccup: try again shortly (the next `ready` sends it anyway).
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => void this.report(), RETRY_MS);
      return;
    }
    // The state may have changed while we asked.
    if (this.idle !== this.sent) void this.report();
  }
}
