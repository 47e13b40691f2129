/**
 * The sync status an app shows ("all changes saved", "offline, 3 changes pending"), as a pure
 * reducer over the events the client's parts report.
 */
import type { ClientErrorCode } from './errors.js';

export interface SyncStatus {
  /** The live connection is up (or, without live sync, the last request reached the server). */
  online: boolean;
  /** Local changes not acknowledged by the server yet, in all buckets. */
  pending: number;
  /** The same, per bucket (buckets with none are left out). */
  pendingByBucket: Readonly<Record<string, number>>;
  /** The last change the server acknowledged. */
  lastAcknowledged: { bucket: string; key: string; ccid: string; version: number | null; at: number } | null;
  /** When the client last had nothing pending and had read everything the server had (ms). */
  lastSyncedAt: number | null;
  /** The last failure (cleared by nothing: compare `at` with `lastSyncedAt`). */
  lastError: { code: ClientErrorCode; message: string; bucket: string | null; at: number } | null;
}

export const initialStatus: SyncStatus = Object.freeze({
  online: false,
  pending: 0,
  pendingByBucket: Object.freeze({}),
  lastAcknowledged: null,
  lastSyncedAt: null,
  lastError: null,
});

export type StatusEvent =
  | { type: 'online'; online: boolean }
  | { type: 'pending'; bucket: string; count: number }
  | { type: 'acknowledged'; bucket: string; key: string; ccid: string; version: number | null; at: number }
  | { type: 'synced'; at: number }
  | { type: 'error'; code: ClientErrorCode; message: string; bucket: string | null; at: number };

export function reduceStatus(status: SyncStatus, event: StatusEvent): SyncStatus {
  switch (event.type) {
    case 'online':
      return status.online === event.online ? status : { ...status, online: event.online };
    case 'pending': {
      if ((status.pendingByBucket[event.bucket] ?? 0) === event.count) return status;
      const pendingByBucket = { ...status.pendingByBucket };
      if (event.count === 0) delete pendingByBucket[event.bucket];
      else pendingByBucket[event.bucket] = event.count;
      const pending = Object.values(pendingByBucket).reduce((sum, n) => sum + n, 0);
      return { ...status, pending, pendingByBucket };
    }
    case 'acknowledged': {
      const { type: _, ...lastAcknowledged } = event;
      return { ...status, lastAcknowledged };
    }
    case 'synced':
      return { ...status, lastSyncedAt: event.at };
    case 'error': {
      const { type: _, ...lastError } = event;
      return { ...status, lastError };
    }
  }
}
