/**
 * One partition (one bucket of one app): its state machine. Every change goes
 *   validate -> dedupe ccid -> transform against what happened since its base -> apply
 *   -> stage one atomic batch (log record, entity, version, ccid, meta) -> durable -> publish
 * Changes of a partition are computed one at a time (the `exclusive` chain) but are not fsynced
 * one at a time: the staged store group-commits them, and a result is returned only once the
 * batch holding it, and everything it was computed from, is durable.
 */
import { encodeCursor, decodeCursor, type StreamKind } from '../model/cursor.js';
import { ErrorCode, SyncError, isSyncError, invalidInput, type ChangeErrorCode } from '../model/errors.js';
import { validateEvent, type EventInput } from '../model/event.js';
import { createHash } from 'node:crypto';
import { canonicalJson, inspectJson, isJsonObject, jsonEqual, type JsonObject } from '../model/json.js';
import {
  applyDiff,
  applyDiffLenient,
  diffObjects,
  isEmptyDiff,
  parseDiff,
  transform,
  type ObjectDiff,
} from '../model/jsondiff.js';
import { normaliseCcid, validateCcid, validateClientId, validateEntityKey, validateKeyPrefix } from '../model/names.js';
import { isRetained, versionsToPrune, type RetentionPolicy } from '../model/retention.js';
import type { Limits } from '../options.js';
import { advance, dominates, emptyVector, merge, seqOf, type VersionVector } from '../model/version-vector.js';
import {
  compareOrder,
  emptyKeyState,
  extend,
  extendsState,
  recordRef,
  replayKey,
  type KeyRecord,
  type KeyState,
  type Ordered,
} from '../model/converge.js';
import type { HybridClock } from './hlc.js';
import { ccidExpired, checkpointChain, collectedBase, isRetryAfterWindow, needsRebuild, parseRef, refCovered, replicaVerdict, tombstoneGoes } from '../model/replica-history.js';
import { epochKey, PartitionLayout, registry } from '../storage/layout.js';
import { NOT_NOW, type StagedOp, type StagedStore } from '../storage/staged-store.js';
import { LiveFeed } from './live-feed.js';
import {
  initialMeta,
  type BucketConfig,
  type ChangeEntry,
  type ChangeOp,
  type ChangeOutcome,
  type ChangeRecord,
  type ChangeView,
  type EntityState,
  type EntityView,
  type EventEntry,
  type EventRecord,
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

const CHANGE_ERROR_CODES: ReadonlySet<string> = new Set([
  ErrorCode.BAD_VERSION,
  ErrorCode.INVALID_PERMISSION,
  ErrorCode.MISSING_ENTITY,
  ErrorCode.INVALID_INPUT,
]);

function isChangeError(error: unknown): error is SyncError & { code: ChangeErrorCode } {
  return isSyncError(error) && CHANGE_ERROR_CODES.has(error.code);
}

export class Partition {
  readonly partition: string;
  readonly changeFeed = new LiveFeed<ChangeView>();
  readonly eventFeed = new LiveFeed<EventView>();
  private readonly layout: PartitionLayout;
  /** Serialises the computation of changes (not their fsync). */
  private tail: Promise<unknown> = Promise.resolve();
  /** The last staged write; awaiting it means everything computed so far is durable. */
  private lastStaged: Promise<void> = Promise.resolve();
  /** Last log positions staged (what the next entry follows), and the version vectors after them. */
  private changePos: number;
  private eventPos: number;
  private changeVector: VersionVector;
  private eventVector: VersionVector;
  /** The store's failure count when the staged counters were last known good. */
  private failuresSeen: number;
  /** Whether the registry lists this partition (storage/layout.ts `registry`); undefined: unknown. */
  private listed: boolean | undefined;
  /** Positions and vectors known durable (cursors beyond them were not issued by us). */
  private durableChangePos: number;
  private durableEventPos: number;
  private durableChangeVector: VersionVector;
  private durableEventVector: VersionVector;
  private garbageCollection: Promise<void> = Promise.resolve();
  /**
   * The partition's metadata and settings as staged (null: none stored; undefined: not read yet).
   * Every change reads both and few write them, all through `stage`, which keeps these current:
   * kept here, they cost no lookup (an absent key is a LevelDB lookup every time).
   */
  private stagedMeta: PartitionMeta | null | undefined;
  private stagedConfig: BucketConfig | null | undefined;
  private readonly metaKey: string;
  private readonly configKey: string;
  /** Records writes removed as they superseded them (history collection had passed them): reported by the next collection pass. */
  private supersededOnWrite = 0;
  /**
   * The origin of the records this copy accepts: the node's, or after the copy was purged (handed
   * over, a user deleted) and made anew, the node's with the copy's epoch, so that sequence numbers
   * that other replicas still hold are never reused for different records.
   */
  readonly origin: string;

  private constructor(
    readonly app: string,
    readonly bucket: string,
    /** The user whose private instance of the bucket this is; null for the app's own. */
    readonly owner: string | null,
    private readonly store: StagedStore,
    private readonly ctx: EngineContext,
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

  static async open(app: string, bucket: string, owner: string | null, store: StagedStore, ctx: EngineContext): Promise<Partition> {
    const layout = new PartitionLayout(partitionId(app, bucket, owner));
    const meta = (await store.get<PartitionMeta>(layout.meta, { durable: true })) ?? initialMeta;
    const last = async <T extends ChangeEntry | EventEntry>(range: { gte: string; lt: string }) => {
      for await (const [key, entry] of store.entries<T>({ ...range, reverse: true, limit: 1 })) {
        return { pos: PartitionLayout.seqOfKey(key), entry };
      }
      return undefined;
    };
    const lastChange = await last<ChangeEntry>(layout.changesFrom(1));
    const lastEvent = await last<EventEntry>(layout.eventsFrom(1));
    // Records made here after a restart must still sort after everything already here.
    if (lastChange?.entry.hlc !== undefined) ctx.clock.observe(lastChange.entry.hlc);
    const heads: LogHeads = {
      // The EMPTY/DROP record that starts a compacted log is never collected: the log is never
      // emptier than its start.
      changePos: Math.max(lastChange?.pos ?? 0, meta.changeLogStart - 1),
      eventPos: lastEvent?.pos ?? 0,
      // A floor taken over from a peer covers records this log never held (collected there).
      changeVector: merge(lastChange === undefined ? emptyVector : entryVector(lastChange.entry), meta.adopted ?? emptyVector),
      eventVector: lastEvent === undefined ? emptyVector : entryVector(lastEvent.entry),
    };
    const listed = (await store.get(registry.bucket(app, bucket, owner), { durable: true })) !== undefined;
    const epoch = (await store.get<number>(epochKey(layout.partition), { durable: true })) ?? 0;
    const partition = new Partition(app, bucket, owner, store, ctx, heads, listed, epoch);
    // Finish what a crash may have interrupted: garbage left by EMPTY/DROP.
    if (meta.garbage.length > 0 || meta.changeLogStart > 1) partition.collectGarbage();
    return partition;
  }

  // ---------------------------------------------------------------- changes

  async submitChanges(inputs: readonly ChangeInput[], clientId: string | null, caller: Caller): Promise<ChangeOutcome[]> {
    if (clientId !== null) validateClientId(clientId);
    if (inputs.length > this.ctx.limits.changesPerRequestMax) {
      throw new SyncError(
        ErrorCode.LIMIT_EXCEEDED,
        `at most ${this.ctx.limits.changesPerRequestMax} changes per request`,
      );
    }
    await this.prefetchChanges(inputs);
    const { outcomes, barrier } = await this.exclusive(async () => {
      const outcomes: ChangeOutcome[] = [];
      for (const input of inputs) {
        try {
          const outcome = this.applyChange(input, clientId, caller);
          outcomes.push(outcome instanceof Promise ? await outcome : outcome);
        } catch (error) {
          if (!isChangeError(error)) throw error;
          outcomes.push({
            ccid: input.ccid,
            change: null,
            error: { code: error.code, message: error.message },
            duplicate: false,
            noop: false,
            entity: null,
          });
        }
      }
      return { outcomes, barrier: this.lastStaged };
    });
    // Every outcome (errors and duplicates too) was computed from staged state: answer only
    // once that state is durable, so no answer describes something that could still be lost.
    await barrier;
    return outcomes;
  }

  /**
   * Loads what the changes will read (ccids, entities, config) in one call, concurrently with
   * other requests and outside the exclusive section, so that the section itself is CPU work.
   */
  private async prefetchChanges(inputs: readonly ChangeInput[]): Promise<void> {
    // Not even the keys are worked out when reads are synchronous (the default): every change
    // of a batch would pay for them.
    if (!this.store.prefetches) return;
    const meta = await this.meta();
    const keys = [this.layout.config];
    for (const input of inputs) {
      if (passes(() => validateCcid(input.ccid))) keys.push(this.layout.ccid(normaliseCcid(input.ccid)));
      if (typeof input.key === 'string' && passes(() => validateEntityKey(input.key as string))) {
        keys.push(this.layout.entity(meta.gen, input.key));
      }
    }
    await this.store.prefetch(keys);
  }

  /** Applies one change: synchronously when what it reads is at hand (see `applyNow`). */
  private applyChange(input: ChangeInput, clientId: string | null, caller: Caller): ChangeOutcome | Promise<ChangeOutcome> {
    const checked = this.checkChange(input, caller);
    const ccid = normaliseCcid(input.ccid);
    const base = { ccid, clientId, sourceVersion: input.baseVersion ?? null };
    const now = this.applyNow(input.ccid, checked, base);
    return now !== NOT_NOW ? now : this.applyLater(input.ccid, checked, base);
  }

  /**
   * The change applied with reads that complete on this thread (staged, cached, or synchronous
   * reads, the default), without an `await`: most changes, at a fraction of the cost of a chain
   * of promises. NOT_NOW, before anything was changed, when a read would have to wait; and for
   * EMPTY and DROP, which are rare.
   */
  private applyNow(sent: string, checked: CheckedChange, base: RecordBase): ChangeOutcome | typeof NOT_NOW {
    const original = this.appliedChangeNow(base.ccid);
    if (original === NOT_NOW) return NOT_NOW;
    if (original !== undefined) return this.duplicateOf(sent, original);
    if (checked.op !== 'MODIFY' && checked.op !== 'DELETE') return NOT_NOW;
    const meta = this.metaNow();
    if (meta === NOT_NOW) return NOT_NOW;
    const config = this.configNow();
    if (config === NOT_NOW) return NOT_NOW;
    const current = this.store.getNow<EntityState>(this.layout.entity(meta.gen, checked.key));
    if (current === NOT_NOW) return NOT_NOW;
    if (checked.op === 'DELETE') return this.delete(meta, config, checked.key, base, checked.baseVersion, current);
    const baseState = this.needsBase(config, current, checked.baseVersion)
      ? this.store.getNow<EntityState>(this.layout.version(meta.gen, checked.key, checked.baseVersion!))
      : undefined;
    if (baseState === NOT_NOW) return NOT_NOW;
    return this.modify(meta, config, checked.key, base, checked.baseVersion, checked.body, current, baseState);
  }

  /** `applyNow` with reads that may wait. */
  private async applyLater(sent: string, checked: CheckedChange, base: RecordBase): Promise<ChangeOutcome> {
    const original = await this.appliedChange(base.ccid);
    if (original !== undefined) return this.duplicateOf(sent, original);
    const meta = await this.meta();
    if (checked.op !== 'MODIFY' && checked.op !== 'DELETE') return this.clear(meta, checked.op, base);
    const config = await this.config();
    const current = await this.store.get<EntityState>(this.layout.entity(meta.gen, checked.key));
    if (checked.op === 'DELETE') return this.delete(meta, config, checked.key, base, checked.baseVersion, current);
    const baseState = this.needsBase(config, current, checked.baseVersion)
      ? await this.store.get<EntityState>(this.layout.version(meta.gen, checked.key, checked.baseVersion!))
      : undefined;
    return this.modify(meta, config, checked.key, base, checked.baseVersion, checked.body, current, baseState);
  }

  private duplicateOf(sent: string, original: { entry: ChangeEntry; pos: number }): ChangeOutcome {
    return { ccid: sent, change: this.changeView(original.entry, original.pos), error: null, duplicate: true, noop: false, entity: null };
  }

  /** Whether a MODIFY made on `baseVersion` is rebased over later versions: then it reads its base. */
  private needsBase(config: BucketConfig, current: EntityState | undefined, baseVersion: number | null): boolean {
    const from = baseVersion ?? 0;
    return from > 0 && current !== undefined && !current.deleted && from < current.version && config.conflictMode !== 'OPTIMISTIC';
  }

  /** Validates a change completely before anything is read or written. */
  private checkChange(input: ChangeInput, caller: Caller): CheckedChange {
    validateCcid(input.ccid);
    const baseVersion = input.baseVersion ?? null;
    if (baseVersion !== null && (!Number.isInteger(baseVersion) || baseVersion < 0)) {
      throw invalidInput('baseVersion must be a non-negative integer');
    }
    const has = (v: unknown) => v !== undefined && v !== null;
    switch (input.op) {
      case 'MODIFY': {
        const key = this.requireKey(input.key);
        this.checkMayChange(caller, key);
        if (has(input.data) === has(input.diff)) throw invalidInput('MODIFY needs exactly one of data and diff');
        if (has(input.data)) {
          if (!isJsonObject(input.data)) throw invalidInput('data must be a JSON object');
          this.checkSize(input.data, 'data');
          return { op: 'MODIFY', key, baseVersion, body: { data: input.data as JsonObject } };
        }
        if (!isJsonObject(input.diff)) throw invalidInput('diff must be a JSON object');
        // Depth and size first: parseDiff recurses, and hostile input must not blow the stack.
        this.checkSize(input.diff, 'diff');
        return { op: 'MODIFY', key, baseVersion, body: { diff: parseDiff(input.diff, this.ctx.limits.depthMax) } };
      }
      case 'DELETE': {
        const key = this.requireKey(input.key);
        this.checkMayChange(caller, key);
        if (has(input.data) || has(input.diff)) throw invalidInput('DELETE takes no data or diff');
        return { op: 'DELETE', key, baseVersion };
      }
      case 'EMPTY':
      case 'DROP': {
        if (has(input.key) || has(input.data) || has(input.diff) || baseVersion !== null) {
          throw invalidInput(`${input.op} takes no key, baseVersion, data or diff`);
        }
        if (input.op === 'DROP' && !caller.admin) {
          throw new SyncError(ErrorCode.INVALID_PERMISSION, 'DROP needs administrative privileges');
        }
        if (caller.mayChange?.(null) === false) throw new SyncError(ErrorCode.INVALID_PERMISSION, `${input.op} of this bucket is not allowed`);
        return { op: input.op };
      }
      default:
        throw invalidInput('op must be MODIFY, DELETE, EMPTY or DROP');
    }
  }

  private requireKey(key: string | null | undefined): string {
    if (key === undefined || key === null) throw invalidInput('key is required');
    validateEntityKey(key);
    return key;
  }

  private checkMayChange(caller: Caller, key: string): void {
    if (caller.mayChange?.(key) === false) throw new SyncError(ErrorCode.INVALID_PERMISSION, `changing ${key} is not allowed`);
  }

  private checkSize(value: unknown, field: string): void {
    const shape = inspectJson(value, this.ctx.limits.depthMax, field);
    if (typeof shape === 'string') throw invalidInput(shape);
    if (shape.bytes > this.ctx.limits.entityBytesMax) {
      throw invalidInput(`${field} is larger than ${this.ctx.limits.entityBytesMax} bytes`);
    }
  }

  /** A MODIFY, given what it reads: the entity now and, when it is rebased, its base version. */
  private modify(
    meta: PartitionMeta,
    config: BucketConfig,
    key: string,
    base: RecordBase,
    baseVersion: number | null,
    body: { data: JsonObject } | { diff: ObjectDiff },
    current: EntityState | undefined,
    baseState: EntityState | undefined,
  ): ChangeOutcome {
    const alive = current !== undefined && !current.deleted ? (current as EntityState & { data: JsonObject }) : undefined;
    const from = baseVersion ?? 0;
    let data: JsonObject;
    if (from === 0) {
      if (alive === undefined) {
        data = 'data' in body ? body.data : applyDiff({}, body.diff);
      } else {
        const local = this.localDiff({}, body);
        // Two offline devices created the same key: a concurrent edit from an empty base.
        if (config.conflictMode === 'OPTIMISTIC') throw badVersion(`${key} already exists at version ${alive.version}`);
        data = applyDiff(alive.data, transform(local, diffObjects({}, alive.data), {}, true));
      }
    } else {
      if (alive === undefined) throw new SyncError(ErrorCode.MISSING_ENTITY, `${key} does not exist`);
      if (from > alive.version) throw badVersion(`baseVersion ${from} is newer than ${key}'s version ${alive.version}`);
      if (from === alive.version) {
        data = 'data' in body ? body.data : applyDiff(alive.data, body.diff);
      } else {
        if (config.conflictMode === 'OPTIMISTIC') {
          throw badVersion(`${key} is at version ${alive.version}: pull before pushing`);
        }
        if (baseState !== undefined && baseState.data !== null) {
          // Rebase: the client's edit, transformed over everything since its base (later wins).
          const local = this.localDiff(baseState.data, body);
          data = applyDiff(alive.data, transform(local, diffObjects(baseState.data, alive.data), baseState.data, true));
        } else {
          // The base is no longer retained: field-level last-writer-wins (see docs/ARCHITECTURE.md).
          data = 'data' in body ? body.data : applyDiffLenient(alive.data, body.diff);
        }
      }
    }
    // The client's own object was checked already; a merged one may have grown.
    if (!('data' in body) || data !== body.data) this.checkSize(data, 'data');
    const diff = diffObjects(alive?.data ?? {}, data);
    if (alive !== undefined && isEmptyDiff(diff)) {
      return { ccid: base.ccid, change: null, error: null, duplicate: false, noop: true, entity: this.entityView(key, alive) };
    }
    const version = (current?.version ?? 0) + 1;
    return this.record(meta, config, key, current, base, 'MODIFY', version, diff, data);
  }

  /** The client's edit as a diff against `baseData`; a diff that does not apply there is refused. */
  private localDiff(baseData: JsonObject, body: { data: JsonObject } | { diff: ObjectDiff }): ObjectDiff {
    if ('data' in body) return diffObjects(baseData, body.data);
    applyDiff(baseData, body.diff); // throws DiffApplyError (INVALID_INPUT) when it does not fit
    return body.diff;
  }

  private delete(
    meta: PartitionMeta,
    config: BucketConfig,
    key: string,
    base: RecordBase,
    baseVersion: number | null,
    current: EntityState | undefined,
  ): ChangeOutcome {
    if (current === undefined || current.deleted) throw new SyncError(ErrorCode.MISSING_ENTITY, `${key} does not exist`);
    // Only the most recent version may be deleted (Simperium); null means "whatever is current".
    if (baseVersion !== null && baseVersion !== current.version) {
      throw badVersion(`${key} is at version ${current.version}, not ${baseVersion}`);
    }
    const version = current.version + 1;
    return this.record(meta, config, key, current, base, 'DELETE', version, null, null);
  }

  // The hot path of every write: its objects are built field by field, never spread (an object
  // spread here cost more than the rest of the record's making; measured with --cpu-prof, W1b).
  private record(
    meta: PartitionMeta,
    config: BucketConfig,
    key: string,
    current: EntityState | undefined,
    base: RecordBase,
    op: 'MODIFY' | 'DELETE',
    version: number,
    diff: ObjectDiff | null,
    data: JsonObject | null,
  ): ChangeOutcome {
    const self = this.origin;
    // Made on the entity as it is here: after its last record in the total order.
    if (current?.hlc !== undefined) this.ctx.clock.observe(current.hlc);
    const { pos, seq, vector, entry } = this.ownEntry(base, key, op, version, diff, data, current?.heads ?? [], undefined);
    const state: EntityState = {
      version,
      data,
      deleted: op === 'DELETE',
      heads: [recordRef(self, seq)],
      hlc: entry.hlc,
      origin: self,
      pos,
    };
    const ops = this.entityWrites(meta, config, key, current, state);
    // The record this one supersedes, if history collection went past it (and kept it, as the
    // entity's latest then): collected now, since no later pass looks at it again.
    if (current?.pos !== undefined && current.pos < (meta.historyFrom ?? 1) && this.ctx.history !== undefined && this.ctx.keepClearedLog !== true) {
      ops.push({ type: 'del', key: this.layout.change(current.pos) });
      this.supersededOnWrite++;
    }
    // Neither the log record nor the ccid index entry takes a place in the cache
    // (PartitionLayout.isUncached): the log is read by range, the index only on a retry.
    ops.push({ type: 'put', key: this.layout.change(pos), value: entry });
    // A single node indexes the ccid by the record's position (the record is right there in the
    // log, no second copy); a replica keeps the record itself (replication compares ccid rivals).
    ops.push({ type: 'put', key: this.layout.ccid(entry.ccid), value: this.ctx.keepClearedLog === true ? entry : pos });
    ops.push(...this.listing(true));
    const view = this.changeView(entry, pos);
    this.stage(ops, () => {
      this.durableChangePos = pos;
      this.durableChangeVector = vector;
      this.changeFeed.publish(view);
    });
    return { ccid: base.ccid, change: view, error: null, duplicate: false, noop: false, entity: this.entityView(key, state) };
  }

  /**
   * The next entry of this copy's own origin: its log position, sequence number and clock, and
   * the staged vector after it.
   */
  private ownEntry(
    base: RecordBase,
    key: string | null,
    op: ChangeOp,
    version: number | null,
    diff: ObjectDiff | null,
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
  private entityWrites(meta: PartitionMeta, config: BucketConfig, key: string, previous: EntityState | undefined, state: EntityState): StagedOp[] {
    const previousVersion = previous?.version ?? 0;
    const ops: StagedOp[] = [{ type: 'put', key: this.layout.entity(meta.gen, key), value: state }];
    if (state.version !== 1) ops.push({ type: 'put', key: this.layout.version(meta.gen, key, state.version), value: state });
    if (previous !== undefined && previousVersion === 1 && state.version > 1) ops.push({ type: 'put', key: this.layout.version(meta.gen, key, 1), value: previous });
    for (const v of versionsToPrune(previousVersion, state.version, config)) ops.push({ type: 'del', key: this.layout.version(meta.gen, key, v) });
    return ops;
  }

  /** EMPTY and DROP: one small write that moves entities to a new generation. */
  private async clear(meta: PartitionMeta, op: 'EMPTY' | 'DROP', base: RecordBase): Promise<ChangeOutcome> {
    const self = this.origin;
    const cut = this.changeVector;
    const { pos, vector, entry } = this.ownEntry(base, null, op, null, null, null, undefined, cut);
    const next: PartitionMeta = {
      ...meta,
      gen: meta.gen + 1,
      // Everything before this record is superseded by it: a reader from an older cursor gets
      // this record (and clears its copy) and everything after it. Replicas keep what it cleared
      // (other replicas may still need those records, and their ccids).
      changeLogStart: this.ctx.keepClearedLog === true ? meta.changeLogStart : pos,
      garbage: [...meta.garbage, meta.gen],
      cut: merge(meta.cut ?? emptyVector, cut),
    };
    const ops: StagedOp[] = [
      { type: 'put', key: this.layout.change(pos), value: entry },
      { type: 'put', key: this.layout.ccid(entry.ccid), value: entry },
      { type: 'put', key: this.layout.meta, value: next },
    ];
    // DROP resets the settings: as a stamped setting, so that replicas agree on which came last.
    if (op === 'DROP') ops.push({ type: 'put', key: this.layout.config, value: this.defaultConfig({ hlc: entry.hlc, origin: self }) });
    ops.push(...this.listing(op === 'EMPTY'));
    const view = this.changeView(entry, pos);
    this.stage(ops, () => {
      this.durableChangePos = pos;
      this.durableChangeVector = vector;
      this.changeFeed.publish(view);
      this.collectGarbage();
    });
    return { ccid: base.ccid, change: view, error: null, duplicate: false, noop: false, entity: null };
  }

  /**
   * The change a ccid applied here, and its log position when the index gives it. A single node
   * indexes a ccid by its record's position; replicas, and records EMPTY/DROP cleared from the log
   * (keepCcidsOfClearedRecords), keep the record itself under the ccid.
   */
  /** `appliedChange` from what is at hand; NOT_NOW when a read would have to wait. */
  private appliedChangeNow(ccid: string): { entry: ChangeEntry; pos: number } | undefined | typeof NOT_NOW {
    const indexed = this.store.getNow<ChangeEntry | number>(this.layout.ccid(ccid));
    if (indexed === NOT_NOW || indexed === undefined) return indexed;
    if (typeof indexed !== 'number') return { entry: indexed, pos: 0 };
    const entry = this.store.getNow<ChangeEntry>(this.layout.change(indexed));
    if (entry === NOT_NOW) return NOT_NOW;
    if (entry === undefined) throw new Error(`ccid ${ccid} names log position ${indexed}, which holds no record`);
    return { entry, pos: indexed };
  }

  private async appliedChange(ccid: string): Promise<{ entry: ChangeEntry; pos: number } | undefined> {
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
  private async keepCcidsOfClearedRecords(changeLogStart: number): Promise<void> {
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
  private collectGarbage(): void {
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
          this.stage([{ type: 'put', key: this.layout.meta, value: { ...now, garbage } satisfies PartitionMeta }]);
        });
      })
      .catch((error: unknown) => this.ctx.onBackgroundError(error));
  }

  // ---------------------------------------------------------------- events

  /**
   * `author`: the authenticated user, when the caller is not admin: every event must be theirs
   * (Simple Sync). `mayPush`: the ACL's word on each event. Refused events are rejected with
   * INVALID_PERMISSION.
   */
  async pushEvents(
    inputs: readonly EventInput[],
    since: string | null,
    author: string | null = null,
    mayPush?: (event: EventInput) => boolean,
  ): Promise<PushEventsOutcome> {
    if (inputs.length > this.ctx.limits.eventsPerRequestMax) {
      throw new SyncError(ErrorCode.LIMIT_EXCEEDED, `at most ${this.ctx.limits.eventsPerRequestMax} events per request`);
    }
    const resume = await this.resume(since, 'events');
    await this.store.prefetch(inputs.filter((e) => e.uuid.length === 36).map((e) => this.layout.uuid(e.uuid.toLowerCase())));
    const { accepted, rejected, barrier } = await this.exclusive(async () => {
      const accepted: EventView[] = [];
      const rejected: PushEventsOutcome['rejected'] = [];
      const fresh: EventView[] = [];
      const inRequest = new Map<string, EventView>();
      const ops: StagedOp[] = [];
      const self = this.origin;
      let pos = this.eventPos;
      let vector = this.eventVector;
      for (const input of inputs) {
        let event: EventInput;
        try {
          event = validateEvent(input, this.ctx.now(), this.ctx.limits);
          if (author !== null && event.user !== author) {
            throw new SyncError(ErrorCode.INVALID_PERMISSION, `user must be the authenticated user (${author})`);
          }
          if (mayPush?.(event) === false) {
            throw new SyncError(ErrorCode.INVALID_PERMISSION, `${event.action} on ${event.item} is not allowed`);
          }
        } catch (error) {
          if (!isChangeError(error)) throw error;
          rejected.push({ uuid: input.uuid, code: error.code, message: error.message });
          continue;
        }
        // A repeated uuid is stored once; the repeat is answered with the stored event.
        const repeated = inRequest.get(event.uuid) ?? (await this.storedEvent(event.uuid));
        if (repeated !== undefined) {
          accepted.push(repeated);
          continue;
        }
        pos++;
        const seq = seqOf(vector, self) + 1;
        vector = advance(vector, self, seq);
        const entry: EventEntry = { ...event, origin: self, seq, at: this.ctx.now() };
        if (!isTrivialVector(vector, self, seq)) entry.vv = vector;
        ops.push({ type: 'put', key: this.layout.event(pos), value: entry });
        ops.push({ type: 'put', key: this.layout.uuid(event.uuid), value: pos });
        const view = this.eventView(entry, pos);
        inRequest.set(event.uuid, view);
        accepted.push(view);
        fresh.push(view);
      }
      if (ops.length > 0) {
        ops.push(...this.listing(true));
        this.eventPos = pos;
        this.eventVector = vector;
        const last = pos;
        const lastVector = vector;
        this.stage(ops, () => {
          this.durableEventPos = last;
          this.durableEventVector = lastVector;
          for (const view of fresh) this.eventFeed.publish(view);
        });
      }
      return { accepted, rejected, barrier: this.lastStaged };
    });
    await barrier;
    const page = await this.readEvents(resume, this.ctx.limits.pageSizeMax);
    return { accepted, rejected, history: page.events, cursor: page.cursor, hasMore: page.hasMore };
  }

  private async storedEvent(uuid: string): Promise<EventView | undefined> {
    const pos = await this.store.get<number>(this.layout.uuid(uuid));
    if (pos === undefined) return undefined;
    const entry = await this.store.get<EventEntry>(this.layout.event(pos));
    return entry === undefined ? undefined : this.eventView(entry, pos);
  }

  // ---------------------------------------------------------------- history collection

  /**
   * Collects old history (Cut-Out's garbage collection of obsolete updates): going through the log
   * in order, each change record older than the horizon is removed when a later record of its
   * entity superseded it, and so is a tombstone with its entity and versions; its ccid is forgotten
   * once older than the ccid window too. What is left is the latest record of each live entity, so
   * a reader from the start still gets every entity; a cursor from before the collected part has
   * expired (INVALID_CURSOR: read again from the start). The last record of the log is always kept
   * (the log's head: positions and sequence numbers are never reused). At most `budget` records are
   * looked at, in the write section (so no write of the same entity interleaves).
   *
   * A replica in a cluster (`keepClearedLog`) collects by other rules ({@link collectReplicated}),
   * and only given `stable`, the records that are causally stable across the replicas.
   */
  async collectHistory(now: number, budget = 1000, stable?: VersionVector): Promise<HistoryCollected> {
    const result: HistoryCollected = { scanned: 0, superseded: this.supersededOnWrite, tombstones: 0, cleared: 0, ccids: 0, done: true };
    this.supersededOnWrite = 0;
    const policy = this.ctx.history;
    if (policy === undefined || this.retired) return result;
    if (this.ctx.keepClearedLog === true) return stable === undefined ? result : this.collectReplicated(now, budget, stable, policy, result);
    const threshold = now - Math.max(policy.horizonMs, policy.ccidWindowMs);
    const barrier = await this.exclusive(async () => {
      const meta = await this.meta();
      const from = Math.max(meta.historyFrom ?? 1, meta.changeLogStart);
      const last = this.durableChangePos;
      if (from >= last) return undefined;
      const page = await this.store.page<ChangeEntry>({ ...this.layout.changesFrom(from), lt: this.layout.change(last), limit: budget });
      const ops: StagedOp[] = [];
      let next = from;
      let cursorFloor = meta.cursorFloor ?? 1;
      for (const [dbKey, entry] of page) {
        if (entry.at > threshold) break;
        const pos = PartitionLayout.seqOfKey(dbKey);
        result.scanned++;
        next = pos + 1;
        // A single node indexes each ccid once, under the record that applied it (a retry is
        // answered from the index, never logged): the index entry is this record's.
        ops.push({ type: 'del', key: this.layout.ccid(entry.ccid) });
        result.ccids++;
        if (entry.key === null || entry.version === null) continue; // EMPTY and DROP stay
        const state = await this.store.get<EntityState>(this.layout.entity(meta.gen, entry.key));
        if (state === undefined || state.version > entry.version) {
          ops.push({ type: 'del', key: dbKey });
          result.superseded++;
        } else if (state.deleted && entry.op === 'DELETE' && state.version === entry.version) {
          ops.push({ type: 'del', key: dbKey }, { type: 'del', key: this.layout.entity(meta.gen, entry.key) });
          for await (const [versionKey] of this.store.entries(this.layout.versions(meta.gen, entry.key))) ops.push({ type: 'del', key: versionKey });
          result.tombstones++;
          cursorFloor = pos + 1;
        }
      }
      // Done: the page ended before the budget (the log's head), or an entry too young stopped it.
      result.done = page.length < budget || next <= PartitionLayout.seqOfKey(page.at(-1)![0]);
      if (next === from) return undefined;
      ops.push({ type: 'put', key: this.layout.meta, value: { ...meta, historyFrom: next, cursorFloor } satisfies PartitionMeta });
      this.stage(ops);
      return this.lastStaged;
    });
    await barrier;
    return result;
  }

  /** Where the next pass over a replica's log starts: passes sweep the whole log, round after round. */
  private sweepFrom = 0;

  /**
   * History collection on a replica of a cluster, by the rules of model/replica-history.ts: only
   * records `stable` covers (every replica holds them, and nothing concurrent with them can still
   * arrive: replication/stability.ts) and older than the horizon and the ccid window go. A record
   * kept now may go at a later pass (its entity gets a stable checkpoint), so each round sweeps
   * the whole log (which collection keeps near one record per live entity), `budget` records per
   * pass, in the write section. What goes raises the partition's `floor`: a peer whose vector does
   * not reach it is sent what is left, with the floor, instead of a dense log (`recordsSince`).
   * Counted like a single node's passes (`HistoryCollected`, the history metric).
   */
  private async collectReplicated(
    now: number,
    budget: number,
    stable: VersionVector,
    policy: { horizonMs: number; ccidWindowMs: number },
    result: HistoryCollected,
  ): Promise<HistoryCollected> {
    // Records are dropped only once their ccid is forgotten too: a copy filled from this one
    // learns the ccids of the records it receives, never of those it does not.
    const threshold = now - Math.max(policy.horizonMs, policy.ccidWindowMs);
    const barrier = await this.exclusive(async () => {
      // Range reads see durable data only: let what is staged land first.
      await this.lastStaged;
      const meta = await this.meta();
      const from = Math.max(this.sweepFrom, meta.changeLogStart, 1);
      const last = this.durableChangePos;
      // The log's head is looked at too, but only its entity may go (below): the head stays, so
      // that positions and the vector read from it at open are never reused.
      const page = from > last ? [] : await this.store.page<ChangeEntry>({ ...this.layout.changesFrom(from), lt: this.layout.change(last + 1), limit: budget });
      const isStable = (ref: string) => refCovered(stable, ref);
      const ops: StagedOp[] = [];
      const removed = new Set<number>();
      // The floor: what is collected here lies below it (and what lies below it and is not here
      // was collected). Only as high as what was removed, so that a peer missing only records
      // that are still here is sent them as usual.
      let floor = meta.floor ?? emptyVector;
      const remove = (at: number, e: ChangeEntry) => {
        ops.push({ type: 'del', key: this.layout.change(at) });
        removed.add(at);
        floor = advance(floor, e.origin, e.seq);
      };
      // Entities this pass changed (a removed tombstone, a replayed key), by key.
      const states = new Map<string, EntityState | undefined>();
      // Per key: its checkpoint chain (model/replica-history.ts), and its log entries when a
      // tombstone needs them, looked up once per pass.
      const chains = new Map<string, Set<string> | undefined>();
      const entries = new Map<string, Array<{ pos: number; entry: ChangeEntry }>>();
      let cursorVector = meta.cursorVector;
      let next = from;
      for (const [dbKey, entry] of page) {
        const pos = PartitionLayout.seqOfKey(dbKey);
        result.scanned++;
        next = pos + 1;
        if (removed.has(pos) || seqOf(stable, entry.origin) < entry.seq) continue;
        const expired = ccidExpired(entry.hlc, now, policy.ccidWindowMs);
        if (expired) {
          // The index holds the record, or its position (kept from before this node joined a cluster).
          const indexed = await this.store.get<ChangeEntry | number>(this.layout.ccid(entry.ccid));
          if (typeof indexed === 'number' ? indexed === pos : indexed !== undefined && indexed.origin === entry.origin && indexed.seq === entry.seq) {
            ops.push({ type: 'del', key: this.layout.ccid(entry.ccid) });
            result.ccids++;
          }
        }
        if (entry.at > threshold || !expired) continue;
        const ref = recordRef(entry.origin, entry.seq);
        const key = entry.key;
        const state = key === null ? undefined : states.has(key) ? states.get(key) : await this.store.get<EntityState>(this.layout.entity(meta.gen, key));
        const cleared = meta.cut !== undefined && seqOf(meta.cut, entry.origin) >= entry.seq;
        let chain: Set<string> | undefined;
        const heads: readonly string[] = state?.heads ?? [];
        if (key !== null && heads.length === 1 && !heads.includes(ref)) {
          if (!chains.has(key)) chains.set(key, await checkpointChain(heads[0]!, isStable, (at) => this.parentsOf(at)));
          chain = chains.get(key);
        }
        const verdict = replicaVerdict({ ref, key, op: entry.op, superseded: entry.superseded === true, cleared }, state === undefined ? undefined : { heads, chain });
        if (verdict === 'keep') continue;
        const head = pos === last;
        if (verdict === 'superseded' || verdict === 'cleared') {
          if (head) continue;
          remove(pos, entry);
          result[verdict]++;
          // A deletion whose entity went while it was the log's head: a reader who has not seen it
          // would never learn of it.
          if (entry.op === 'DELETE' && state === undefined) cursorVector = advance(cursorVector ?? emptyVector, entry.origin, entry.seq);
          continue;
        }
        // A tombstone: it goes with its ancestors, and its entity with it unless other records
        // (made on it, or on nothing where it was already collected) keep it alive.
        const entityKey = key!;
        const single = heads.length === 1 && heads[0] === ref;
        let records: Array<{ pos: number; entry: ChangeEntry }> = [];
        let gone: Set<string> | undefined;
        if (!single) {
          if (!entries.has(entityKey)) entries.set(entityKey, await this.keyEntries(meta, entityKey));
          records = entries.get(entityKey)!.filter(({ pos: at }) => !removed.has(at));
          gone = tombstoneGoes(
            { ref, hlc: entry.hlc, origin: entry.origin },
            records.map(({ entry: e }) => ({ ref: recordRef(e.origin, e.seq), hlc: e.hlc, origin: e.origin, deps: e.deps ?? [] })),
          );
          // The log's head stays (above): then the tombstone waits for a later pass.
          if (gone === undefined || records.some(({ pos: at, entry: e }) => at === last && gone!.has(recordRef(e.origin, e.seq)))) continue;
        }
        result.tombstones++;
        for await (const [versionKey] of this.store.entries(this.layout.versions(meta.gen, entityKey))) ops.push({ type: 'del', key: versionKey });
        if (gone === undefined) {
          ops.push({ type: 'del', key: this.layout.entity(meta.gen, entityKey) });
          states.set(entityKey, undefined);
          if (head) continue;
          remove(pos, entry);
          cursorVector = advance(cursorVector ?? emptyVector, entry.origin, entry.seq);
          continue;
        }
        cursorVector = advance(cursorVector ?? emptyVector, entry.origin, entry.seq);
        const kept: Array<{ pos: number; entry: ChangeEntry }> = [];
        for (const { pos: at, entry: e } of records) {
          if (!gone.has(recordRef(e.origin, e.seq))) kept.push({ pos: at, entry: e });
          else if (!removed.has(at)) {
            remove(at, e);
            if (at !== pos) result.superseded++;
          }
        }
        const left = kept.map(({ entry: e }) => keyRecordOf(e, { ...meta, floor }));
        const lastLeft = kept.at(-1);
        const after = replayKey(left);
        const replayed = entityStateOf(after);
        ops.push(
          { type: 'put', key: this.layout.entity(meta.gen, entityKey), value: replayed },
          { type: 'put', key: this.layout.version(meta.gen, entityKey, replayed.version), value: replayed },
        );
        states.set(entityKey, replayed);
        chains.delete(entityKey);
        // A reader gets the entity as it is now from its last entry (as after an EMPTY).
        if (lastLeft !== undefined) {
          const { local: _local, ...own } = lastLeft.entry;
          const entry: ChangeEntry = own;
          if (own.version !== replayed.version || !sameJson(own.data, replayed.data) || (own.op === 'DELETE') !== replayed.deleted) {
            entry.local = { op: replayed.deleted ? 'DELETE' : 'MODIFY', version: replayed.version, data: replayed.data, diff: replayed.data === null ? null : diffObjects({}, replayed.data) };
          }
          ops.push({ type: 'put', key: this.layout.change(lastLeft.pos), value: entry });
        }
      }
      const reachedEnd = page.length < budget;
      this.sweepFrom = reachedEnd ? 0 : next;
      result.done = reachedEnd;
      if (ops.length === 0) return undefined;
      if (removed.size > 0 || states.size > 0) {
        ops.push({ type: 'put', key: this.layout.meta, value: { ...meta, ...(removed.size > 0 ? { floor } : {}), ...(cursorVector === undefined ? {} : { cursorVector }) } satisfies PartitionMeta });
      }
      this.stage(ops);
      return this.lastStaged;
    });
    await barrier;
    return result;
  }

  /** The parents of record `ref` (undefined: not in this log). */
  private async parentsOf(ref: string): Promise<readonly string[] | undefined> {
    const { origin, seq } = parseRef(ref);
    const pos = await this.positionOf(origin, seq);
    if (pos === undefined) return undefined;
    return (await this.store.get<ChangeEntry>(this.layout.change(pos), { durable: true }))?.deps ?? [];
  }

  /** The log entries of `key` that count (not superseded, not cleared), with their positions. */
  private async keyEntries(meta: PartitionMeta, key: string): Promise<Array<{ pos: number; entry: ChangeEntry }>> {
    const out: Array<{ pos: number; entry: ChangeEntry }> = [];
    for await (const [dbKey, entry] of this.store.entries<ChangeEntry>(this.layout.changesFrom(meta.changeLogStart))) {
      if (entry.key !== key || entry.superseded === true) continue;
      if (meta.cut !== undefined && seqOf(meta.cut, entry.origin) >= entry.seq) continue;
      out.push({ pos: PartitionLayout.seqOfKey(dbKey), entry });
    }
    return out;
  }

  /** The floors of peers this copy took records from with gaps (`PartitionMeta.taken`). */
  async takenFloor(): Promise<VersionVector> {
    return (await this.durableMeta()).taken ?? emptyVector;
  }

  /**
   * Records from a copy that collected history are coming (`floor`): what it covers counts as
   * collected here too (a record whose parents are missing keeps its origin's version), and a
   * cursor that does not reach it has expired (its reader may have missed a collected deletion).
   */
  private async takeFloor(floor: VersionVector): Promise<void> {
    const meta = await this.meta();
    if (meta.taken !== undefined && dominates(meta.taken, floor)) return;
    const next: PartitionMeta = {
      ...meta,
      floor: merge(meta.floor ?? emptyVector, floor),
      // Below it, this copy now holds only what copies that collected kept (needsRebuild).
      taken: merge(meta.taken ?? emptyVector, floor),
      cursorVector: merge(meta.cursorVector ?? emptyVector, floor),
    };
    this.stage([{ type: 'put', key: this.layout.meta, value: next }]);
  }

  /**
   * The sender has sent everything it holds below its `floor`: the rest below it was collected
   * there and never comes, so this copy's vector takes the floor in (and keeps it across restarts).
   */
  private async adoptFloor(floor: VersionVector): Promise<void> {
    const vector = merge(this.changeVector, floor);
    if (dominates(this.changeVector, vector)) return;
    this.changeVector = vector;
    const meta = await this.meta();
    this.stage([{ type: 'put', key: this.layout.meta, value: { ...meta, adopted: merge(meta.adopted ?? emptyVector, floor) } satisfies PartitionMeta }], () => {
      this.durableChangeVector = vector;
    });
  }

  // ---------------------------------------------------------------- reads (durable state only)

  /**
   * A page of changes after `since`. `keep` leaves changes out (selective sync, the ACL) without
   * shortening the page; when the log ends, the cursor moves past what was left out too, so that
   * a reader of a few keys does not scan the same records again next time.
   */
  async changes(since: string | null, limit: number | null, keep?: (view: ChangeView) => boolean): Promise<ChangePage> {
    const size = this.pageSize(limit);
    const resume = await this.resume(since, 'changes');
    let scanned: ChangeView | undefined;
    const views = await this.readChangeRecords(resume.fromPos, size + 1, (view) => {
      scanned = view;
      return covers(resume, view) || keep?.(view) === false;
    });
    const changes = views.slice(0, size);
    const hasMore = views.length > size;
    const last = hasMore ? changes.at(-1) : scanned;
    return { changes, hasMore, cursor: last === undefined ? (since ?? this.cursorOf('changes', emptyVector)) : cursorFor(resume, last) };
  }

  async events(since: string | null, limit: number | null): Promise<EventPage> {
    return this.readEvents(await this.resume(since, 'events'), this.pageSize(limit));
  }

  /**
   * Where a reader resumes from a cursor (throws INVALID_CURSOR when it is not one of this
   * bucket's). A cursor is a version vector: on a replica whose log holds only its own records
   * (every single node) it is a log position; otherwise the reader starts at the first entry it
   * has not seen and skips those it has (`covers`).
   */
  async resume(since: string | null, stream: StreamKind): Promise<Resume> {
    if (since === null) return { fromPos: 1, covered: null, since: emptyVector, ahead: false };
    const position = decodeCursor(since);
    if (position.stream !== stream || position.partition !== this.partition) {
      throw new SyncError(ErrorCode.INVALID_CURSOR, `cursor does not belong to the ${stream} of bucket ${this.bucket}`);
    }
    const self = this.origin;
    const vector = position.vector;
    const head = stream === 'changes' ? this.durableChangeVector : this.durableEventVector;
    // Other replicas may be ahead of this one, but nobody knows more of our own records than we do.
    if (seqOf(vector, self) > seqOf(head, self)) throw new SyncError(ErrorCode.INVALID_CURSOR, 'cursor is ahead of this bucket');
    const expiry = stream === 'changes' ? (await this.durableMeta()).cursorVector : undefined;
    if (expiry !== undefined && !dominates(vector, expiry)) {
      throw new SyncError(ErrorCode.INVALID_CURSOR, 'changes after this cursor are no longer in the history (the history horizon): read again from the start (since: null)');
    }
    if (onlyOrigin(head, self) && onlyOrigin(vector, self)) {
      const fromPos = seqOf(vector, self) + 1;
      if (stream === 'changes' && fromPos < ((await this.durableMeta()).cursorFloor ?? 1)) {
        throw new SyncError(ErrorCode.INVALID_CURSOR, 'a deletion after this cursor is no longer in the history (the history horizon): read again from the start (since: null)');
      }
      return { fromPos, covered: null, since: vector, ahead: false };
    }
    return { fromPos: await this.firstUncovered(stream, vector), covered: vector, since: vector, ahead: !dominates(head, vector) };
  }

  /** The first log position whose entry `vector` does not cover (vectors grow along the log). */
  private async firstUncovered(stream: StreamKind, vector: VersionVector): Promise<number> {
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

  headCursor(stream: StreamKind): string {
    return this.cursorOf(stream, stream === 'changes' ? this.durableChangeVector : this.durableEventVector);
  }

  /** This replica's durable version vector of a stream: which records it holds. */
  vectorOf(stream: StreamKind): VersionVector {
    return stream === 'changes' ? this.durableChangeVector : this.durableEventVector;
  }

  private cursorOf(stream: StreamKind, vector: VersionVector): string {
    return encodeCursor({ stream, partition: this.partition, vector });
  }

  /**
   * Durable change views from log position `fromPos`, at most `limit`, skipping superseded
   * entries and those `skip` refuses (reading on until `limit` are found or the log ends).
   */
  readChangeRecords(fromPos: number, limit: number, skip?: (view: ChangeView) => boolean): Promise<ChangeView[]> {
    return this.readLog((pos) => this.layout.changesFrom(pos), (entry: ChangeEntry, pos) => this.changeView(entry, pos), fromPos, limit, skip);
  }

  readEventRecords(fromPos: number, limit: number, skip?: (view: EventView) => boolean): Promise<EventView[]> {
    return this.readLog((pos) => this.layout.eventsFrom(pos), (entry: EventEntry, pos) => this.eventView(entry, pos), fromPos, limit, skip);
  }

  private async readLog<E extends { superseded?: true }, V>(
    rangeFrom: (pos: number) => { gte: string; lt: string },
    view: (entry: E, pos: number) => V,
    fromPos: number,
    limit: number,
    skip: ((view: V) => boolean) | undefined,
  ): Promise<V[]> {
    const out: V[] = [];
    let pos = Math.max(1, fromPos);
    for (;;) {
      const wanted = limit - out.length;
      const page = await this.store.page<E>({ ...rangeFrom(pos), limit: wanted });
      for (const [key, entry] of page) {
        pos = PartitionLayout.seqOfKey(key) + 1;
        if (entry.superseded === true) continue;
        const made = view(entry, pos - 1);
        if (skip === undefined || !skip(made)) out.push(made);
      }
      if (page.length < wanted || out.length >= limit) return out;
    }
  }

  private async readEvents(resume: Resume, limit: number): Promise<EventPage> {
    const views = await this.readEventRecords(resume.fromPos, limit + 1, (view) => covers(resume, view));
    const events = views.slice(0, limit);
    const last = events.at(-1);
    return {
      events,
      hasMore: views.length > limit,
      cursor: last === undefined ? this.cursorOf('events', resume.since) : cursorFor(resume, last),
    };
  }

  async entity(key: string, version: number | null): Promise<EntityView | null> {
    validateEntityKey(key);
    const meta = await this.durableMeta();
    const current = () => this.store.get<EntityState>(this.layout.entity(meta.gen, key), { durable: true });
    const stored = () => this.store.get<EntityState>(this.layout.version(meta.gen, key, version!), { durable: true });
    let state = version === null ? await current() : await stored();
    if (state === undefined && version !== null) {
      // The current version may be the entity alone (entityWrites); if a write superseded it
      // meanwhile, it is stored apart by now.
      const now = await current();
      state = now?.version === version ? now : await stored();
    }
    return state === undefined ? null : this.entityView(key, state);
  }

  async entities(first: number | null, after: string | null, includeDeleted: boolean, keyPrefix = ''): Promise<EntityView[]> {
    if (after !== null) validateEntityKey(after, 'after');
    validateKeyPrefix(keyPrefix);
    const limit = this.pageSize(first);
    const meta = await this.durableMeta();
    const out: EntityView[] = [];
    const range = this.layout.entities(meta.gen, after ?? undefined, keyPrefix);
    const prefixLength = this.layout.entityKeyOffset(meta.gen);
    for await (const [dbKey, state] of this.store.entries<EntityState>(includeDeleted ? { ...range, limit } : range)) {
      if (!includeDeleted && state.deleted) continue;
      out.push(this.entityView(dbKey.slice(prefixLength), state));
      if (out.length >= limit) break;
    }
    return out;
  }

  async versions(key: string): Promise<EntityView[]> {
    validateEntityKey(key);
    const meta = await this.durableMeta();
    const current = await this.store.get<EntityState>(this.layout.entity(meta.gen, key), { durable: true });
    const out: EntityView[] = [];
    for await (const [, state] of this.store.entries<EntityState>({ ...this.layout.versions(meta.gen, key), reverse: true })) {
      out.push(this.entityView(key, state));
    }
    // The current version may be the entity alone (entityWrites).
    if (current !== undefined && (out.length === 0 || out[0]!.version < current.version)) out.unshift(this.entityView(key, current));
    return out;
  }

  // ---------------------------------------------------------------- replication

  /**
   * Applies change records made on other replicas (or this one's, coming back after a loss):
   * each origin's in sequence order. Records already here are skipped; one that would leave a gap
   * is skipped too, and the sender resends from the vector this answers with, once durable.
   * The resulting entities are those of model/converge.ts, whatever the order of arrival.
   */
  async applyChanges(
    records: readonly ChangeRecord[],
    options: { compacted?: boolean; floor?: VersionVector; since?: VersionVector; complete?: boolean } = {},
  ): Promise<VersionVector> {
    for (const record of records) checkRecord(record);
    const floor = options.floor !== undefined && isVector(options.floor) ? options.floor : undefined;
    const since = options.since !== undefined && isVector(options.since) ? options.since : undefined;
    const barrier = await this.exclusive(async () => {
      if (floor !== undefined) {
        // Below a floor, gaps are taken as collected records only from a batch of everything the
        // sender holds beyond what this copy holds (`since`): not from one computed for less.
        if (since === undefined || !dominates(this.changeVector, since)) return this.lastStaged;
        // A copy holding part of what the sender collected must be rebuilt (Cluster.rebuild).
        if (needsRebuild(this.changeVector, floor, (await this.meta()).taken)) return this.lastStaged;
        await this.takeFloor(floor);
      }
      for (const record of records) await this.applyChangeRecord(record, options.compacted === true, floor);
      if (floor !== undefined && options.complete === true) await this.adoptFloor(floor);
      return this.lastStaged;
    });
    await barrier;
    return this.durableChangeVector;
  }

  private async applyChangeRecord(record: ChangeRecord, compacted: boolean, transferFloor?: VersionVector): Promise<void> {
    const have = seqOf(this.changeVector, record.origin);
    if (record.seq <= have) return;
    const clearing = record.op === 'EMPTY' || record.op === 'DROP';
    // From a copy that collected history: below its floor the gaps are collected records (they
    // come in the sender's log order, each origin's in sequence); above it, the origin goes on
    // from the floor.
    const below = transferFloor === undefined ? 0 : seqOf(transferFloor, record.origin);
    if (record.seq <= below) {
      // accepted as it comes
    } else if (clearing && !compacted && transferFloor === undefined) {
      // Everything an EMPTY clears comes here before it, so that every replica knows their
      // ccids (a retry of a cleared change stays a duplicate).
      if (record.seq !== have + 1 || !dominates(this.changeVector, record.cut ?? emptyVector)) return;
    } else {
      // From a log that no longer holds what the EMPTY cleared: it covers what never came.
      const last = Math.max(have, below);
      const floor = clearing ? Math.max(last, seqOf(record.cut ?? emptyVector, record.origin)) : last;
      if (record.seq !== floor + 1) return;
    }
    this.ctx.clock.observe(record.hlc);
    if (clearing) return this.applyClear(record);
    const key = record.key!;
    const meta = await this.meta();
    const config = await this.config();
    const entry = ownFields(record);
    const pos = ++this.changePos;
    const vector = advance(this.changeVector, record.origin, record.seq);
    this.changeVector = vector;
    if (!isTrivialVector(vector, record.origin, record.seq)) entry.vv = vector;

    // Two records with one ccid are one change: the first in the total order.
    const existing = (await this.appliedChange(record.ccid))?.entry;
    const rival =
      existing !== undefined &&
      (existing.origin !== record.origin || existing.seq !== record.seq) &&
      // A retry after the ccid window is a new change on every replica (model/replica-history.ts).
      !isRetryAfterWindow(existing, record, this.ctx.keepClearedLog === true ? this.ctx.history?.ccidWindowMs : undefined)
        ? existing
        : undefined;
    if (rival !== undefined && compareOrder(orderOf(rival), orderOf(record)) < 0) {
      entry.superseded = true;
      this.stageEntry(pos, entry, vector, undefined);
      return;
    }
    const ops: StagedOp[] = [];
    const excluded = new Set<string>();
    if (rival !== undefined) {
      excluded.add(recordRef(rival.origin, rival.seq));
      await this.supersede(rival, ops);
      if (rival.key !== null && rival.key !== key) await this.rewriteKey(meta, config, rival.key, null, excluded, ops);
    }
    const local = await this.rewriteKey(meta, config, key, keyRecordOf(record, meta), excluded, ops);
    if (local.version !== record.version || local.op !== record.op || !sameJson(local.data, record.data)) entry.local = local;
    ops.push({ type: 'put', key: this.layout.ccid(record.ccid), value: entry.local === undefined ? entry : { ...entry, local: undefined } });
    ops.push(...this.listing(true));
    this.stageEntry(pos, entry, vector, ops);
  }

  /**
   * Computes `key`'s state with `record` added (and `excluded` records left out), stages it, and
   * says what the entity became. Extends the current state when the record was made on it (the
   * common case); otherwise replays the key from the log.
   */
  private async rewriteKey(
    meta: PartitionMeta,
    config: BucketConfig,
    key: string,
    record: KeyRecord | null,
    excluded: ReadonlySet<string>,
    ops: StagedOp[],
  ): Promise<NonNullable<ChangeEntry['local']>> {
    const current = await this.store.get<EntityState>(this.layout.entity(meta.gen, key));
    const before = keyStateOf(current);
    let after: KeyState;
    if (record !== null && excluded.size === 0 && extendsState(before, record)) {
      after = extend(before, record);
    } else {
      const records = await this.keyRecords(meta, new Set([key]), excluded);
      after = replayKey(record === null ? (records.get(key) ?? []) : [...(records.get(key) ?? []), record]);
    }
    const state = entityStateOf(after);
    ops.push(...this.entityWrites(meta, config, key, current, state));
    return {
      op: after.data === null ? 'DELETE' : 'MODIFY',
      version: after.version,
      data: after.data,
      diff: after.data === null ? null : diffObjects(current?.data ?? {}, after.data),
    };
  }

  /**
   * The durable records of `keys` that count (not superseded, not cleared, not `excluded`), by
   * key. Waits for what is staged to be durable first: the log is read by range.
   */
  private async keyRecords(meta: PartitionMeta, keys: ReadonlySet<string>, excluded: ReadonlySet<string>): Promise<Map<string, KeyRecord[]>> {
    await this.lastStaged;
    const out = new Map<string, KeyRecord[]>();
    for await (const [, entry] of this.store.entries<ChangeEntry>(this.layout.changesFrom(meta.changeLogStart))) {
      if (entry.key === null || !keys.has(entry.key) || entry.superseded === true) continue;
      if (meta.cut !== undefined && seqOf(meta.cut, entry.origin) >= entry.seq) continue;
      const record = keyRecordOf(entry, meta);
      if (excluded.has(record.ref)) continue;
      let list = out.get(entry.key);
      if (list === undefined) out.set(entry.key, (list = []));
      list.push(record);
    }
    return out;
  }

  /** Marks a record that lost its ccid to an earlier one: it stays in the log, counting for nothing. */
  private async supersede(loser: ChangeEntry, ops: StagedOp[]): Promise<void> {
    const pos = await this.positionOf(loser.origin, loser.seq);
    if (pos === undefined) return;
    const entry = await this.store.get<ChangeEntry>(this.layout.change(pos));
    if (entry !== undefined) ops.push({ type: 'put', key: this.layout.change(pos), value: { ...entry, superseded: true } });
  }

  /**
   * The log position of record `origin:seq`, if it is in the log: a binary search on vectors for
   * where the vector first covers it, then forward (records moved after an EMPTY/DROP left holes).
   */
  private async positionOf(origin: string, seq: number): Promise<number | undefined> {
    await this.lastStaged;
    let low = (await this.durableMeta()).changeLogStart;
    let high = this.durableChangePos + 1;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      const entry = await this.store.get<ChangeEntry>(this.layout.change(mid), { durable: true });
      if (entry !== undefined && seqOf(entryVector(entry), origin) < seq) low = mid + 1;
      else high = mid;
    }
    for await (const [key, entry] of this.store.entries<ChangeEntry>(this.layout.changesFrom(low))) {
      if (entry.origin === origin && entry.seq === seq) return PartitionLayout.seqOfKey(key);
    }
    return undefined;
  }

  private stageEntry(pos: number, entry: ChangeEntry, vector: VersionVector, ops: StagedOp[] | undefined): void {
    const all = ops ?? [];
    all.push({ type: 'put', key: this.layout.change(pos), value: entry });
    const view = entry.superseded === true ? undefined : this.changeView(entry, pos);
    this.stage(all, () => {
      this.durableChangePos = pos;
      this.durableChangeVector = vector;
      if (view !== undefined) this.changeFeed.publish(view);
    });
  }

  /**
   * An EMPTY or DROP from another replica clears exactly the records of its cut. Records here
   * that it did not clear (made concurrently with it) survive: their entities are replayed into
   * the new generation, and their log entries move after the EMPTY, so that a reader who clears
   * its copy at the EMPTY receives them again.
   */
  private async applyClear(record: ChangeRecord): Promise<void> {
    const meta = await this.meta();
    const cut = record.cut ?? emptyVector;
    const before = this.changeVector;
    // Everything cleared so far, by this record and earlier ones.
    const cleared = merge(meta.cut ?? emptyVector, cut);
    const survivors: Array<{ pos: number; entry: ChangeEntry }> = [];
    if (!dominates(cut, before)) {
      await this.lastStaged;
      for await (const [dbKey, entry] of this.store.entries<ChangeEntry>(this.layout.changesFrom(meta.changeLogStart))) {
        // Other EMPTY/DROP records stay where they are: they leave no entity behind.
        if (entry.key !== null && seqOf(cleared, entry.origin) < entry.seq) survivors.push({ pos: PartitionLayout.seqOfKey(dbKey), entry });
      }
    }
    const pos = ++this.changePos;
    const vector = advance(merge(before, cut), record.origin, record.seq);
    const entry = ownFields(record);
    if (!isTrivialVector(vector, record.origin, record.seq)) entry.vv = vector;
    const next: PartitionMeta = {
      ...meta,
      gen: meta.gen + 1,
      changeLogStart: this.ctx.keepClearedLog === true ? meta.changeLogStart : pos,
      garbage: [...meta.garbage, meta.gen],
      cut: cleared,
    };
    const ops: StagedOp[] = [
      { type: 'put', key: this.layout.change(pos), value: entry },
      { type: 'put', key: this.layout.meta, value: next },
    ];
    // The same EMPTY retried on two replicas: both clear (what each cut covers, which is the
    // same whatever the order), but only the first in the total order is listed.
    const existing = (await this.appliedChange(record.ccid))?.entry;
    if (existing === undefined) ops.push({ type: 'put', key: this.layout.ccid(record.ccid), value: entry });
    else if (existing.origin !== record.origin || existing.seq !== record.seq) {
      if (compareOrder(orderOf(existing), orderOf(record)) < 0) entry.superseded = true;
      else {
        await this.supersede(existing, ops);
        ops.push({ type: 'put', key: this.layout.ccid(record.ccid), value: entry });
      }
    }
    if (record.op === 'DROP') {
      const current = await this.store.get<BucketConfig>(this.layout.config);
      const stamp = { hlc: record.hlc, origin: record.origin };
      if (current?.stamp === undefined || compareOrder(current.stamp, stamp) < 0) ops.push({ type: 'put', key: this.layout.config, value: this.defaultConfig(stamp) });
    }
    const views: ChangeView[] = entry.superseded === true ? [] : [this.changeView(entry, pos)];
    // The survivors, in log order (so each origin's stay in sequence), and their entities.
    const moved: Array<{ pos: number; entry: ChangeEntry }> = [];
    const byKey = new Map<string, KeyRecord[]>();
    const lastOfKey = new Map<string, ChangeEntry>();
    for (const survivor of survivors) {
      const { vv: _vv, local: _local, ...own } = survivor.entry;
      const movedEntry: ChangeEntry = { ...own };
      if (!isTrivialVector(vector, own.origin, own.seq)) movedEntry.vv = vector;
      ops.push({ type: 'del', key: this.layout.change(survivor.pos) });
      moved.push({ pos: ++this.changePos, entry: movedEntry });
      if (own.key !== null && own.superseded !== true) {
        let list = byKey.get(own.key);
        if (list === undefined) byKey.set(own.key, (list = []));
        list.push(keyRecordOf(own, next));
        lastOfKey.set(own.key, movedEntry);
      }
    }
    const config = record.op === 'DROP' ? { conflictMode: 'MERGE' as const, ...this.ctx.retention } : await this.config();
    for (const [key, records] of byKey) {
      const state = replayKey(records);
      ops.push(...this.entityWrites(next, config, key, undefined, entityStateOf(state)));
      // A reader that cleared its copy at the EMPTY gets each entity's state from its last entry.
      const last = lastOfKey.get(key)!;
      if (last.version !== state.version || !sameJson(last.data, state.data) || (last.op === 'DELETE') !== (state.data === null)) {
        last.local = {
          op: state.data === null ? 'DELETE' : 'MODIFY',
          version: state.version,
          data: state.data,
          diff: state.data === null ? null : diffObjects({}, state.data),
        };
      }
    }
    for (const { pos: at, entry: movedEntry } of moved) {
      ops.push({ type: 'put', key: this.layout.change(at), value: movedEntry });
      if (movedEntry.superseded !== true) views.push(this.changeView(movedEntry, at));
    }
    ops.push(...this.listing(record.op === 'EMPTY' || byKey.size > 0));
    this.changeVector = vector;
    const last = this.changePos;
    this.stage(ops, () => {
      this.durableChangePos = last;
      this.durableChangeVector = vector;
      for (const view of views) this.changeFeed.publish(view);
      this.collectGarbage();
    });
  }

  /** Applies event records from other replicas, like {@link applyChanges}; a uuid counts once. */
  async applyEvents(records: readonly EventRecord[]): Promise<VersionVector> {
    const barrier = await this.exclusive(async () => {
      for (const record of records) {
        const have = seqOf(this.eventVector, record.origin);
        if (record.seq !== have + 1) continue;
        const pos = ++this.eventPos;
        const vector = advance(this.eventVector, record.origin, record.seq);
        this.eventVector = vector;
        const { vv: _vv, superseded: _superseded, ...own } = record as EventEntry;
        const entry: EventEntry = { ...own };
        if (!isTrivialVector(vector, record.origin, record.seq)) entry.vv = vector;
        const ops: StagedOp[] = [];
        if ((await this.store.get(this.layout.uuid(record.uuid))) !== undefined) entry.superseded = true;
        else ops.push({ type: 'put', key: this.layout.uuid(record.uuid), value: pos }, ...this.listing(true));
        ops.push({ type: 'put', key: this.layout.event(pos), value: entry });
        const view = entry.superseded === true ? undefined : this.eventView(entry, pos);
        this.stage(ops, () => {
          this.durableEventPos = pos;
          this.durableEventVector = vector;
          if (view !== undefined) this.eventFeed.publish(view);
        });
      }
      return this.lastStaged;
    });
    await barrier;
    return this.durableEventVector;
  }

  /**
   * The records this replica holds that `vector` does not cover, in log order, at most `limit`:
   * what a peer lacks. Each goes as its origin made it (local annotations stay here).
   */
  async recordsSince(stream: 'changes', vector: VersionVector, limit: number): Promise<RecordsSince<ChangeRecord>>;
  async recordsSince(stream: 'events', vector: VersionVector, limit: number): Promise<RecordsSince<EventRecord>>;
  async recordsSince(stream: StreamKind, vector: VersionVector, limit: number): Promise<RecordsSince<ChangeRecord | EventRecord>> {
    const self = this.origin;
    const head = this.vectorOf(stream);
    const fromPos = onlyOrigin(head, self) && onlyOrigin(vector, self) ? Math.max(seqOf(vector, self) + 1, 1) : await this.firstUncovered(stream, vector);
    const range = stream === 'changes' ? this.layout.changesFrom(fromPos) : this.layout.eventsFrom(fromPos);
    const records: Array<ChangeRecord | EventRecord> = [];
    // Whether the peer needs records an EMPTY/DROP cleared from this log (then they are gone).
    let compacted = false;
    // Whether it needs records history collection removed here: it skips the gaps below this.
    let floor: VersionVector | undefined;
    if (stream === 'changes') {
      const meta = await this.durableMeta();
      if (meta.changeLogStart > 1) {
        const start = await this.store.get<ChangeEntry>(this.layout.change(meta.changeLogStart), { durable: true });
        compacted = start?.cut !== undefined && !dominates(vector, start.cut);
      }
      if (meta.floor !== undefined && !dominates(vector, meta.floor)) floor = meta.floor;
    }
    // Batches are bounded in bytes too (a message must fit a peer link's frame limit); one record
    // always goes, and a record is at most an entity or an event's limits.
    let bytes = 0;
    for await (const [, raw] of this.store.store.entries(range)) {
      const entry = JSON.parse(raw) as ChangeEntry | EventEntry;
      if (seqOf(vector, entry.origin) >= entry.seq) continue;
      if (records.length >= limit || (records.length > 0 && bytes + raw.length > RECORDS_BYTES_MAX)) return { records, more: true, compacted, ...(floor === undefined ? {} : { floor }) };
      bytes += raw.length;
      const { vv: _vv, superseded: _superseded, ...own } = entry as ChangeEntry;
      delete own.local;
      records.push(own);
    }
    return { records, more: false, compacted, ...(floor === undefined ? {} : { floor }) };
  }

  /**
   * A digest of this replica's entities (key, version, state), in key order: independent of the
   * order records arrived in, so replicas holding the same entities have equal digests.
   */
  async digest(): Promise<{ digest: string; entities: number }> {
    const meta = await this.durableMeta();
    const hash = createHash('sha256');
    const range = this.layout.entities(meta.gen);
    const prefixLength = range.lt.length;
    let entities = 0;
    for await (const [dbKey, state] of this.store.entries<EntityState>(range)) {
      entities++;
      hash.update(`${dbKey.slice(prefixLength)}\u0000${state.version}\u0000${state.deleted ? 'x' : canonicalJson(state.data ?? {})}\n`);
    }
    return { digest: hash.digest('hex').slice(0, 32), entities };
  }

  // ---------------------------------------------------------------- configuration

  /** `config` from what is at hand; NOT_NOW when a read would have to wait. */
  private configNow(): BucketConfig | typeof NOT_NOW {
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

  private defaultConfig(stamp?: BucketConfig['stamp']): BucketConfig {
    const config: BucketConfig = { conflictMode: 'MERGE', versionMax: this.ctx.retention.versionMax, version10Max: this.ctx.retention.version10Max };
    if (stamp !== undefined) config.stamp = stamp;
    return config;
  }

  async configure(patch: Partial<BucketConfig>, caller: Caller): Promise<BucketConfig> {
    if (!caller.admin) throw new SyncError(ErrorCode.FORBIDDEN, 'configuring a bucket needs the admin key');
    const check = (value: number | undefined, name: string, min: number, max: number) => {
      if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
        throw invalidInput(`${name} must be an integer from ${min} to ${max}`);
      }
    };
    check(patch.versionMax, 'versionMax', 1, 10_000);
    check(patch.version10Max, 'version10Max', 0, 100_000);
    const { config, previous, barrier } = await this.exclusive(async () => {
      const previous = await this.config();
      const config: BucketConfig = { ...previous, ...patch, stamp: { hlc: this.ctx.clock.tick(), origin: this.origin } };
      this.stage([{ type: 'put', key: this.layout.config, value: config }]);
      return { config, previous, barrier: this.lastStaged };
    });
    await barrier;
    // Each write prunes only what its own step leaves behind; a stricter policy must also
    // remove what the old one kept. The answer waits for it: the new policy is then in force.
    if (config.versionMax < previous.versionMax || config.version10Max < previous.version10Max) await this.sweepRetention();
    return config;
  }

  /** The settings as stored here (undefined: never set, the defaults apply). */
  async storedConfig(): Promise<BucketConfig | undefined> {
    return this.store.get<BucketConfig>(this.layout.config, { durable: true });
  }

  /** Another replica's settings, kept if they were set later than ours (anti-entropy). */
  async adoptConfig(config: BucketConfig): Promise<void> {
    const stamp = config.stamp;
    if (stamp === undefined || !Number.isSafeInteger(stamp.hlc) || typeof stamp.origin !== 'string') return;
    const { adopted, previous, barrier } = await this.exclusive(async () => {
      const current = await this.store.get<BucketConfig>(this.layout.config);
      if (current?.stamp !== undefined && compareOrder(current.stamp, stamp) >= 0) return { adopted: false, previous: undefined, barrier: this.lastStaged };
      this.ctx.clock.observe(stamp.hlc);
      const next: BucketConfig = { conflictMode: config.conflictMode === 'OPTIMISTIC' ? 'OPTIMISTIC' : 'MERGE', versionMax: config.versionMax, version10Max: config.version10Max, stamp };
      this.stage([{ type: 'put', key: this.layout.config, value: next }]);
      return { adopted: true, previous: current ?? { conflictMode: 'MERGE' as const, ...this.ctx.retention }, barrier: this.lastStaged };
    });
    await barrier;
    if (adopted && previous !== undefined && (config.versionMax < previous.versionMax || config.version10Max < previous.version10Max)) await this.sweepRetention();
  }

  /** Deletes every retained version the current policy no longer keeps. */
  private sweepRetention(): Promise<void> {
    this.garbageCollection = this.garbageCollection
      .then(async () => {
        const meta = await this.durableMeta();
        let ops: StagedOp[] = [];
        let latest: { key: string; version: number } | undefined;
        for await (const [dbKey] of this.store.entries<EntityState>(this.layout.allVersions(meta.gen))) {
          const { key, version } = PartitionLayout.parseVersionKey(dbKey);
          if (latest?.key !== key) {
            const state = await this.store.get<EntityState>(this.layout.entity(meta.gen, key));
            latest = { key, version: state?.version ?? 0 };
          }
          // Read the policy at each step: it may change again while we sweep.
          if (!isRetained(version, latest.version, await this.config())) ops.push({ type: 'del', key: dbKey });
          if (ops.length >= 1000) {
            await this.store.stage(ops);
            ops = [];
          }
        }
        if (ops.length > 0) await this.store.stage(ops);
      })
      .catch((error: unknown) => this.ctx.onBackgroundError(error));
    return this.garbageCollection;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Resolves when all computed work is durable and background work is done. */
  async settle(): Promise<void> {
    await this.tail.catch(() => undefined);
    await this.lastStaged.catch(() => undefined);
    await this.garbageCollection;
  }

  close(): void {
    this.changeFeed.closeAll();
    this.eventFeed.closeAll();
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Refuses every later change: the copy is being purged (handed over, or its user deleted).
   * Whoever still holds this object must not write into the purged key space with its counters.
   */
  retire(): void {
    this.retired = true;
  }

  private retired = false;

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
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
  private listing(exists: boolean): StagedOp[] {
    if (exists === this.listed) return [];
    this.listed = exists;
    const keys = [registry.bucket(this.app, this.bucket, this.owner)];
    if (this.owner !== null) keys.push(registry.owned(this.app, this.owner, this.bucket));
    return keys.map((key): StagedOp => (exists ? { type: 'put', key, value: {} } : { type: 'del', key }));
  }

  private stage(ops: StagedOp[], onDurable?: () => void): void {
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
  private metaNow(): PartitionMeta | typeof NOT_NOW {
    if (this.stagedMeta === undefined) {
      const stored = this.store.getNow<PartitionMeta>(this.metaKey);
      if (stored === NOT_NOW) return NOT_NOW;
      this.stagedMeta = stored ?? null;
    }
    return this.stagedMeta ?? initialMeta;
  }

  private async meta(): Promise<PartitionMeta> {
    if (this.stagedMeta === undefined) {
      const stored = (await this.store.get<PartitionMeta>(this.metaKey)) ?? null;
      // A write staged while we read is newer than what we read.
      if (this.stagedMeta === undefined) this.stagedMeta = stored;
    }
    return this.stagedMeta ?? initialMeta;
  }

  private async durableMeta(): Promise<PartitionMeta> {
    return (await this.store.get<PartitionMeta>(this.layout.meta, { durable: true })) ?? initialMeta;
  }

  private pageSize(requested: number | null): number {
    const { pageSizeDefault, pageSizeMax } = this.ctx.limits;
    if (requested === null) return pageSizeDefault;
    if (!Number.isInteger(requested) || requested < 1 || requested > pageSizeMax) {
      throw invalidInput(`page size must be from 1 to ${pageSizeMax}`);
    }
    return requested;
  }

  private changeView(entry: ChangeEntry, pos: number): ChangeView {
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
      diff: local === undefined ? entry.diff : local.diff,
      data: local === undefined ? entry.data : local.data,
      cursor: this.cursorOf('changes', vector),
      seq: pos,
      origin: entry.origin,
      originSeq: entry.seq,
      vector,
    };
  }

  private eventView(entry: EventEntry, pos: number): EventView {
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

  private entityView(key: string, state: EntityState): EntityView {
    return { bucket: this.bucket, key, version: state.version, data: state.data, deleted: state.deleted };
  }
}

type CheckedChange =
  | { op: 'MODIFY'; key: string; baseVersion: number | null; body: { data: JsonObject } | { diff: ObjectDiff } }
  | { op: 'DELETE'; key: string; baseVersion: number | null }
  | { op: 'EMPTY' | 'DROP' };

type RecordBase = { ccid: string; clientId: string | null; sourceVersion: number | null };

interface LogHeads {
  changePos: number;
  eventPos: number;
  changeVector: VersionVector;
  eventVector: VersionVector;
}

/** Bytes of records (as stored) per batch for a peer: far below a peer link's frame limit. */
const RECORDS_BYTES_MAX = 8 * 1024 * 1024;

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
function isTrivialVector(vector: VersionVector, origin: string, seq: number): boolean {
  let n = 0;
  for (const key in vector) {
    if (++n > 1 || key !== origin || vector[key] !== seq) return false;
  }
  return n === 1;
}

/** A record's own fields: what travels between replicas. */
function ownFields(record: ChangeRecord): ChangeEntry {
  const { vv: _vv, local: _local, superseded: _superseded, ...own } = record as ChangeEntry;
  return own;
}

function orderOf(record: { hlc?: number; origin: string }): Ordered {
  return { hlc: record.hlc ?? 0, origin: record.origin };
}

function keyRecordOf(record: ChangeRecord, meta?: PartitionMeta): KeyRecord {
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

function keyStateOf(state: EntityState | undefined): KeyState {
  if (state === undefined) return emptyKeyState;
  return {
    data: state.deleted ? null : state.data,
    version: state.version,
    heads: state.heads ?? [],
    last: state.hlc === undefined ? null : { hlc: state.hlc, origin: state.origin ?? '' },
  };
}

function sameJson(a: JsonObject | null, b: JsonObject | null): boolean {
  return a === b || (a !== null && b !== null && jsonEqual(a, b));
}

const ORIGIN = /^[A-Za-z0-9._-]{1,64}$/;

/** What a peer sends is checked for shape: a malformed record must not reach the log. */
function checkRecord(record: ChangeRecord): void {
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
function isVector(value: unknown): value is VersionVector {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const [origin, seq] of Object.entries(value)) if (!ORIGIN.test(origin) || !Number.isSafeInteger(seq) || (seq as number) < 0) return false;
  return true;
}

/** Whether `vector` names no origin but `origin`. */
function onlyOrigin(vector: VersionVector, origin: string): boolean {
  for (const key in vector) if (key !== origin) return false;
  return true;
}

function passes(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

function badVersion(message: string): SyncError {
  return new SyncError(ErrorCode.BAD_VERSION, message);
}

/** What an entity stores of a key's converged state (model/converge.ts). */
function entityStateOf(state: KeyState): EntityState {
  const entity: EntityState = { version: state.version, data: state.data, deleted: state.data === null, heads: state.heads };
  if (state.last !== null) {
    entity.hlc = state.last.hlc;
    entity.origin = state.last.origin;
  }
  return entity;
}
