/**
 * The options of `createClient` and `client.bucket()`, each with its default, applied once here.
 */
import { defaultBackoff, type BackoffOptions } from './backoff.js';
import type { ConflictResolver } from './key-state.js';
import type { LevelDatabase } from './local-store.js';
import type { TokenSource } from './graphql-transport.js';
import type { Transport } from './transport.js';
import type { ChannelLike, LockManagerLike } from './tab-transport.js';

/** Sharing one live connection between the tabs of an origin (see docs/CLIENT.md). */
export interface ShareConnectionOptions {
  /**
   * Lock and channel name: tabs with the same name share one connection, and so its credential.
   * @default one per url, app, user and credential (`apiKey` or a string `token`); required with
   * a token function, which may sign in anyone (use e.g. the user name)
   */
  name?: string;
  /** @default new BroadcastChannel(name) */
  channel?: ChannelLike;
  /** @default navigator.locks */
  locks?: LockManagerLike;
  tabId?: string;
}

export interface ClientOptions {
  /** The node's GraphQL endpoint, e.g. `https://sync.example.com/graphql`. */
  url: string;
  /** The WebSocket endpoint. @default `url` with http(s) replaced by ws(s) */
  wsUrl?: string;
  /**
   * A user's access token, or a function returning one (sync or async). A function is called
   * before every HTTP request and at every (re)connect of the live connection, so it can hand
   * out a refreshed token when the old one expires.
   */
  token?: TokenSource;
  /** An API key, instead of a token (an app's admin key, or the node's admin key with `app`). */
  apiKey?: string;
  /** The app, when authenticating with the node's admin key (X-Syncgraph-App). */
  app?: string;
  /** The user to act as, with an admin credential (X-Syncgraph-User). */
  user?: string;
  /** Any abstract-level database: browser-level, classic-level, memory-level... */
  store: LevelDatabase;
  /** A WebSocket class, where there is no global one (Node 20: `import WebSocket from 'ws'`). */
  webSocketImpl?: unknown;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * Keep buckets in sync by themselves: a live subscription per bucket and pending changes
   * pushed as soon as they are made. With false, nothing moves until `pull()`, `push()` or
   * `sync()`. @default true
   */
  live?: boolean;
  /** Changes per `submitChanges` request (the node's `changesPerRequestMax` is 1000). @default 100 */
  batchSizeMax?: number;
  /** Changes per page of an initial sync or `pull()` (at most 1000). @default 1000 */
  pageSize?: number;
  /** Retry delays of failed requests and reconnects. @default { initialMs: 500, maxMs: 30000 } */
  backoff?: Partial<BackoffOptions>;
  /** A request without an answer after this long fails and is retried. @default 30000 */
  requestTimeoutMs?: number;
  /** Ping interval of the live connection; a missing pong for as long drops it. @default 15000 */
  pingIntervalMs?: number;
  /** BAD_VERSION / MISSING_ENTITY refusals of one key in a row before its edits are dropped. @default 5 */
  refusalsMax?: number;
  /** The user name stamped on events appended without one. @default 'anonymous' */
  eventUser?: string;
  /**
   * One connection for all tabs of the origin: the tab holding a Web Lock connects, the others
   * relay through it over a BroadcastChannel. Each tab still needs its own store. @default false
   */
  shareConnection?: boolean | ShareConnectionOptions;
  /** Instead of HTTP + graphql-ws: a transport of your own. */
  transport?: Transport;
  /** @default Date.now */
  now?: () => number;
  /** Jitter of retry delays. @default Math.random */
  random?: () => number;
}

export interface BucketOptions {
  /**
   * Sync only the keys starting with this (selective sync). Writes to other keys are refused
   * (INVALID_INPUT). @default '' (the whole bucket)
   */
  keyPrefix?: string;
  /** Decides conflicts between local edits and a remote change; see `Conflict`. */
  onConflict?: ConflictResolver;
}

export interface ResolvedClientOptions {
  live: boolean;
  batchSizeMax: number;
  pageSize: number;
  backoff: BackoffOptions;
  requestTimeoutMs: number;
  pingIntervalMs: number;
  refusalsMax: number;
  eventUser: string;
  now: () => number;
  random: () => number;
}

export function resolveOptions(options: ClientOptions): ResolvedClientOptions {
  const {
    live = true,
    batchSizeMax = 100,
    pageSize = 1000,
    backoff = {},
    requestTimeoutMs = 30_000,
    pingIntervalMs = 15_000,
    refusalsMax = 5,
    eventUser = 'anonymous',
    now = () => Date.now(),
    random = () => Math.random(),
  } = options;
  return { live, batchSizeMax, pageSize, backoff: { ...defaultBackoff, ...backoff }, requestTimeoutMs, pingIntervalMs, refusalsMax, eventUser, now, random };
}
