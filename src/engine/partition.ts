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
import { inspectJson, isJsonObject, type JsonObject } from '../model/json.js';
import {
  applyDiff,
  applyDiffLenient,
  diffObjects,
  isEmptyDiff,
  parseDiff,
  transform,
  type ObjectDiff,
} from '../model/jsondiff.js';
import { normaliseCcid, validateCcid, validateClientId, validateEntityKey } from '../model/names.js';
import { isRetained, versionsToPrune, type RetentionPolicy } from '../model/retention.js';
import type { Limits } from '../options.js';
import { advance, dominates, emptyVector, merge, seqOf, type VersionVector } from '../model/version-vector.js';
import { recordRef } from '../model/converge.js';
import type { HybridClock } from './hlc.js';
import { PartitionLayout, registry } from '../storage/layout.js';
import type { StagedOp, StagedStore } from '../storage/staged-store.js';
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
  /** Reports failures of background work (garbage collection); the node logs them. */
  onBackgroundError: (error: unknown) => void;
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

  private constructor(
    readonly app: string,
    readonly bucket: string,
    /** The user whose private instance of the bucket this is; null for the app's own. */
    readonly owner: string | null,
    private readonly store: StagedStore,
    private readonly ctx: EngineContext,
    heads: LogHeads,
    listed: boolean,
  ) {
    this.listed = listed;
    this.partition = partitionId(app, bucket, owner);
    this.layout = new PartitionLayout(this.partition);
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
      changeVector: lastChange === undefined ? emptyVector : entryVector(lastChange.entry),
      eventVector: lastEvent === undefined ? emptyVector : entryVector(lastEvent.entry),
    };
    const listed = (await store.get(registry.bucket(app, bucket, owner), { durable: true })) !== undefined;
    const partition = new Partition(app, bucket, owner, store, ctx, heads, listed);
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
          outcomes.push(await this.applyChange(input, clientId, caller));
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

  private async applyChange(input: ChangeInput, clientId: string | null, caller: Caller): Promise<ChangeOutcome> {
    const checked = this.checkChange(input, caller);
    const ccid = normaliseCcid(input.ccid);
    const original = await this.store.get<ChangeRecord>(this.layout.ccid(ccid));
    if (original !== undefined) {
      return { ccid: input.ccid, change: this.changeView(original, 0), error: null, duplicate: true, noop: false, entity: null };
    }
    const meta = await this.meta();
    const base = { ccid, clientId, sourceVersion: input.baseVersion ?? null };
    switch (checked.op) {
      case 'MODIFY':
        return this.modify(meta, checked.key, base, checked.baseVersion, checked.body);
      case 'DELETE':
        return this.delete(meta, checked.key, base, checked.baseVersion);
      case 'EMPTY':
      case 'DROP':
        return this.clear(meta, checked.op, base);
    }
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

  private async modify(
    meta: PartitionMeta,
    key: string,
    base: RecordBase,
    baseVersion: number | null,
    body: { data: JsonObject } | { diff: ObjectDiff },
  ): Promise<ChangeOutcome> {
    const config = await this.config();
    const current = await this.store.get<EntityState>(this.layout.entity(meta.gen, key));
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
        const baseState = await this.store.get<EntityState>(this.layout.version(meta.gen, key, from));
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
    return this.record(meta, config, key, current, { ...base, key, op: 'MODIFY', version, diff, data });
  }

  /** The client's edit as a diff against `baseData`; a diff that does not apply there is refused. */
  private localDiff(baseData: JsonObject, body: { data: JsonObject } | { diff: ObjectDiff }): ObjectDiff {
    if ('data' in body) return diffObjects(baseData, body.data);
    applyDiff(baseData, body.diff); // throws DiffApplyError (INVALID_INPUT) when it does not fit
    return body.diff;
  }

  private async delete(meta: PartitionMeta, key: string, base: RecordBase, baseVersion: number | null): Promise<ChangeOutcome> {
    const config = await this.config();
    const current = await this.store.get<EntityState>(this.layout.entity(meta.gen, key));
    if (current === undefined || current.deleted) throw new SyncError(ErrorCode.MISSING_ENTITY, `${key} does not exist`);
    // Only the most recent version may be deleted (Simperium); null means "whatever is current".
    if (baseVersion !== null && baseVersion !== current.version) {
      throw badVersion(`${key} is at version ${current.version}, not ${baseVersion}`);
    }
    const version = current.version + 1;
    return this.record(meta, config, key, current, { ...base, key, op: 'DELETE', version, diff: null, data: null });
  }

  private record(
    meta: PartitionMeta,
    config: BucketConfig,
    key: string,
    current: EntityState | undefined,
    fields: Omit<ChangeRecord, 'id' | 'origin' | 'seq' | 'at' | 'hlc' | 'deps' | 'cut'> & { version: number },
  ): ChangeOutcome {
    const self = this.ctx.nodeId;
    // Made on the entity as it is here: after its last record in the total order.
    if (current?.hlc !== undefined) this.ctx.clock.observe(current.hlc);
    const pos = ++this.changePos;
    const seq = seqOf(this.changeVector, self) + 1;
    const vector = advance(this.changeVector, self, seq);
    this.changeVector = vector;
    const entry: ChangeEntry = {
      id: this.ctx.newId(),
      ...fields,
      origin: self,
      seq,
      at: this.ctx.now(),
      hlc: this.ctx.clock.tick(),
      deps: current?.heads ?? [],
    };
    if (!isTrivialVector(vector, self, seq)) entry.vv = vector;
    const state: EntityState = {
      version: fields.version,
      data: fields.data,
      deleted: fields.op === 'DELETE',
      heads: [recordRef(self, seq)],
      hlc: entry.hlc,
      origin: self,
    };
    const ops = this.entityWrites(meta, config, key, current?.version ?? 0, state);
    // The log is read by range, never by key: no point caching its records.
    ops.push({ type: 'put', key: this.layout.change(pos), value: entry, cache: false });
    // Read again only when a client retries: from the staged map, then from LevelDB.
    ops.push({ type: 'put', key: this.layout.ccid(entry.ccid), value: entry, cache: false });
    ops.push(...this.listing(true));
    const view = this.changeView(entry, pos);
    this.stage(ops, () => {
      this.durableChangePos = pos;
      this.durableChangeVector = vector;
      this.changeFeed.publish(view);
    });
    return { ccid: fields.ccid, change: view, error: null, duplicate: false, noop: false, entity: this.entityView(key, state) };
  }

  /** The writes that make `state` an entity's current state, and its retained versions. */
  private entityWrites(meta: PartitionMeta, config: BucketConfig, key: string, previousVersion: number, state: EntityState): StagedOp[] {
    return [
      { type: 'put', key: this.layout.entity(meta.gen, key), value: state },
      // Versions are read only to rebase a stale change: not worth a place in the cache.
      { type: 'put', key: this.layout.version(meta.gen, key, state.version), value: state, cache: false },
      ...versionsToPrune(previousVersion, state.version, config).map(
        (v): StagedOp => ({ type: 'del', key: this.layout.version(meta.gen, key, v) }),
      ),
    ];
  }

  /** EMPTY and DROP: one small write that moves entities to a new generation. */
  private async clear(meta: PartitionMeta, op: 'EMPTY' | 'DROP', base: RecordBase): Promise<ChangeOutcome> {
    const self = this.ctx.nodeId;
    const pos = ++this.changePos;
    const seq = seqOf(this.changeVector, self) + 1;
    const cut = this.changeVector;
    const vector = advance(cut, self, seq);
    this.changeVector = vector;
    const entry: ChangeEntry = {
      id: this.ctx.newId(),
      ...base,
      key: null,
      op,
      version: null,
      diff: null,
      data: null,
      origin: self,
      seq,
      at: this.ctx.now(),
      hlc: this.ctx.clock.tick(),
      cut,
    };
    if (!isTrivialVector(vector, self, seq)) entry.vv = vector;
    const next: PartitionMeta = {
      ...meta,
      gen: meta.gen + 1,
      // Everything before this record is superseded by it: a reader from an older cursor gets
      // this record (and clears its copy) and everything after it.
      changeLogStart: pos,
      garbage: [...meta.garbage, meta.gen],
      cut: merge(meta.cut ?? emptyVector, cut),
    };
    const ops: StagedOp[] = [
      { type: 'put', key: this.layout.change(pos), value: entry },
      { type: 'put', key: this.layout.ccid(entry.ccid), value: entry },
      { type: 'put', key: this.layout.meta, value: next },
    ];
    if (op === 'DROP') ops.push({ type: 'del', key: this.layout.config });
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

  /** Clears generations and log records left behind by EMPTY/DROP, then forgets them. */
  private collectGarbage(): void {
    this.garbageCollection = this.garbageCollection
      .then(async () => {
        const meta = await this.store.get<PartitionMeta>(this.layout.meta, { durable: true });
        if (meta === undefined) return;
        for (const gen of meta.garbage) await this.store.clear(this.layout.generation(gen));
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
      const self = this.ctx.nodeId;
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
        ops.push({ type: 'put', key: this.layout.event(pos), value: entry, cache: false });
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

  // ---------------------------------------------------------------- reads (durable state only)

  async changes(since: string | null, limit: number | null): Promise<ChangePage> {
    const size = this.pageSize(limit);
    const resume = await this.resume(since, 'changes');
    const views = await this.readChangeRecords(resume.fromPos, size + 1, (view) => covers(resume, view));
    const changes = views.slice(0, size);
    const last = changes.at(-1);
    return { changes, hasMore: views.length > size, cursor: last === undefined ? (since ?? this.cursorOf('changes', emptyVector)) : cursorFor(resume, last) };
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
    const self = this.ctx.nodeId;
    const vector = position.vector;
    const head = stream === 'changes' ? this.durableChangeVector : this.durableEventVector;
    // Other replicas may be ahead of this one, but nobody knows more of our own records than we do.
    if (seqOf(vector, self) > seqOf(head, self)) throw new SyncError(ErrorCode.INVALID_CURSOR, 'cursor is ahead of this bucket');
    if (onlyOrigin(head, self) && onlyOrigin(vector, self)) {
      return { fromPos: seqOf(vector, self) + 1, covered: null, since: vector, ahead: false };
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
  async readChangeRecords(fromPos: number, limit: number, skip?: (view: ChangeView) => boolean): Promise<ChangeView[]> {
    const out: ChangeView[] = [];
    let pos = Math.max(1, fromPos);
    for (;;) {
      const wanted = limit - out.length;
      const page = await this.store.page<ChangeEntry>({ ...this.layout.changesFrom(pos), limit: wanted });
      for (const [key, entry] of page) {
        pos = PartitionLayout.seqOfKey(key) + 1;
        if (entry.superseded === true) continue;
        const view = this.changeView(entry, pos - 1);
        if (skip === undefined || !skip(view)) out.push(view);
      }
      if (page.length < wanted || out.length >= limit) return out;
    }
  }

  async readEventRecords(fromPos: number, limit: number, skip?: (view: EventView) => boolean): Promise<EventView[]> {
    const out: EventView[] = [];
    let pos = Math.max(1, fromPos);
    for (;;) {
      const wanted = limit - out.length;
      const page = await this.store.page<EventEntry>({ ...this.layout.eventsFrom(pos), limit: wanted });
      for (const [key, entry] of page) {
        pos = PartitionLayout.seqOfKey(key) + 1;
        if (entry.superseded === true) continue;
        const view = this.eventView(entry, pos - 1);
        if (skip === undefined || !skip(view)) out.push(view);
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
    const state =
      version === null
        ? await this.store.get<EntityState>(this.layout.entity(meta.gen, key), { durable: true })
        : await this.store.get<EntityState>(this.layout.version(meta.gen, key, version), { durable: true });
    return state === undefined ? null : this.entityView(key, state);
  }

  async entities(first: number | null, after: string | null, includeDeleted: boolean): Promise<EntityView[]> {
    if (after !== null) validateEntityKey(after, 'after');
    const limit = this.pageSize(first);
    const meta = await this.durableMeta();
    const out: EntityView[] = [];
    const range = this.layout.entities(meta.gen, after ?? undefined);
    const prefixLength = range.lt.length; // the key follows the prefix (prefixEnd keeps its length)
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
    const out: EntityView[] = [];
    for await (const [, state] of this.store.entries<EntityState>({ ...this.layout.versions(meta.gen, key), reverse: true })) {
      out.push(this.entityView(key, state));
    }
    return out;
  }

  // ---------------------------------------------------------------- configuration

  async config(): Promise<BucketConfig> {
    const stored = await this.store.get<BucketConfig>(this.layout.config);
    return stored ?? { conflictMode: 'MERGE', ...this.ctx.retention };
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
      const config: BucketConfig = { ...previous, ...patch };
      this.stage([{ type: 'put', key: this.layout.config, value: config }]);
      return { config, previous, barrier: this.lastStaged };
    });
    await barrier;
    // Each write prunes only what its own step leaves behind; a stricter policy must also
    // remove what the old one kept. The answer waits for it: the new policy is then in force.
    if (config.versionMax < previous.versionMax || config.version10Max < previous.version10Max) await this.sweepRetention();
    return config;
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

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => {
      // A failed write discarded everything staged: continue from what is durable.
      if (this.failuresSeen !== this.store.failures) {
        this.failuresSeen = this.store.failures;
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
    return keys.map((key): StagedOp => (exists ? { type: 'put', key, value: {}, cache: false } : { type: 'del', key }));
  }

  private stage(ops: StagedOp[], onDurable?: () => void): void {
    this.lastStaged = this.store.stage(ops, onDurable);
    // Failures reach the requests awaiting this barrier; never leave a rejection unobserved.
    this.lastStaged.catch(() => undefined);
  }

  private async meta(): Promise<PartitionMeta> {
    return (await this.store.get<PartitionMeta>(this.layout.meta)) ?? initialMeta;
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

/** The cursor to hand a reader after `view`: the view's own, unless the reader was ahead. */
export function cursorFor(resume: Resume, view: { cursor: string; vector: VersionVector }): string {
  if (!resume.ahead) return view.cursor;
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
