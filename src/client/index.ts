/**
 * syncgraph/client: an offline-first sync client for syncgraph nodes, for browsers and Node.
 * See docs/CLIENT.md.
 */
export { createClient, SyncClient, type ClientEvents } from './client.js';
export { Bucket, type BucketChange, type BucketListener, type Updater } from './bucket.js';
export { EventStream, type AppendEvent, type PushEventsResult, type SyncEvent } from './events.js';
export type { ClientOptions, BucketOptions, ShareConnectionOptions } from './options.js';
export type { ChannelLike, LockManagerLike } from './tab-transport.js';
export type { Conflict, ConflictResolver } from './key-state.js';
export type { SyncStatus } from './status.js';
export type { ProgressEvent, SyncErrorEvent } from './context.js';
export { ClientError, ClientErrorCode, isClientError } from './errors.js';
export type { Transport, SubscriptionSink } from './transport.js';
export type { LevelDatabase } from './local-store.js';
export type { TokenSource } from './graphql-transport.js';
export type { BackoffOptions } from './backoff.js';
export type { JsonObject, JsonValue } from '../model/json.js';
