/**
 * What every part of a partition (one bucket of one app) shares: its counters, its staged metadata
 * and settings, the exclusive section in which its changes are computed, and the making of its log
 * entries and views. The client-facing operations are in partition.ts, records from peers in
 * partition-replication.ts, history collection in partition-history.ts: one class, in layers.
 */
import { encodeCursor, decodeCursor, type StreamKind } from '../model/cursor.js';
import { ErrorCode, SyncError, isSyncError, invalidInput, type ChangeErrorCode } from '../model/errors.js';
import { isJsonObject, jsonEqual, type JsonObject } from '../model/json.js';
import { type ObjectDiff } from '../model/jsondiff.js';
import { versionsToPrune, type RetentionPolicy } from '../model/retention.js';
import type { Limits } from '../options.js';
import { advance, dominates, merge, seqOf, type VersionVector } from '../model/version-vector.js';
import { emptyKeyState, recordRef, type KeyRecord, type KeyState, type Ordered } from '../model/converge.js';
import type { HybridClock } from './hlc.js';
import { collectedBase } from '../model/replica-history.js';
import { PartitionLayout, registry } from '../storage/layout.js';
import { NOT_NOW, type StagedOp, type StagedStore } from '../storage/staged-store.js';
import { LiveFeed } from './live-feed.js';
import {
  changeDiff,
  initialMeta,
  type BucketConfig,
  type ChangeEntry,
  type ChangeOp,
  type ChangeRecord,
  type ChangeView,
  type EntityState,
  type EntityView,
  type EventEntry,
  type EventView,
  type PartitionMeta,
} from './records.js';

/** What the engine needs from its host: identity, time and chance are injected, never global. */
export interface EngineContext {
  /** The origin of the records this node accepts: its id, made when its data dir was created. */
  nodeId: string;
  now: () => number;
  clock: HybridClock;
  /** A new UUIDv7. */
  newId: () => string;
  limits: Limits;
  retention: RetentionPolicy;
  /**
   * Keep the log records an EMPTY/DROP cleared (a replica in a cluster: other replicas may still
   * need them), instead of compacting them away (a single node).
   */
  keepClearedLog?: boolean;
  /** Reports failures of background work (garbage collection); the node logs them. */
  onBackgroundError: (error: unknown) => void;
  /**
   * How long history is kept (Partition.collectHistory): change records an entity's later record
   * superseded and tombstones are collected once older than `horizonMs`; a ccid is remembered
   * (a retry answered `duplicate`) at least `ccidWindowMs`. Absent: history is kept for ever.
   */
  history?: { horizonMs: number; ccidWindowMs: number };
}

/** What one pass of history collection did. */
export interface HistoryCollected {
  /**
   * Change records looked at, superseded ones removed, tombstones removed, records an EMPTY/DROP
   * had cleared removed (a cluster's replicas), ccids forgotten.
   */
  scanned: number;
  superseded: number;
  tombstones: number;
  cleared: number;
  ccids: number;
  /** False when the pass stopped at its budget with old history left. */
  done: boolean;
}

/**
 * The id of a partition: `{app}/{bucket}` for the app's own instance of a bucket (shared by its
 * users, or reached by admin keys), `{app}/{bucket}/{user}` for a user's private one. No part can
 * contain `/` or `!`, so ids never collide and storage prefixes never overlap (layout.ts).
 */
export function partitionId(app: string, bucket: string, owner: string | null): string {
  return owner === null ? `${app}/${bucket}` : `${app}/${bucket}/${owner}`;
}

/** Who is asking, as far as a partition cares: admin (DROP, configure) or not. */
export interface Caller {
  admin: boolean;
  /**
   * Whether the caller may change `key` (null: the whole bucket, EMPTY and DROP); absent means
   * yes. A refusal is that change's INVALID_PERMISSION (the ACL of shared buckets decides).
   */
  mayChange?: (key: string | null) => boolean;
}

export interface ChangeInput {
  ccid: string;
  key?: string | null;
  op: ChangeOp;
  baseVersion?: number | null;
  data?: unknown;
  diff?: unknown;
}

export interface ChangePage {
  changes: ChangeView[];
  cursor: string;
  hasMore: boolean;
}

export interface EventPage {
  events: EventView[];
  cursor: string;
  hasMore: boolean;
}

export interface PushEventsOutcome {
  accepted: EventView[];
  rejected: Array<{ uuid: string; code: ChangeErrorCode; message: string }>;
  history: EventView[];
  cursor: string;
  hasMore: boolean;
}

export const CHANGE_ERROR_CODES: ReadonlySet<string> = new Set([
  ErrorCode.BAD_VERSION,
  ErrorCode.INVALID_PERMISSION,
  ErrorCode.MISSING_ENTITY,
  ErrorCode.INVALID_INPUT,
]);

export function isChangeError(error: unknown): error is SyncError & { code: ChangeErrorCode } {
  return isSyncError(error) && CHANGE_ERROR_CODES.has(error.code);
}

/**
 * The base layer of `Partition` (partition.ts): what the layers above share. Members are
 * protected, not private, only so that the layers can use them; nothing outside the class does.
 */
export abstract class PartitionCore {
  readonly partition: string;
  readonly changeFeed = new LiveFeed<ChangeView>();
  readonly eventFeed = new LiveFeed<EventView>();
  protected readonly layout: PartitionLayout;
  /** Serialises the computation of changes (not their fsync). */
  protected tail: Promise<unknown> = Promise.resolve();
  /** The last staged write; awaiting it means everything computed so far is durable. */
  protected lastStaged: Promise<void> = Promise.resolve();
  /** Last log positions staged (what the next entry follows), and the version vectors after them. */
  protected changePos: number;
  protected eventPos: number;
  protected changeVector: VersionVector;
  protected eventVector: VersionVector;
  /** The store's failure count when the staged counters were last known good. */
  protected failuresSeen: number;
  /** Whether the registry lists this partition (storage/layout.ts `registry`); undefined: unknown. */
  protected listed: boolean | undefined;
  /** Positions and vectors known durable (cursors beyond them were not issued by us). */
  protected durableChangePos: number;
  protected durableEventPos: number;
  protected durableChangeVector: VersionVector;
  protected durableEventVector: VersionVector;
  protected garbageCollection: Promise<void> = Promise.resolve();
  /**
   * The partition's metadata and settings as staged (null: none stored; undefined: not read yet).
   * Every change reads both and few write them, all through `stage`, which keeps these current:
   * kept here, they cost no lookup (an absent key is a LevelDB lookup every time).
   */
  protected stagedMeta: PartitionMeta | null | undefined;
  protected stagedConfig: BucketConfig | null | undefined;
  protected readonly metaKey: string;
  protected readonly configKey: string;
  /** Records writes removed as they superseded them (history collection had passed them): reported by the next collection pass. */
  protected supersededOnWrite = 0;
  /**
   * The origin of the records this copy accepts: the node's, or after the copy was purged (handed
   * over, a user deleted) and made anew, the node's with the copy's epoch, so that sequence numbers
   * that other replicas still hold are never reused for different records.
   */
  readonly origin: string;

  protected constructor(
    readonly app: string,
    readonly bucket: string,
    /** The user whose private instance of the bucket this is; null for the app's own. */
    readonly owner: string | null,
    protected readonly store: StagedStore,
    protected readonly ctx: EngineContext,
    heads: LogHeads,
    listed: boolean,
    epoch: number,
  ) {
    this.origin = epoch === 0 ? ctx.nodeId : `${ctx.nodeId}.${epoch}`;
    this.listed = listed;
    this.partition = partitionId(app, bucket, owner);
    this.layout = new PartitionLayout(this.partition);
    this.metaKey = this.layout.meta;
    this.configKey = this.layout.config;
    this.changePos = this.durableChangePos = heads.changePos;
    this.eventPos = this.durableEventPos = heads.eventPos;
    this.changeVector = this.durableChangeVector = heads.changeVector;
    this.eventVector = this.durableEventVector = heads.eventVector;
    this.failuresSeen = store.failures;
  }

  /**
   * The next entry of this copy's own origin: its log position, sequence number and clock, and
   * the staged vector after it.
   */
  protected ownEntry(
    base: RecordBase,
    key: string | null,
    op: ChangeOp,
    version: number | null,
    /** Undefined for a change that makes its entity from nothing (records.ts `ChangeRecord.diff`). */
    diff: ObjectDiff | null | undefined,
    data: JsonObject | null,
    deps: string[] | undefined,
    cut: VersionVector | undefined,
  ): { pos: number; seq: number; vector: VersionVector; entry: ChangeEntry } {
    const self = this.origin;
    const pos = ++this.changePos;
    const seq = seqOf(this.changeVector, self) + 1;
    const vector = advance(this.changeVector, self, seq);
    this.changeVector = vector;
    const entry: ChangeEntry = {
      id: this.ctx.newId(),
      ccid: base.ccid,
      clientId: base.clientId,
      sourceVersion: base.sourceVersion,
      key,
      op,
      version,
      diff,
      data,
      origin: self,
      seq,
      at: this.ctx.now(),
      hlc: this.ctx.clock.tick(),
    };
    if (deps !== undefined) entry.deps = deps;
    if (cut !== undefined) entry.cut = cut;
    if (!isTrivialVector(vector, self, seq)) entry.vv = vector;
    return { pos, seq, vector, entry };
  }

  /**
   * The writes that make `state` an entity's current state (after `previous`), and its retained
   * versions. Version 1 is stored apart only once a later version supersedes it: until then the
   * entity is that version (readers look there), and most entities are written once, so their one
   * version is stored once. Later versions are stored as they are made (one encoding serves both
   * keys). Versions are read only to rebase a stale change: never cached (PartitionLayout.isUncached).
   */
  protected entityWrites(meta: PartitionMeta, config: BucketConfig, key: string, previous: EntityState | undefined, state: EntityState): StagedOp[] {
    const previousVersion = previous?.version ?? 0;
    const ops: StagedOp[] = [{ type: 'put', key: this.layout.entity(meta.gen, key), value: state }];
    if (state.version !== 1) ops.push({ type: 'put', key: this.layout.version(meta.gen, key, state.version), value: state });
    if (previous !== undefined && previousVersion === 1 && state.version > 1) ops.push({ type: 'put', key: this.layout.version(meta.gen, key, 1), value: previous });
    for (const v of versionsToPrune(previousVersion, state.version, config)) ops.push({ type: 'del', key: this.layout.version(meta.gen, key, v) });
    return ops;
  }

  /**
   * The change a ccid applied here, and its log position when the index gives it. A single node
   * indexes a ccid by its record's position; replicas, and records EMPTY/DROP cleared from the log
   * (keepCcidsOfClearedRecords), keep the record itself under the ccid.
   */
  /** `appliedChange` from what is at hand; NOT_NOW when a read would have to wait. */
  protected appliedChangeNow(ccid: string): { entry: ChangeEntry; pos: number } | undefined | typeof NOT_NOW {
    const indexed = this.store.getNow<ChangeEntry | number>(this.layout.ccid(ccid));
    if (indexed === NOT_NOW || indexed === undefined) return indexed;
    if (typeof indexed !== 'number') return { entry: indexed, pos: 0 };
    const entry = this.store.getNow<ChangeEntry>(this.layout.change(indexed));
    if (entry === NOT_NOW) return NOT_NOW;
    if (entry === undefined) throw new Error(`ccid ${ccid} names log position ${indexed}, which holds no record`);
    return { entry, pos: indexed };
  }

  protected async appliedChange(ccid: string): Promise<{ entry: ChangeEntry; pos: number } | undefined> {
    const indexed = await this.store.get<ChangeEntry | number>(this.layout.ccid(ccid));
    if (indexed === undefined) return undefined;
    if (typeof indexed !== 'number') return { entry: indexed, pos: 0 };
    const entry = await this.store.get<ChangeEntry>(this.layout.change(indexed));
    // Never answer "not applied" for a ccid that was: a retry would be applied twice.
    if (entry === undefined) throw new Error(`ccid ${ccid} names log position ${indexed}, which holds no record`);
    return { entry, pos: indexed };
  }

  /**
   * Before log records cleared by EMPTY/DROP go, the ccids that name them by position get the
   * record itself: a retry of a cleared change must still be answered as a duplicate. Idempotent
   * (an interrupted pass is run again when the partition next opens).
   */
  protected async keepCcidsOfClearedRecords(changeLogStart: number): Promise<void> {
    let ops: StagedOp[] = [];
    for await (const [dbKey, entry] of this.store.entries<ChangeEntry>(this.layout.changesBefore(changeLogStart))) {
      const key = this.layout.ccid(entry.ccid);
      if ((await this.store.get<ChangeEntry | number>(key)) === PartitionLayout.seqOfKey(dbKey)) ops.push({ type: 'put', key, value: entry });
      if (ops.length >= 1000) {
        await this.store.stage(ops);
        ops = [];
      }
    }
    if (ops.length > 0) await this.store.stage(ops);
  }

  /** Clears generations and log records left behind by EMPTY/DROP, then forgets them. */
  protected collectGarbage(): void {
    this.garbageCollection = this.garbageCollection
      .then(async () => {
        const meta = await this.store.get<PartitionMeta>(this.layout.meta, { durable: true });
        if (meta === undefined) return;
        for (const gen of meta.garbage) await this.store.clear(this.layout.generation(gen));
        await this.keepCcidsOfClearedRecords(meta.changeLogStart);
        await this.store.clear(this.layout.changesBefore(meta.changeLogStart));
        if (meta.garbage.length === 0) return;
        await this.exclusive(async () => {
          const now = await this.meta();
          const garbage = now.garbage.filter((g) => !meta.garbage.includes(g));
          // The cleared records' ccids now hold the records (above): history collection sweeps
          // them out once past the ccid window (partition-history.ts `sweepClearedCcids`).
          const sweep = this.ctx.keepClearedLog === true ? {} : { ccidSweep: '' };
          this.stage([{ type: 'put', key: this.layout.meta, value: { ...now, garbage, ...sweep } satisfies PartitionMeta }]);
        });
      })
      .catch((error: unknown) => this.ctx.onBackgroundError(error));
  }

  /** The first log position whose entry `vector` does not cover (vectors grow along the log). */
  protected async firstUncovered(stream: StreamKind, vector: VersionVector): Promise<number> {
    let low = stream === 'changes' ? (await this.durableMeta()).changeLogStart : 1;
    let high = (stream === 'changes' ? this.durableChangePos : this.durableEventPos) + 1;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      const key = stream === 'changes' ? this.layout.change(mid) : this.layout.event(mid);
      const entry = await this.store.get<ChangeEntry | EventEntry>(key, { durable: true });
      if (entry !== undefined && dominates(vector, entryVector(entry))) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** This replica's durable version vector of a stream: which records it holds. */
  vectorOf(stream: StreamKind): VersionVector {
    return stream === 'changes' ? this.durableChangeVector : this.durableEventVector;
  }

  protected cursorOf(stream: StreamKind, vector: VersionVector): string {
    return encodeCursor({ stream, partition: this.partition, vector });
  }


  /** `config` from what is at hand; NOT_NOW when a read would have to wait. */
  protected configNow(): BucketConfig | typeof NOT_NOW {
    if (this.stagedConfig === undefined) {
      const stored = this.store.getNow<BucketConfig>(this.configKey);
      if (stored === NOT_NOW) return NOT_NOW;
      this.stagedConfig = stored ?? null;
    }
    return this.stagedConfig ?? this.defaultConfig();
  }

  async config(): Promise<BucketConfig> {
    if (this.stagedConfig === undefined) {
      const stored = (await this.store.get<BucketConfig>(this.configKey)) ?? null;
      if (this.stagedConfig === undefined) this.stagedConfig = stored;
    }
    return this.stagedConfig ?? this.defaultConfig();
  }

  protected defaultConfig(stamp?: BucketConfig['stamp']): BucketConfig {
    const config: BucketConfig = { conflictMode: 'MERGE', versionMax: this.ctx.retention.versionMax, version10Max: this.ctx.retention.version10Max };
    if (stamp !== undefined) config.stamp = stamp;
    return config;
  }


  /**
   * Refuses every later change: the copy is being purged (handed over, or its user deleted).
   * Whoever still holds this object must not write into the purged key space with its counters.
   */
  retire(): void {
    this.retired = true;
  }

  protected retired = false;

  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => {
      if (this.retired) throw new SyncError(ErrorCode.UNAVAILABLE, `bucket ${this.bucket} moved away from this node: retry`);
      // A failed write discarded everything staged: continue from what is durable.
      if (this.failuresSeen !== this.store.failures) {
        this.failuresSeen = this.store.failures;
        this.stagedMeta = undefined;
        this.stagedConfig = undefined;
        this.changePos = this.durableChangePos;
        this.eventPos = this.durableEventPos;
        this.changeVector = this.durableChangeVector;
        this.eventVector = this.durableEventVector;
        // Unknown: the next change writes the registry again (puts and deletes are idempotent).
        this.listed = undefined;
      }
      return fn();
    };
    const run = this.tail.then(guarded, guarded);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** The registry writes that make it say whether this partition exists (none if it already does). */
  protected listing(exists: boolean): StagedOp[] {
    if (exists === this.listed) return [];
    this.listed = exists;
    const keys = [registry.bucket(this.app, this.bucket, this.owner)];
    if (this.owner !== null) keys.push(registry.owned(this.app, this.owner, this.bucket));
    return keys.map((key): StagedOp => (exists ? { type: 'put', key, value: {} } : { type: 'del', key }));
  }

  protected stage(ops: StagedOp[], onDurable?: () => void): void {
    for (const op of ops) {
      if (op.key === this.metaKey) this.stagedMeta = op.type === 'put' ? (op.value as PartitionMeta) : null;
      else if (op.key === this.configKey) this.stagedConfig = op.type === 'put' ? (op.value as BucketConfig) : null;
    }
    const staged = this.store.stage(ops, onDurable);
    // Failures reach the requests awaiting this barrier; never leave a rejection unobserved
    // (once per promise: the changes staged in one turn share one).
    if (staged !== this.lastStaged) staged.catch(() => undefined);
    this.lastStaged = staged;
  }

  /** `meta` from what is at hand; NOT_NOW when a read would have to wait. */
  protected metaNow(): PartitionMeta | typeof NOT_NOW {
    if (this.stagedMeta === undefined) {
      const stored = this.store.getNow<PartitionMeta>(this.metaKey);
      if (stored === NOT_NOW) return NOT_NOW;
      this.stagedMeta = stored ?? null;
    }
    return this.stagedMeta ?? initialMeta;
  }

  protected async meta(): Promise<PartitionMeta> {
    if (this.stagedMeta === undefined) {
      const stored = (await this.store.get<PartitionMeta>(this.metaKey)) ?? null;
      // A write staged while we read is newer than what we read.
      if (this.stagedMeta === undefined) this.stagedMeta = stored;
    }
    return this.stagedMeta ?? initialMeta;
  }

  protected async durableMeta(): Promise<PartitionMeta> {
    return (await this.store.get<PartitionMeta>(this.layout.meta, { durable: true })) ?? initialMeta;
  }

  protected pageSize(requested: number | null): number {
    const { pageSizeDefault, pageSizeMax } = this.ctx.limits;
    if (requested === null) return pageSizeDefault;
    if (!Number.isInteger(requested) || requested < 1 || requested > pageSizeMax) {
      throw invalidInput(`page size must be from 1 to ${pageSizeMax}`);
    }
    return requested;
  }

  protected changeView(entry: ChangeEntry, pos: number): ChangeView {
    const vector = entryVector(entry);
    const local = entry.local;
    return {
      id: entry.id,
      ccid: entry.ccid,
      clientId: entry.clientId,
      bucket: this.bucket,
      key: entry.key,
      op: local === undefined ? entry.op : local.op,
      sourceVersion: entry.sourceVersion,
      version: local === undefined ? entry.version : local.version,
      diff: local === undefined ? changeDiff(entry) : local.diff,
      data: local === undefined ? entry.data : local.data,
      cursor: this.cursorOf('changes', vector),
      seq: pos,
      origin: entry.origin,
      originSeq: entry.seq,
      vector,
    };
  }

  protected eventView(entry: EventEntry, pos: number): EventView {
    const vector = entryVector(entry);
    return {
      uuid: entry.uuid,
      timestamp: entry.timestamp,
      user: entry.user,
      item: entry.item,
      action: entry.action,
      payload: entry.payload,
      cursor: this.cursorOf('events', vector),
      seq: pos,
      origin: entry.origin,
      originSeq: entry.seq,
      vector,
    };
  }

  protected entityView(key: string, state: EntityState): EntityView {
    return { bucket: this.bucket, key, version: state.version, data: state.data, deleted: state.deleted };
  }
}


export type CheckedChange =
  | { op: 'MODIFY'; key: string; baseVersion: number | null; body: { data: JsonObject } | { diff: ObjectDiff } }
  | { op: 'DELETE'; key: string; baseVersion: number | null }
  | { op: 'EMPTY' | 'DROP' };

export type RecordBase = { ccid: string; clientId: string | null; sourceVersion: number | null };

export interface LogHeads {
  changePos: number;
  eventPos: number;
  changeVector: VersionVector;
  eventVector: VersionVector;
}

/** Bytes of records (as stored) per batch for a peer: far below a peer link's frame limit. */
export const RECORDS_BYTES_MAX = 8 * 1024 * 1024;

export interface RecordsSince<T> {
  records: T[];
  more: boolean;
  /** Records the peer lacks were cleared by an EMPTY/DROP here: apply with `compacted`. */
  compacted: boolean;
  /** Records the peer lacks were collected here: apply with this `floor`. */
  floor?: VersionVector;
}

/** Where a reader of a log resumes (`Partition.resume`). */
export interface Resume {
  /** The first log position to read. */
  fromPos: number;
  /** Records the reader has already seen, to skip; null when there are none from `fromPos` on. */
  covered: VersionVector | null;
  /** The reader's cursor, as a vector. */
  since: VersionVector;
  /**
   * The reader has seen records this replica does not hold yet (its cursor came from a replica
   * further ahead): cursors handed to it must keep them covered.
   */
  ahead: boolean;
}

export function covers(resume: Resume, view: { origin: string; originSeq: number }): boolean {
  return resume.covered !== null && seqOf(resume.covered, view.origin) >= view.originSeq;
}

/**
 * The cursor to hand a reader after `view`: the view's own, unless the reader had seen records
 * this view's vector does not include (on another replica, or skipped here as covered): the
 * cursor must keep covering them.
 */
export function cursorFor(resume: Resume, view: { cursor: string; vector: VersionVector }): string {
  if (resume.covered === null || dominates(view.vector, resume.since)) return view.cursor;
  const position = decodeCursor(view.cursor);
  return encodeCursor({ ...position, vector: merge(resume.since, view.vector) });
}

/** The replica's version vector after a log entry. */
export function entryVector(entry: { origin: string; seq: number; vv?: VersionVector }): VersionVector {
  return entry.vv ?? { [entry.origin]: entry.seq };
}

/** Whether `vector` is just `{origin: seq}` (then entries need not store it). */
export function isTrivialVector(vector: VersionVector, origin: string, seq: number): boolean {
  let n = 0;
  for (const key in vector) {
    if (++n > 1 || key !== origin || vector[key] !== seq) return false;
  }
  return n === 1;
}

/** A record's own fields: what travels between replicas. */
export function ownFields(record: ChangeRecord): ChangeEntry {
  const { vv: _vv, local: _local, superseded: _superseded, ...own } = record as ChangeEntry;
  return own;
}

export function orderOf(record: { hlc?: number; origin: string }): Ordered {
  return { hlc: record.hlc ?? 0, origin: record.origin };
}

export function keyRecordOf(record: ChangeRecord, meta?: PartitionMeta): KeyRecord {
  const key: KeyRecord = {
    ref: recordRef(record.origin, record.seq),
    hlc: record.hlc ?? 0,
    origin: record.origin,
    deps: record.deps ?? [],
    data: record.op === 'DELETE' ? null : record.data,
  };
  // Parents collected here (model/replica-history.ts): the record keeps its origin's count.
  const base = collectedBase(record, meta?.floor, meta?.cut);
  if (base !== undefined) key.base = base;
  return key;
}

export function keyStateOf(state: EntityState | undefined): KeyState {
  if (state === undefined) return emptyKeyState;
  return {
    data: state.deleted ? null : state.data,
    version: state.version,
    heads: state.heads ?? [],
    last: state.hlc === undefined ? null : { hlc: state.hlc, origin: state.origin ?? '' },
  };
}

export function sameJson(a: JsonObject | null, b: JsonObject | null): boolean {
  return a === b || (a !== null && b !== null && jsonEqual(a, b));
}

export const ORIGIN = /^[A-Za-z0-9._-]{1,64}$/;

/** What a peer sends is checked for shape: a malformed record must not reach the log. */
export function checkRecord(record: ChangeRecord): void {
  const ok =
    typeof record === 'object' &&
    record !== null &&
    typeof record.origin === 'string' &&
    ORIGIN.test(record.origin) &&
    Number.isSafeInteger(record.seq) &&
    record.seq > 0 &&
    Number.isSafeInteger(record.hlc) &&
    typeof record.ccid === 'string' &&
    ['MODIFY', 'DELETE', 'EMPTY', 'DROP'].includes(record.op) &&
    (record.op === 'EMPTY' || record.op === 'DROP' ? record.key === null : typeof record.key === 'string') &&
    (record.op !== 'MODIFY' || isJsonObject(record.data));
  if (!ok) throw invalidInput('malformed replicated record');
}

/** A version vector from a peer, checked for shape. */
export function isVector(value: unknown): value is VersionVector {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const [origin, seq] of Object.entries(value)) if (!ORIGIN.test(origin) || !Number.isSafeInteger(seq) || (seq as number) < 0) return false;
  return true;
}

/** Whether `vector` names no origin but `origin`. */
export function onlyOrigin(vector: VersionVector, origin: string): boolean {
  for (const key in vector) if (key !== origin) return false;
  return true;
}

export function passes(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

/**
 * BAD_VERSION, with the entity as it is: the answer carries it (ChangeResult.entity), so a client
 * can rebase at once instead of pulling first.
 */
export class BadVersion extends SyncError {
  constructor(
    message: string,
    readonly key: string,
    readonly current: EntityState,
  ) {
    super(ErrorCode.BAD_VERSION, message);
  }
}

export function badVersion(message: string, key: string, current: EntityState): BadVersion {
  return new BadVersion(message, key, current);
}

/** What an entity stores of a key's converged state (model/converge.ts). */
export function entityStateOf(state: KeyState): EntityState {
  const entity: EntityState = { version: state.version, data: state.data, deleted: state.data === null, heads: state.heads };
  if (state.last !== null) {
    entity.hlc = state.last.hlc;
    entity.origin = state.last.origin;
  }
  return entity;
}
