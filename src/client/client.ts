/**
 * `createClient`: a sync client for one user on one node. It owns the store, the transport (one
 * live connection for all buckets), the status, and the buckets and event streams it hands out.
 */
import { uuidv7 } from 'uuidv7';
import { Bucket } from './bucket.js';
import type { ProgressEvent, SyncContext, SyncErrorEvent } from './context.js';
import { Emitter } from './emitter.js';
import { ClientError, ClientErrorCode } from './errors.js';
import { EventStream } from './events.js';
import { GraphQLTransport } from './graphql-transport.js';
import { LocalStore } from './local-store.js';
import { TabTransport } from './tab-transport.js';
import { resolveOptions, type BucketOptions, type ClientOptions } from './options.js';
import { initialStatus, reduceStatus, type StatusEvent, type SyncStatus } from './status.js';
import type { Transport } from './transport.js';

export interface ClientEvents {
  [event: string]: unknown;
  /** The status changed. */
  status: SyncStatus;
  /** A request failed (it is retried), or a change was given up (with its key and ccid). */
  error: SyncErrorEvent;
  /** A page of an initial sync or pull arrived. */
  progress: ProgressEvent;
}

export class SyncClient {
  /** This client's id (made once per store, kept across restarts; sent as `clientId`). */
  readonly clientId: Promise<string>;
  private readonly ctx: SyncContext;
  private readonly transport: Transport;
  private readonly buckets = new Map<string, Bucket>();
  private readonly streams = new Map<string, EventStream>();
  private readonly emitter = new Emitter<ClientEvents>();
  private current: SyncStatus = initialStatus;
  private closed = false;
  private readonly unlisten: () => void;

  constructor(options: ClientOptions) {
    const resolved = resolveOptions(options);
    const store = new LocalStore(options.store);
    this.clientId = store.clientId(() => uuidv7());
    this.clientId.catch(() => undefined);
    const connect = (): Transport =>
      new GraphQLTransport({
        url: options.url,
        ...(options.wsUrl !== undefined ? { wsUrl: options.wsUrl } : {}),
        credential: options.token ?? options.apiKey,
        app: options.app,
        user: options.user,
        live: resolved.live,
        webSocketImpl: options.webSocketImpl,
        fetch: options.fetch,
        backoff: resolved.backoff,
        random: resolved.random,
        requestTimeoutMs: resolved.requestTimeoutMs,
        pingIntervalMs: resolved.pingIntervalMs,
        onError: (error) => this.reportError({ error, bucket: null }),
      });
    const share = options.shareConnection === true ? {} : options.shareConnection || undefined;
    this.transport =
      options.transport ??
      (share === undefined
        ? connect()
        : new TabTransport({
            name: share.name ?? defaultShareName(options),
            createTransport: connect,
            ...(share.channel !== undefined ? { channel: share.channel } : {}),
            ...(share.locks !== undefined ? { locks: share.locks } : {}),
            ...(share.tabId !== undefined ? { tabId: share.tabId } : {}),
            requestTimeoutMs: resolved.requestTimeoutMs,
          }));
    this.ctx = {
      transport: this.transport,
      store,
      clientId: this.clientId,
      options: resolved,
      newId: () => uuidv7(),
      status: (event) => this.apply(event),
      error: (event) => this.reportError(event),
      progress: (event) => this.emitter.emit('progress', event),
    };
    this.unlisten = this.transport.onConnection((connected) => {
      this.apply({ type: 'online', online: connected });
      if (connected) for (const bucket of this.buckets.values()) bucket.reconnected();
    });
    if (this.transport.connected) this.apply({ type: 'online', online: true });
  }

  /** The bucket `name` (one object per name; options apply when it is first opened). */
  bucket(name: string, options: BucketOptions = {}): Bucket {
    this.checkOpen();
    let bucket = this.buckets.get(name);
    if (bucket === undefined) {
      bucket = new Bucket(name, options, this.ctx);
      this.buckets.set(name, bucket);
    } else if ((options.keyPrefix ?? '') !== bucket.keyPrefix) {
      throw new ClientError(ClientErrorCode.INVALID_INPUT, `bucket ${name} is open with keyPrefix '${bucket.keyPrefix}'`);
    }
    return bucket;
  }

  /** The Simple Sync event history of bucket `name`. */
  events(name: string): EventStream {
    this.checkOpen();
    let stream = this.streams.get(name);
    if (stream === undefined) {
      stream = new EventStream(name, this.ctx);
      this.streams.set(name, stream);
    }
    return stream;
  }

  /** A snapshot of the sync status. */
  get status(): SyncStatus {
    return this.current;
  }

  on<K extends keyof ClientEvents & string>(event: K, listener: (value: ClientEvents[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  /** Pulls every open bucket. */
  async pull(): Promise<void> {
    await Promise.all([...this.buckets.values()].map((b) => b.pull()));
  }

  /** Pushes every open bucket's pending changes. */
  async push(): Promise<void> {
    await Promise.all([...this.buckets.values()].map((b) => b.push()));
  }

  /** Pushes, then pulls, every open bucket. */
  async sync(): Promise<void> {
    await Promise.all([...this.buckets.values()].map((b) => b.sync()));
  }

  /** Stops syncing and closes the connection. The store stays open: it is the app's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    // Buckets stop first (no new requests), then the transport aborts what is in flight, which
    // lets the buckets' loops end without waiting for a request timeout.
    const stopping = Promise.all([...this.buckets.values()].map((b) => b.close()));
    await this.transport.close();
    await stopping;
    this.apply({ type: 'online', online: false });
  }

  private apply(event: StatusEvent): void {
    const next = reduceStatus(this.current, event);
    if (next === this.current) return;
    this.current = next;
    this.emitter.emit('status', next);
  }

  private reportError(event: SyncErrorEvent): void {
    if (this.closed && event.error.code === ClientErrorCode.CLIENT_CLOSED) return;
    this.apply({ type: 'error', code: event.error.code, message: event.error.message, bucket: event.bucket, at: this.ctx.options.now() });
    this.emitter.emit('error', event);
  }

  private checkOpen(): void {
    if (this.closed) throw new ClientError(ClientErrorCode.CLIENT_CLOSED, 'the client is closed');
  }
}

export function createClient(options: ClientOptions): SyncClient {
  return new SyncClient(options);
}

/**
 * The tabs sharing a connection share its credential: the default name is one per node and
 * credential, so that a tab signed in as another user never rides the leader's connection (and
 * reads that user's buckets). A token function may sign in anyone: it needs a name of the app's
 * choosing (e.g. the user name).
 */
function defaultShareName(options: ClientOptions): string {
  if (typeof options.token === 'function') {
    throw new ClientError(
      ClientErrorCode.INVALID_INPUT,
      'shareConnection with a token function: give it a name that identifies the signed-in user (shareConnection: { name })',
    );
  }
  const credential = options.apiKey ?? options.token ?? '';
  return `syncgraph:${options.url}:${options.app ?? ''}:${options.user ?? ''}:${fingerprint(credential)}`;
}

/** FNV-1a, 32 bits: tells credentials apart in a name without spelling them out. */
function fingerprint(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}
