/**
 * One live connection for all the tabs of an origin: a Transport that elects a leader tab with
 * a Web Lock and relays the others' requests and subscriptions over a BroadcastChannel.
 *
 * The leader (the tab holding the lock `name`) runs the real transport (HTTP + graphql-ws) and
 * answers every tab. When it goes away (closed, reloaded), the lock passes to a waiting tab,
 * which announces itself; the other tabs then end what they had running through the old leader
 * with NETWORK_ERROR, and their buckets resume from their own cursors once the new leader
 * reports the connection up. A request lost with a leader is retried like any lost request:
 * changes carry ccids, so a resend is applied once.
 *
 * Messages (all on the channel, addressed by tab id where they answer one tab):
 *
 *   hello  {from}                          a tab starts: the leader answers with `state`
 *   state  {leader, connected}             the leader's id and its connection state
 *   req    {from, id, query, variables}    -> res {to, id, data | error}
 *   sub    {from, id, query, variables}    -> next {to, id, data}* then end {to, id, error?}
 *   unsub  {from, id}                      the tab ended a subscription
 */
import { ClientError, ClientErrorCode, toClientError } from './errors.js';
import type { TypedDocumentString } from './generated/graphql.js';
import type { SubscriptionSink, Transport } from './transport.js';

/** The part of BroadcastChannel used here. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

/** The part of the Web Locks API (`navigator.locks`) used here. */
export interface LockManagerLike {
  request(name: string, callback: () => Promise<void>): Promise<unknown>;
}

export interface TabTransportOptions {
  /** The lock and channel name: one per node URL and credential. */
  name: string;
  /** Makes the real transport when this tab becomes the leader. */
  createTransport: () => Transport;
  /** @default new BroadcastChannel(name) */
  channel?: ChannelLike;
  /** @default navigator.locks */
  locks?: LockManagerLike;
  /** This tab's id. @default a random one */
  tabId?: string;
  /** A relayed request without an answer after this long fails (NETWORK_ERROR). */
  requestTimeoutMs: number;
}

type ErrorShape = { code: ClientErrorCode; message: string };

export type TabMessage =
  | { t: 'hello'; from: string }
  | { t: 'state'; leader: string; connected: boolean }
  | { t: 'req'; from: string; id: number; query: string; variables: unknown }
  | { t: 'res'; to: string; id: number; data?: unknown; error?: ErrorShape }
  | { t: 'sub'; from: string; id: number; query: string; variables: unknown }
  | { t: 'next'; to: string; id: number; data: unknown }
  | { t: 'end'; to: string; id: number; error?: ErrorShape }
  | { t: 'unsub'; from: string; id: number };

function isTabMessage(value: unknown): value is TabMessage {
  return typeof value === 'object' && value !== null && typeof (value as { t?: unknown }).t === 'string';
}

interface Pending {
  resolve: (data: unknown) => void;
  reject: (error: ClientError) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class TabTransport implements Transport {
  readonly tabId: string;
  private readonly channel: ChannelLike;
  private leaderTransport: Transport | null = null;
  private leaderId: string | null = null;
  private leaderConnected = false;
  private closed = false;
  private releaseLock: (() => void) | null = null;
  private seq = 0;
  private readonly listeners = new Set<(connected: boolean) => void>();
  private reported = false;
  /** Our requests and subscriptions relayed to the leader. */
  private readonly requests = new Map<number, Pending>();
  private readonly relayed = new Map<number, SubscriptionSink<unknown>>();
  /** Subscriptions we run as leader for other tabs, by `${tab}/${id}`. */
  private readonly served = new Map<string, () => void>();

  constructor(private readonly options: TabTransportOptions) {
    this.tabId = options.tabId ?? Math.random().toString(36).slice(2) + Date.now().toString(36);
    this.channel = options.channel ?? (new BroadcastChannel(options.name) as unknown as ChannelLike);
    this.channel.onmessage = (event) => {
      if (isTabMessage(event.data)) this.onMessage(event.data);
    };
    const locks = options.locks ?? (globalThis.navigator as { locks?: LockManagerLike } | undefined)?.locks;
    if (locks === undefined) throw new ClientError(ClientErrorCode.BAD_REQUEST, 'no Web Locks: pass options.locks');
    void locks.request(options.name, () => this.lead());
    this.post({ t: 'hello', from: this.tabId });
  }

  get connected(): boolean {
    return this.leaderTransport !== null ? this.leaderTransport.connected : this.leaderConnected;
  }

  /** True while this tab holds the connection. */
  get isLeader(): boolean {
    return this.leaderTransport !== null;
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables: TVariables): Promise<TResult> {
    if (this.closed) return Promise.reject(closedError());
    if (this.leaderTransport !== null) return this.leaderTransport.request(document, variables);
    const id = ++this.seq;
    return new Promise<TResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(id);
        reject(new ClientError(ClientErrorCode.NETWORK_ERROR, 'no answer from the leader tab'));
      }, this.options.requestTimeoutMs);
      this.requests.set(id, { resolve: resolve as (data: unknown) => void, reject, timer });
      this.post({ t: 'req', from: this.tabId, id, query: document.toString(), variables });
    });
  }

  subscribe<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    variables: TVariables,
    sink: SubscriptionSink<TResult>,
  ): () => void {
    if (this.closed) {
      queueMicrotask(() => sink.error(closedError()));
      return () => undefined;
    }
    if (this.leaderTransport !== null) return this.leaderTransport.subscribe(document, variables, sink);
    const id = ++this.seq;
    this.relayed.set(id, sink as SubscriptionSink<unknown>);
    this.post({ t: 'sub', from: this.tabId, id, query: document.toString(), variables });
    return () => {
      if (this.relayed.delete(id)) this.post({ t: 'unsub', from: this.tabId, id });
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failRelayed(closedError());
    for (const stop of this.served.values()) stop();
    this.served.clear();
    await this.leaderTransport?.close();
    this.leaderTransport = null;
    this.releaseLock?.();
    this.channel.close();
  }

  /** Runs while this tab holds the lock. */
  private async lead(): Promise<void> {
    if (this.closed) return;
    // What went through the previous leader is gone with it: resume through this tab.
    this.failRelayed(new ClientError(ClientErrorCode.NETWORK_ERROR, 'the leader tab went away'));
    const transport = this.options.createTransport();
    this.leaderTransport = transport;
    this.leaderId = this.tabId;
    transport.onConnection((connected) => {
      this.post({ t: 'state', leader: this.tabId, connected });
      this.emit(connected);
    });
    this.post({ t: 'state', leader: this.tabId, connected: transport.connected });
    this.emit(transport.connected);
    await new Promise<void>((resolve) => {
      this.releaseLock = resolve;
    });
  }

  private onMessage(message: TabMessage): void {
    if (this.closed) return;
    switch (message.t) {
      case 'hello':
        if (this.leaderTransport !== null) this.post({ t: 'state', leader: this.tabId, connected: this.leaderTransport.connected });
        return;
      case 'state':
        if (this.leaderTransport !== null) return;
        if (this.leaderId !== null && this.leaderId !== message.leader) {
          this.failRelayed(new ClientError(ClientErrorCode.NETWORK_ERROR, 'the leader tab changed'));
        }
        this.leaderId = message.leader;
        this.leaderConnected = message.connected;
        this.emit(message.connected);
        return;
      case 'res': {
        if (message.to !== this.tabId) return;
        const pending = this.requests.get(message.id);
        if (pending === undefined) return;
        this.requests.delete(message.id);
        clearTimeout(pending.timer);
        if (message.error !== undefined) pending.reject(new ClientError(message.error.code, message.error.message));
        else pending.resolve(message.data);
        return;
      }
      case 'next':
        if (message.to === this.tabId) this.relayed.get(message.id)?.next(message.data);
        return;
      case 'end': {
        if (message.to !== this.tabId) return;
        const sink = this.relayed.get(message.id);
        this.relayed.delete(message.id);
        if (message.error !== undefined) sink?.error(new ClientError(message.error.code, message.error.message));
        else sink?.complete();
        return;
      }
      case 'req':
        if (this.leaderTransport !== null) void this.serveRequest(this.leaderTransport, message);
        return;
      case 'sub':
        if (this.leaderTransport !== null) this.serveSubscription(this.leaderTransport, message);
        return;
      case 'unsub': {
        const key = `${message.from}/${message.id}`;
        this.served.get(key)?.();
        this.served.delete(key);
        return;
      }
    }
  }

  private async serveRequest(transport: Transport, message: Extract<TabMessage, { t: 'req' }>): Promise<void> {
    try {
      const data = await transport.request(asDocument(message.query), message.variables);
      this.post({ t: 'res', to: message.from, id: message.id, data });
    } catch (error) {
      this.post({ t: 'res', to: message.from, id: message.id, error: shape(error) });
    }
  }

  private serveSubscription(transport: Transport, message: Extract<TabMessage, { t: 'sub' }>): void {
    const key = `${message.from}/${message.id}`;
    const stop = transport.subscribe(asDocument(message.query), message.variables, {
      next: (data) => this.post({ t: 'next', to: message.from, id: message.id, data }),
      error: (error) => {
        this.served.delete(key);
        this.post({ t: 'end', to: message.from, id: message.id, error: shape(error) });
      },
      complete: () => {
        this.served.delete(key);
        this.post({ t: 'end', to: message.from, id: message.id });
      },
    });
    this.served.set(key, stop);
  }

  private failRelayed(error: ClientError): void {
    for (const [id, pending] of this.requests) {
      clearTimeout(pending.timer);
      this.requests.delete(id);
      pending.reject(error);
    }
    for (const [id, sink] of this.relayed) {
      this.relayed.delete(id);
      sink.error(error);
    }
  }

  private emit(connected: boolean): void {
    if (this.reported === connected) return;
    this.reported = connected;
    for (const listener of [...this.listeners]) listener(connected);
  }

  private post(message: TabMessage): void {
    if (!this.closed || message.t === 'end' || message.t === 'unsub') this.channel.postMessage(message);
  }
}

/** A relayed document: the leader sends the text on as it came. */
function asDocument(query: string): TypedDocumentString<unknown, unknown> {
  return { toString: () => query } as unknown as TypedDocumentString<unknown, unknown>;
}

function shape(error: unknown): ErrorShape {
  const e = toClientError(error);
  return { code: e.code, message: e.message };
}

function closedError(): ClientError {
  return new ClientError(ClientErrorCode.CLIENT_CLOSED, 'the client is closed');
}
