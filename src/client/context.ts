/** What a bucket or event stream shares with its client: the I/O edges, options and reporting. */
import type { ClientError } from './errors.js';
import type { LocalStore } from './local-store.js';
import type { ResolvedClientOptions } from './options.js';
import type { StatusEvent } from './status.js';
import type { Transport } from './transport.js';

export interface SyncErrorEvent {
  error: ClientError;
  bucket: string | null;
  /** For a change given up: its key and ccid. */
  key?: string;
  ccid?: string;
}

export interface ProgressEvent {
  bucket: string;
  /** Changes received by this pull or initial sync so far. */
  received: number;
  /** True with the last page: the bucket is caught up. */
  done: boolean;
}

export interface SyncContext {
  transport: Transport;
  store: LocalStore;
  clientId: Promise<string>;
  options: ResolvedClientOptions;
  newId: () => string;
  status(event: StatusEvent): void;
  error(event: SyncErrorEvent): void;
  progress(event: ProgressEvent): void;
}
