// Typing indicators over time. Ours is announced again while keys keep coming (a receiver
// drops an indicator it has not heard of for a while) and withdrawn after a pause; others'
// fade by themselves, since their `typing: false` may never come.

import type { Connection } from './connection';
import { applyTyping, expireTyping, type Conversations } from './inbox';
import type { TypingEvent } from './protocol';

/** Below the receivers' TYPING_SHOWN_MS, so a steady typist never flickers off. */
const TYPING_REFRESH_MS = 2500;
const TYPING_IDLE_MS = 3000;
const SWEEP_MS = 1000;

export interface TypingHooks {
  me(): string;
  changed(): void;
}

export class Typing {
  /** What we last announced, while it stands. */
  private sent: { conversation: string; at: number } | null = null;
  private idle: ReturnType<typeof setTimeout> | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly connection: Connection,
    private readonly conversations: Conversations,
    private readonly hooks: TypingHooks,
  ) {}

  start(): void {
    this.sweeper = setInterval(() => {
      if (expireTyping(this.conversations, Date.now())) this.hooks.changed();
    }, SWEEP_MS);
  }

  stop(): void {
    this.stopSending();
    clearInterval(this.sweeper);
  }

  /** Someone else's `typing` event. */
  receive(e: TypingEvent): void {
    if (applyTyping(this.conversations, this.hooks.me(), e, Date.now())) this.hooks.changed();
  }

  /** Call on every keystroke in the composer. */
  keystroke(conversation: string): void {
    const now = Date.now();
    const sent = this.sent;
    if (!sent || sent.conversation !== conversation || now - sent.at > TYPING_REFRESH_MS) {
      if (sent && sent.conversation !== conversation) this.stopSending();
      this.connection.volatile('typing', { conversation, typing: true });
      this.sent = { conversation, at: now };
    }
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stopSending(), TYPING_IDLE_MS);
  }

  stopSending(): void {
    clearTimeout(this.idle);
    const sent = this.sent;
    if (!sent) return;
    this.sent = null;
    this.connection.volatile('typing', { conversation: sent.conversation, typing: false });
  }
}
