/**
 * What the engine stores and serves. Records are what the log holds; views are what clients get,
 * built once per record and shared by every reader and subscriber ("encode once").
 */
import type { JsonObject } from '../model/json.js';
import type { ValidEvent } from '../model/event.js';
import type { ObjectDiff } from '../model/jsondiff.js';

export type ChangeOp = 'MODIFY' | 'DELETE' | 'EMPTY' | 'DROP';
export type ConflictMode = 'MERGE' | 'OPTIMISTIC';

export interface ChangeRecord {
  /** UUIDv7 of this record. */
  id: string;
  ccid: string;
  clientId: string | null;
  key: string | null;
  op: ChangeOp;
  sourceVersion: number | null;
  version: number | null;
  diff: ObjectDiff | null;
  data: JsonObject | null;
  /** The node that accepted the change, and its dense sequence number there. */
  origin: string;
  seq: number;
  /** Acceptance time, ms since the epoch. */
  at: number;
}

export interface EventRecord extends ValidEvent {
  origin: string;
  seq: number;
  at: number;
}

export interface EntityState {
  version: number;
  data: JsonObject | null;
  deleted: boolean;
}

/**
 * What a partition needs beyond its logs. Written only by EMPTY, DROP and garbage collection:
 * the sequence numbers are not kept here (that would be one more write per change) but read
 * from the last key of each log when the partition opens.
 */
export interface PartitionMeta {
  /** Generation of entities and versions; EMPTY and DROP move to the next one. */
  gen: number;
  /** First change record still in the log (earlier ones were compacted away by EMPTY/DROP). */
  changeLogStart: number;
  /** Generations left behind by EMPTY/DROP and not yet cleared. */
  garbage: number[];
}

export const initialMeta: PartitionMeta = { gen: 1, changeLogStart: 1, garbage: [] };

export interface BucketConfig {
  conflictMode: ConflictMode;
  versionMax: number;
  version10Max: number;
}

export interface ChangeView {
  id: string;
  ccid: string;
  clientId: string | null;
  bucket: string;
  key: string | null;
  op: ChangeOp;
  sourceVersion: number | null;
  version: number | null;
  diff: ObjectDiff | null;
  data: JsonObject | null;
  cursor: string;
  /** Position in the local log, for ordering and de-duplication of streams. */
  seq: number;
}

export interface EventView {
  uuid: string;
  timestamp: string;
  user: string;
  item: string;
  action: string;
  payload: string;
  cursor: string;
  seq: number;
}

export interface EntityView {
  bucket: string;
  key: string;
  version: number;
  data: JsonObject | null;
  deleted: boolean;
}

export interface ChangeOutcome {
  ccid: string;
  change: ChangeView | null;
  error: { code: 'BAD_VERSION' | 'INVALID_PERMISSION' | 'MISSING_ENTITY' | 'INVALID_INPUT'; message: string } | null;
  duplicate: boolean;
  noop: boolean;
  entity: EntityView | null;
}
