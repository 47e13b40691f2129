/**
 * What the engine stores and serves. Records are what the log holds; views are what clients get,
 * built once per record and shared by every reader and subscriber ("encode once").
 */
import type { JsonObject } from '../model/json.js';
import type { ValidEvent } from '../model/event.js';
import { diffFromNothing, type ObjectDiff } from '../model/jsondiff.js';
import type { VersionVector } from '../model/version-vector.js';

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
  /**
   * What the change did to the entity. Absent when it made the entity from nothing (a create, or
   * the revival of a tombstone): the diff is then every key of `data` added, derived when read
   * (`changeDiff`) rather than stored, since it would repeat `data` (stored twice per create, it
   * was a third of what a create wrote and of what a reader decoded).
   */
  diff?: ObjectDiff | null;
  data: JsonObject | null;
  /** The node that accepted the change, and its dense sequence number there. */
  origin: string;
  seq: number;
  /** Acceptance time, ms since the epoch. */
  at: number;
  /**
   * Hybrid logical clock of the origin when it accepted the change: with the origin, the record's
   * place in the total order that replicas merge in (model/converge.ts).
   */
  hlc: number;
  /** MODIFY and DELETE: the entity's heads at the origin, the records this one was made on. */
  deps?: string[];
  /** EMPTY and DROP: the origin's version vector before it: exactly the records it clears. */
  cut?: VersionVector;
}

/**
 * A change record as a replica's log holds it: the record as its origin made it (what travels
 * between replicas), and what it did here when that differs.
 */
export interface ChangeEntry extends ChangeRecord {
  /** This replica's version vector after the entry; absent when it is just `{origin: seq}`. */
  vv?: VersionVector;
  /** The entity as this replica left it, when a merge made it differ from the origin's. */
  local?: { op: ChangeOp; version: number; data: JsonObject | null; diff: ObjectDiff | null };
  /** Another record with the same ccid came first in the total order: this one counts for nothing. */
  superseded?: true;
}

export interface EventRecord extends ValidEvent {
  origin: string;
  seq: number;
  at: number;
}

export interface EventEntry extends EventRecord {
  vv?: VersionVector;
  /** An event with the same uuid was already here: this copy counts for nothing. */
  superseded?: true;
}

export interface EntityState {
  version: number;
  data: JsonObject | null;
  deleted: boolean;
  /** The records no other record of this entity descends from (model/converge.ts). */
  heads?: string[];
  /** Order of the entity's last record: its clock and origin. */
  hlc?: number;
  origin?: string;
  /**
   * Log position of the entity's last record, where this copy made it (a single node): the next
   * write of the entity removes that record if history collection already went past it.
   */
  pos?: number;
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
  /** What EMPTY and DROP cleared: the records this vector covers count for nothing. */
  cut?: VersionVector;
  /**
   * History collection (Partition.collectHistory) went through the log up to here: before it,
   * only the latest record of each live entity is left (and the next write of an entity removes
   * its record there).
   */
  historyFrom?: number;
  /**
   * Just after the last tombstone history collection removed: a reader whose cursor is before it
   * would never learn of that deletion, so such a cursor has expired.
   */
  cursorFloor?: number;
  /**
   * A single node's sweep of its ccid index for the entries of records EMPTY or DROP cleared from
   * the log (each holds its record, so that a retry within the ccid window is still a duplicate;
   * the log no longer leads history collection to them): the ccid key after which the next pass
   * resumes ('' from the start). Absent when no sweep is due.
   */
  ccidSweep?: string;
  /** Set when the current sweep met a cleared record's entry too young to go: sweep again. */
  ccidSweepAgain?: true;
  /**
   * A replica in a cluster (Partition.collectReplicated): per origin, the highest record collected
   * here or on a copy this one was filled from; records it covers that are not in the log were
   * collected. A peer whose vector does not cover it gets the records with this floor and skips the
   * gaps below it. Its presence also means versions count collected records (converge.ts `base`).
   */
  floor?: VersionVector;
  /**
   * Floors of peers this copy took records from with gaps (whether or not the transfer finished):
   * below them it holds only what those peers kept (replica-history.ts `needsRebuild`).
   */
  taken?: VersionVector;
  /** A floor this copy took over from a peer: part of its version vector (the log has gaps). */
  adopted?: VersionVector;
  /**
   * A replica in a cluster: a cursor that does not cover this vector has expired (a deletion it
   * has not seen was collected, or the copy was filled from a peer's collected history).
   */
  cursorVector?: VersionVector;
}

export const initialMeta: PartitionMeta = { gen: 1, changeLogStart: 1, garbage: [] };

export interface BucketConfig {
  conflictMode: ConflictMode;
  versionMax: number;
  version10Max: number;
  /** When and where it was set (clock, origin): replicas keep the latest setting. */
  stamp?: { hlc: number; origin: string };
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
  /** The record's identity in every replica: its origin and its sequence number there. */
  origin: string;
  originSeq: number;
  /** This replica's version vector after the record (what `cursor` encodes). */
  vector: VersionVector;
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
  origin: string;
  originSeq: number;
  vector: VersionVector;
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

/** A record's diff: as stored, or for a change that made its entity from nothing, derived from its data. */
export function changeDiff(record: Pick<ChangeRecord, 'op' | 'diff' | 'data'>): ObjectDiff | null {
  if (record.diff !== undefined) return record.diff;
  return record.op === 'MODIFY' && record.data !== null ? diffFromNothing(record.data) : null;
}
