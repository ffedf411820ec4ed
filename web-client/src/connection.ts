// One Socket.IO connection with our own reconnect loop.
//
// socket.io-client's built-in reconnection always goes back to the same URL. We turn it off
// and reconnect ourselves so that every attempt resolves the endpoint again: in a cluster the
// registry may pick another node (after a `drain`, or when a node died).

import { io, type Socket } from 'socket.io-client';
import { resolveEndpoint } from './endpoint';
import type { Ack, ReadyEvent } from './protocol';
import type { Settings } from './settings';

export type ConnectionStatus =
  /** First attempt in progress. */
  | 'connecting'
  /** Connected and `ready` received. */
  | 'connected'
  /** Lost or never reached; an attempt is scheduled or in progress. */
  | 'reconnecting'
  /** The server refused our credentials; nothing is retried. */
  | 'refused'
  | 'stopped';

export interface ConnectionInfo {
  status: ConnectionStatus;
  /** `websocket` or `polling`, while connected. */
  transport: string | null;
  url: string | null;
  node: string | null;
  /** Why the last attempt failed or the connection was lost, for people. */
  error: string | null;
  /** When the next attempt starts (ms since epoch), while waiting. */
  retryAt: number | null;
}

export interface ConnectionHandlers {
  /** Registers the app's event handlers on a new socket. */
  bind(socket: Socket): void;
  ready(event: ReadyEvent): void;
  /** The server refused the credentials (`connect_error` "unauthorized…"). */
  refused(message: string): void;
  changed(): void;
}

const ACK_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * From starting an attempt to `ready`. socket.io-client's `timeout` ends once Engine.IO is
 * open; a server that then never answers the namespace connect (or never says `ready`)
 * would otherwise leave the page waiting for good.
 */
const READY_TIMEOUT_MS = 15_000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8_000;

export class Connection {
  readonly info: ConnectionInfo = {
    status: 'connecting',
    transport: null,
    url: null,
    node: null,
    error: null,
    retryAt: null,
  };
  private socket: Socket | null = null;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readyTimer: ReturnType<typeof setTimeout> | undefined;
  private generation = 0;
  private stopped = false;
  private readonly onOnline = () => {
    if (this.info.status === 'reconnecting') this.connectNow();
  };

  constructor(
    private settings: Settings,
    private readonly auth: Record<string, string>,
    private readonly handlers: ConnectionHandlers,
  ) {}

  get connected(): boolean {
    return this.info.status === 'connected' && !!this.socket?.connected;
  }

  start(): void {
    window.addEventListener('online', this.onOnline);
    this.connectNow();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    this.generation++;
    clearTimeout(this.retryTimer);
    this.dropSocket();
    this.update({ status: 'stopped', transport: null, retryAt: null });
  }

  /** Applies new settings (transport, registry) by reconnecting. */
  reconfigure(settings: Settings): void {
    this.settings = settings;
    this.reconnect(null);
  }

  /** Drops the current socket and connects again, through the registry when there is one. */
  reconnect(reason: string | null): void {
    this.dropSocket();
    this.update({ status: 'reconnecting', transport: null, error: reason });
    this.attempts = 0;
    this.connectNow();
  }

  /** Starts an attempt now, cancelling a scheduled one. */
  connectNow(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.update({ retryAt: null });
    void this.open(++this.generation);
  }

  /** Emits an acknowledged event; never throws. */
  async request<T>(event: string, payload: unknown, timeoutMs = ACK_TIMEOUT_MS): Promise<Ack<T>> {
    const socket = this.socket;
    if (!socket || !this.connected) {
      return { ok: false, error: { code: 'offline', message: 'not connected' } };
    }
    try {
      const answer: unknown = await socket.timeout(timeoutMs).emitWithAck(event, payload);
      if (!answer || typeof answer !== 'object' || typeof (answer as { ok?: unknown }).ok !== 'boolean') {
        return { ok: false, error: { code: 'bad_response', message: 'unexpected answer from the server' } };
      }
      const ack = answer as Ack<T>;
      if (!ack.ok && ack.error?.code === 'unauthorized' && this.socket === socket) this.expire();
      return ack;
    } catch {
      return { ok: false, error: { code: 'timeout', message: 'the server did not answer in time' } };
    }
  }

  /** Emits an unacknowledged event that is dropped, not queued, while disconnected. */
  volatile(event: string, payload: unknown): void {
    if (this.connected) this.socket?.volatile.emit(event, payload);
  }

  /** The token expired while connected: stop, and let the page ask for a new one. */
  private expire(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    this.dropSocket();
    const message = 'unauthorized: your session has expired';
    this.update({ status: 'refused', error: message, transport: null, retryAt: null });
    this.handlers.refused(message);
  }

  private async open(generation: number): Promise<void> {
    this.dropSocket();
    if (this.info.status !== 'connecting') this.update({ status: 'reconnecting' });
    let url: string;
    try {
      const endpoint = await resolveEndpoint(this.settings);
      url = endpoint.url;
    } catch (err) {
      if (generation === this.generation) this.retryLater(err instanceof Error ? err.message : String(err));
      return;
    }
    if (generation !== this.generation || this.stopped) return;

    const polling = this.settings.forcePolling;
    const socket = io(url, {
      auth: this.auth,
      transports: polling ? ['polling'] : ['polling', 'websocket'],
      upgrade: !polling,
      reconnection: false,
      forceNew: true,
      timeout: CONNECT_TIMEOUT_MS,
    });
    this.socket = socket;
    this.update({ url });

    const current = () => this.socket === socket;
    this.readyTimer = setTimeout(() => {
      if (current()) this.retryLater('The server did not answer in time.');
    }, READY_TIMEOUT_MS);
    socket.io.on('open', () => {
      const engine = socket.io.engine;
      if (current()) this.update({ transport: engine.transport.name });
      engine.on('upgrade', (transport: { name: string }) => {
        if (current()) this.update({ transport: transport.name });
      });
    });
    socket.on('connect', () => {
      if (current()) this.update({ transport: socket.io.engine?.transport.name ?? null });
    });
    socket.on('ready', (event: ReadyEvent) => {
      if (!current()) return;
      clearTimeout(this.readyTimer);
      this.attempts = 0;
      this.update({ status: 'connected', node: event.node, error: null, retryAt: null });
      this.handlers.ready(event);
    });
    socket.on('connect_error', (err: Error) => {
      if (!current()) return;
      const message = err.message || 'connection failed';
      if (message.startsWith('unauthorized')) {
        this.dropSocket();
        this.update({ status: 'refused', error: message, transport: null });
        this.handlers.refused(message);
        return;
      }
      this.retryLater(describeConnectError(message));
    });
    socket.on('disconnect', (reason: string) => {
      if (!current() || reason === 'io client disconnect') return;
      this.retryLater(describeDisconnect(reason));
    });
    this.handlers.bind(socket);
  }

  private retryLater(error: string): void {
    this.dropSocket();
    if (this.stopped) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.attempts) * (0.75 + Math.random() * 0.5);
    this.attempts++;
    const generation = ++this.generation;
    this.update({ status: 'reconnecting', transport: null, error, retryAt: Date.now() + delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (generation !== this.generation) return;
      this.update({ retryAt: null });
      void this.open(++this.generation);
    }, delay);
  }

  private dropSocket(): void {
    clearTimeout(this.readyTimer);
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.removeAllListeners();
    socket.io.removeAllListeners();
    socket.disconnect();
  }

  private update(patch: Partial<ConnectionInfo>): void {
    Object.assign(this.info, patch);
    this.handlers.changed();
  }
}

function describeConnectError(message: string): string {
  if (message.startsWith('unavailable')) return 'The server is shutting down or busy.';
  if (message === 'timeout') return 'The server did not answer in time.';
  if (/xhr poll error|websocket error|fetch/i.test(message)) return 'Cannot reach the server.';
  return message;
}

function describeDisconnect(reason: string): string {
  switch (reason) {
    case 'io server disconnect':
      return 'The server closed the connection.';
    case 'ping timeout':
      return 'The connection stopped responding.';
    case 'transport close':
    case 'transport error':
      return 'The connection was lost.';
    default:
      return reason;
  }
}
