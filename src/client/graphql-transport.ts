/**
 * The Transport over a node's one port: queries and mutations as HTTP POSTs (fetch), and one
 * graphql-ws connection that carries every subscription of the client.
 *
 * Credentials are computed at each use: before every HTTP request, and in `connectionParams` at
 * every (re)connect, so an expiring token is refreshed by the app's token function without
 * losing anything. The connection retries for ever with capped, jittered backoff. When it drops,
 * every subscription on it is ended here with NETWORK_ERROR: graphql-ws would otherwise
 * resubscribe with the variables it was first given (a stale `since`), while the bucket
 * resubscribes from its latest cursor once the connection is back.
 */
import { createClient, type Client as WsClient } from 'graphql-ws/client';
import { backoffMs, type BackoffOptions } from './backoff.js';
import { ClientError, ClientErrorCode, toClientError } from './errors.js';
import type { TypedDocumentString } from './generated/graphql.js';
import type { SubscriptionSink, Transport } from './transport.js';

export type TokenSource = string | (() => string | Promise<string>);

export interface GraphQLTransportOptions {
  /** The node's GraphQL endpoint over HTTP(S). */
  url: string;
  /** The WebSocket endpoint. @default `url` with http(s) replaced by ws(s) */
  wsUrl?: string;
  /** The bearer credential: a key or token, or a function returning one (called at every use). */
  credential?: TokenSource | undefined;
  /** Sent as X-Syncgraph-App / `connectionParams.app` (the node admin key names its app so). */
  app?: string | undefined;
  /** Sent as X-Syncgraph-User / `connectionParams.user` (an admin credential acting as a user). */
  user?: string | undefined;
  /** Whether to open the live connection. */
  live: boolean;
  /** A WebSocket class (`ws` in Node 20, which has no global WebSocket). */
  webSocketImpl?: unknown;
  fetch?: typeof fetch | undefined;
  backoff: BackoffOptions;
  random: () => number;
  /** A request without an answer after this long fails (NETWORK_ERROR) and is retried. */
  requestTimeoutMs: number;
  /**
   * The live connection is pinged this often; without a pong within the same time it is
   * dropped and reconnected (a network that silently stops passing packets never closes it).
   */
  pingIntervalMs: number;
  /** A failure worth reporting that no caller sees (a token function that threw, say). */
  onError?: (error: ClientError) => void;
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

export class GraphQLTransport implements Transport {
  private ws: WsClient | null = null;
  private isConnected = false;
  private closed = false;
  private readonly listeners = new Set<(connected: boolean) => void>();
  private readonly active = new Set<{ end: (error: ClientError) => void }>();
  private readonly inFlight = new Set<AbortController>();
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: GraphQLTransportOptions) {
    const impl = options.fetch ?? (globalThis.fetch as typeof fetch | undefined);
    if (impl === undefined) throw new ClientError(ClientErrorCode.BAD_REQUEST, 'no fetch: pass options.fetch');
    this.fetchImpl = impl.bind(globalThis);
    if (options.live) this.ws = this.connect();
  }

  get connected(): boolean {
    return this.isConnected;
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables: TVariables): Promise<TResult> {
    if (this.closed) throw new ClientError(ClientErrorCode.CLIENT_CLOSED, 'the client is closed');
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    Object.assign(headers, await this.authHeaders());
    let response: Response;
    let body: GraphQLResponse<TResult>;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.options.requestTimeoutMs);
    this.inFlight.add(abort);
    try {
      response = await this.fetchImpl(this.options.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query: document.toString(), variables }),
        signal: abort.signal,
      });
      body = (await response.json()) as GraphQLResponse<TResult>;
    } catch (error) {
      if (this.closed) throw new ClientError(ClientErrorCode.CLIENT_CLOSED, 'the client is closed');
      this.requestOutcome(false);
      throw new ClientError(ClientErrorCode.NETWORK_ERROR, `request failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(abort);
    }
    this.requestOutcome(true);
    const first = body.errors?.[0];
    if (first !== undefined) throw graphQLError(first);
    if (body.data === undefined || body.data === null) {
      throw new ClientError(ClientErrorCode.INTERNAL_SERVER_ERROR, `HTTP ${response.status} without data`);
    }
    return body.data;
  }

  subscribe<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    variables: TVariables,
    sink: SubscriptionSink<TResult>,
  ): () => void {
    const ws = this.ws;
    if (ws === null || this.closed) {
      queueMicrotask(() => sink.error(new ClientError(this.closed ? ClientErrorCode.CLIENT_CLOSED : ClientErrorCode.NETWORK_ERROR, 'no live connection')));
      return () => undefined;
    }
    let ended = false;
    let dispose = (): void => undefined;
    const entry = {
      end: (error: ClientError) => {
        if (ended) return;
        ended = true;
        this.active.delete(entry);
        dispose();
        sink.error(error);
      },
    };
    this.active.add(entry);
    dispose = ws.subscribe<TResult, Record<string, unknown>>(
      { query: document.toString(), variables: variables as Record<string, unknown> },
      {
        next: (result) => {
          if (ended) return;
          const first = result.errors?.[0];
          if (first !== undefined) entry.end(graphQLError(first as { message: string; extensions?: { code?: string } }));
          else if (result.data !== undefined && result.data !== null) sink.next(result.data);
        },
        error: (error) => entry.end(subscriptionError(error)),
        complete: () => {
          if (ended) return;
          ended = true;
          this.active.delete(entry);
          sink.complete();
        },
      },
    );
    return () => {
      if (ended) return;
      ended = true;
      this.active.delete(entry);
      dispose();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const abort of this.inFlight) abort.abort();
    for (const entry of [...this.active]) entry.end(new ClientError(ClientErrorCode.CLIENT_CLOSED, 'the client is closed'));
    const ws = this.ws;
    this.ws = null;
    this.setConnected(false);
    await ws?.dispose();
  }

  /** Without a live connection, "connected" means the last request reached the node. */
  private requestOutcome(reached: boolean): void {
    if (!this.options.live) this.setConnected(reached);
  }

  private connect(): WsClient {
    const { backoff, random, pingIntervalMs } = this.options;
    const wsUrl = this.options.wsUrl ?? this.options.url.replace(/^http/, 'ws');
    let pongTimer: ReturnType<typeof setTimeout> | undefined;
    const ws: WsClient = createClient({
      url: wsUrl,
      lazy: false,
      keepAlive: pingIntervalMs,
      retryAttempts: Infinity,
      // Every close is worth a retry: the node restarting, a revoked or expired token (4403,
      // refreshed by the token function at the next connect), a lost network.
      shouldRetry: () => true,
      retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, backoffMs(retries, backoff, random))),
      connectionParams: async () => {
        const params: Record<string, string> = {};
        const credential = await this.credential();
        if (credential !== undefined) params['authorization'] = `Bearer ${credential}`;
        if (this.options.app !== undefined) params['app'] = this.options.app;
        if (this.options.user !== undefined) params['user'] = this.options.user;
        return params;
      },
      ...(this.options.webSocketImpl !== undefined ? { webSocketImpl: this.options.webSocketImpl } : {}),
      // graphql-ws gives up only on close codes it deems fatal (a protocol error): start over.
      onNonLazyError: (error) => {
        if (this.closed || this.ws !== ws) return;
        this.options.onError?.(toClientError(error));
        this.ws = null;
        setTimeout(() => {
          if (!this.closed) this.ws = this.connect();
        }, backoffMs(0, backoff, random));
      },
      on: {
        connected: () => {
          if (this.ws === ws) this.setConnected(true);
        },
        ping: (received) => {
          if (received) return;
          clearTimeout(pongTimer);
          // terminate() closes at once (4499) and graphql-ws reconnects.
          pongTimer = setTimeout(() => ws.terminate(), pingIntervalMs);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
        closed: () => {
          clearTimeout(pongTimer);
          // Registered before graphql-ws's own listeners: the subscriptions are ended (and
          // disposed) before graphql-ws could resubscribe them with stale variables.
          for (const entry of [...this.active]) entry.end(new ClientError(ClientErrorCode.NETWORK_ERROR, 'connection lost'));
          this.setConnected(false);
        },
      },
    });
    return ws;
  }

  private setConnected(connected: boolean): void {
    if (this.isConnected === connected) return;
    this.isConnected = connected;
    for (const listener of [...this.listeners]) listener(connected);
  }

  private async credential(): Promise<string | undefined> {
    const source = this.options.credential;
    if (source === undefined || typeof source === 'string') return source;
    try {
      return await source();
    } catch (error) {
      // Without a credential the node refuses (UNAUTHENTICATED) and we retry: better than
      // graphql-ws treating the throw as fatal and never reconnecting.
      this.options.onError?.(new ClientError(ClientErrorCode.UNAUTHENTICATED, `token function failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
      return undefined;
    }
  }

  private async authHeaders(): Promise<Record<string, string>> {
    const headers: Record<string, string> = {};
    const credential = await this.credential();
    if (credential !== undefined) headers['authorization'] = `Bearer ${credential}`;
    if (this.options.app !== undefined) headers['x-syncgraph-app'] = this.options.app;
    if (this.options.user !== undefined) headers['x-syncgraph-user'] = this.options.user;
    return headers;
  }
}

function graphQLError(error: { message: string; extensions?: { code?: string } }): ClientError {
  const code = error.extensions?.code;
  const known = code !== undefined && Object.hasOwn(ClientErrorCode, code) ? (code as ClientErrorCode) : ClientErrorCode.INTERNAL_SERVER_ERROR;
  return new ClientError(known, error.message);
}

/** graphql-ws reports a subscription's end as GraphQL errors, a close event or an Error. */
function subscriptionError(error: unknown): ClientError {
  if (Array.isArray(error) && error.length > 0) return graphQLError(error[0] as { message: string; extensions?: { code?: string } });
  if (typeof error === 'object' && error !== null && 'code' in error && 'reason' in error) {
    return new ClientError(ClientErrorCode.NETWORK_ERROR, `connection closed (${String(error.code)}: ${String(error.reason)})`);
  }
  return toClientError(error);
}
