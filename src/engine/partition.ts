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
import { PartitionLayout, registry } from '../storage/layout.js';
import type { StagedOp, StagedStore } from '../storage/staged-store.js';
import { LiveFeed } from './live-feed.js';
import {
  initialMeta,
  type BucketConfig,
  type ChangeOp,
  type ChangeOutcome,
  type ChangeRecord,
  type ChangeView,
  type EntityState,
  type EntityView,
  type EventRecord,
  type EventView,
  type PartitionMeta,
} from './records.js';

/** What the engine needs from its host: identity, time and chance are injected, never global. */
export interface EngineContext {
  nodeId: string;
  now: () => number;
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
  /** Last sequence numbers staged (what the next change or event follows). */
  private changeSeq: number;
  private eventSeq: number;
  /** The store's failure count when the staged counters were last known good. */
  private failuresSeen: number;
  /** Whether the registry lists this partition (storage/layout.ts `registry`); undefined: unknown. */
  private listed: boolean | undefined;
  /** Highest sequence numbers known durable (cursors beyond them were not issued by us). */
  private durableChangeSeq: number;
  private durableEventSeq: number;
  private garbageCollection: Promise<void> = Promise.resolve();

  private constructor(
    readonly app: string,
    readonly bucket: string,
    /** The user whose private instance of the bucket this is; null for the app's own. */
    readonly owner: string | null,
    private readonly store: StagedStore,
    private readonly ctx: EngineContext,
    heads: { changeSeq: number; eventSeq: number },
    listed: boolean,
  ) {
    this.listed = listed;
    this.partition = partitionId(app, bucket, owner);
    this.layout = new PartitionLayout(this.partition);
    this.changeSeq = this.durableChangeSeq = heads.changeSeq;
    this.eventSeq = this.durableEventSeq = heads.eventSeq;
    this.failuresSeen = store.failures;
  }

  static async open(app: string, bucket: string, owner: string | null, store: StagedStore, ctx: EngineContext): Promise<Partition> {
    const layout = new PartitionLayout(partitionId(app, bucket, owner));
    const meta = (await store.get<PartitionMeta>(layout.meta, { durable: true })) ?? initialMeta;
    const lastSeq = async (range: { gte: string; lt: string }) => {
      for await (const [key] of store.entries({ ...range, reverse: true, limit: 1 })) return PartitionLayout.seqOfKey(key);
      return 0;
    };
    const heads = {
      // The EMPTY/DROP record that starts a compacted log is never collected: the log is never
      // emptier than its start.
      changeSeq: Math.max(await lastSeq(layout.changesFrom(1)), meta.changeLogStart - 1),
      eventSeq: await lastSeq(layout.eventsFrom(1)),
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
      return { ccid: input.ccid, change: this.changeView(original), error: null, duplicate: true, noop: false, entity: null };
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
    const state: EntityState = { version, data, deleted: false };
    return this.record(meta, config, key, current?.version ?? 0, state, { ...base, key, op: 'MODIFY', version, diff, data });
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
    const state: EntityState = { version, data: null, deleted: true };
    return this.record(meta, config, key, current.version, state, { ...base, key, op: 'DELETE', version, diff: null, data: null });
  }

  private record(
    meta: PartitionMeta,
    config: BucketConfig,
    key: string,
    previousVersion: number,
    state: EntityState,
    fields: Omit<ChangeRecord, 'id' | 'origin' | 'seq' | 'at'>,
  ): ChangeOutcome {
    const seq = ++this.changeSeq;
    const record: ChangeRecord = { id: this.ctx.newId(), ...fields, origin: this.ctx.nodeId, seq, at: this.ctx.now() };
    const ops: StagedOp[] = [
      { type: 'put', key: this.layout.entity(meta.gen, key), value: state },
      // Versions are read only to rebase a stale change: not worth a place in the cache.
      { type: 'put', key: this.layout.version(meta.gen, key, state.version), value: state, cache: false },
      ...versionsToPrune(previousVersion, state.version, config).map(
        (v): StagedOp => ({ type: 'del', key: this.layout.version(meta.gen, key, v) }),
      ),
      // The log is read by range, never by key: no point caching its records.
      { type: 'put', key: this.layout.change(seq), value: record, cache: false },
      // Read again only when a client retries: from the staged map, then from LevelDB.
      { type: 'put', key: this.layout.ccid(record.ccid), value: record, cache: false },
      ...this.listing(true),
    ];
    const view = this.changeView(record);
    this.stage(ops, () => {
      this.durableChangeSeq = seq;
      this.changeFeed.publish(view);
    });
    return { ccid: fields.ccid, change: view, error: null, duplicate: false, noop: false, entity: this.entityView(key, state) };
  }

  /** EMPTY and DROP: one small write that moves entities to a new generation. */
  private async clear(meta: PartitionMeta, op: 'EMPTY' | 'DROP', base: RecordBase): Promise<ChangeOutcome> {
    const seq = ++this.changeSeq;
    const record: ChangeRecord = {
      id: this.ctx.newId(),
      ...base,
      key: null,
      op,
      version: null,
      diff: null,
      data: null,
      origin: this.ctx.nodeId,
      seq,
      at: this.ctx.now(),
    };
    const next: PartitionMeta = {
      ...meta,
      gen: meta.gen + 1,
      // Everything before this record is superseded by it: a reader from an older cursor gets
      // this record (and clears its copy) and everything after it.
      changeLogStart: seq,
      garbage: [...meta.garbage, meta.gen],
    };
    const ops: StagedOp[] = [
      { type: 'put', key: this.layout.change(seq), value: record },
      { type: 'put', key: this.layout.ccid(record.ccid), value: record },
      { type: 'put', key: this.layout.meta, value: next },
    ];
    if (op === 'DROP') ops.push({ type: 'del', key: this.layout.config });
    ops.push(...this.listing(op === 'EMPTY'));
    const view = this.changeView(record);
    this.stage(ops, () => {
      this.durableChangeSeq = seq;
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
    const fromSeq = since === null ? 1 : this.startOf(since, 'events');
    await this.store.prefetch(inputs.filter((e) => e.uuid.length === 36).map((e) => this.layout.uuid(e.uuid.toLowerCase())));
    const { accepted, rejected, barrier } = await this.exclusive(async () => {
      const accepted: EventView[] = [];
      const rejected: PushEventsOutcome['rejected'] = [];
      const fresh: EventView[] = [];
      const inRequest = new Map<string, EventView>();
      const ops: StagedOp[] = [];
      let seq = this.eventSeq;
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
        seq++;
        const record: EventRecord = { ...event, origin: this.ctx.nodeId, seq, at: this.ctx.now() };
        ops.push({ type: 'put', key: this.layout.event(seq), value: record, cache: false });
        ops.push({ type: 'put', key: this.layout.uuid(event.uuid), value: seq });
        const view = this.eventView(record);
        inRequest.set(event.uuid, view);
        accepted.push(view);
        fresh.push(view);
      }
      if (ops.length > 0) {
        ops.push(...this.listing(true));
        this.eventSeq = seq;
        const last = seq;
        this.stage(ops, () => {
          this.durableEventSeq = last;
          for (const view of fresh) this.eventFeed.publish(view);
        });
      }
      return { accepted, rejected, barrier: this.lastStaged };
    });
    await barrier;
    const page = await this.readEvents(fromSeq, this.ctx.limits.pageSizeMax);
    return {
      accepted,
      rejected,
      history: page.events,
      cursor: page.events.at(-1)?.cursor ?? since ?? this.cursorAt('events', fromSeq - 1),
      hasMore: page.hasMore,
    };
  }

  private async storedEvent(uuid: string): Promise<EventView | undefined> {
    const seq = await this.store.get<number>(this.layout.uuid(uuid));
    if (seq === undefined) return undefined;
    const record = await this.store.get<EventRecord>(this.layout.event(seq));
    return record === undefined ? undefined : this.eventView(record);
  }

  // ---------------------------------------------------------------- reads (durable state only)

  async changes(since: string | null, limit: number | null): Promise<ChangePage> {
    const fromSeq = since === null ? 1 : this.startOf(since, 'changes');
    const records = await this.readChangeRecords(fromSeq, this.pageSize(limit) + 1);
    const hasMore = records.length > this.pageSize(limit);
    const changes = records.slice(0, this.pageSize(limit));
    return { changes, hasMore, cursor: changes.at(-1)?.cursor ?? since ?? this.cursorAt('changes', fromSeq - 1) };
  }

  async events(since: string | null, limit: number | null): Promise<EventPage> {
    const fromSeq = since === null ? 1 : this.startOf(since, 'events');
    const page = await this.readEvents(fromSeq, this.pageSize(limit));
    return { ...page, cursor: page.events.at(-1)?.cursor ?? since ?? this.cursorAt('events', fromSeq - 1) };
  }

  /** Validates `since` (throws INVALID_CURSOR) and returns the sequence number to start from. */
  startOf(since: string, stream: StreamKind): number {
    const position = decodeCursor(since);
    if (position.stream !== stream || position.partition !== this.partition) {
      throw new SyncError(ErrorCode.INVALID_CURSOR, `cursor does not belong to the ${stream} of bucket ${this.bucket}`);
    }
    let seq = 0;
    for (const [origin, originSeq] of Object.entries(position.vector)) {
      if (origin !== this.ctx.nodeId) throw new SyncError(ErrorCode.INVALID_CURSOR, 'cursor names an unknown origin');
      seq = originSeq;
    }
    const head = stream === 'changes' ? this.durableChangeSeq : this.durableEventSeq;
    if (seq > head) throw new SyncError(ErrorCode.INVALID_CURSOR, 'cursor is ahead of this bucket');
    return seq + 1;
  }

  cursorAt(stream: StreamKind, seq: number): string {
    return encodeCursor({ stream, partition: this.partition, vector: seq > 0 ? { [this.ctx.nodeId]: seq } : {} });
  }

  headCursor(stream: StreamKind): string {
    return this.cursorAt(stream, stream === 'changes' ? this.durableChangeSeq : this.durableEventSeq);
  }

  async readChangeRecords(fromSeq: number, limit: number): Promise<ChangeView[]> {
    const page = await this.store.page<ChangeRecord>({ ...this.layout.changesFrom(Math.max(1, fromSeq)), limit });
    return page.map(([, record]) => this.changeView(record));
  }

  async readEventRecords(fromSeq: number, limit: number): Promise<EventView[]> {
    const page = await this.store.page<EventRecord>({ ...this.layout.eventsFrom(Math.max(1, fromSeq)), limit });
    return page.map(([, record]) => this.eventView(record));
  }

  private async readEvents(fromSeq: number, limit: number): Promise<{ events: EventView[]; hasMore: boolean }> {
    const records = await this.readEventRecords(fromSeq, limit + 1);
    return { events: records.slice(0, limit), hasMore: records.length > limit };
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
        this.changeSeq = this.durableChangeSeq;
        this.eventSeq = this.durableEventSeq;
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

  private changeView(record: ChangeRecord): ChangeView {
    return {
      id: record.id,
      ccid: record.ccid,
      clientId: record.clientId,
      bucket: this.bucket,
      key: record.key,
      op: record.op,
      sourceVersion: record.sourceVersion,
      version: record.version,
      diff: record.diff,
      data: record.data,
      cursor: this.cursorAt('changes', record.seq),
      seq: record.seq,
    };
  }

  private eventView(record: EventRecord): EventView {
    return {
      uuid: record.uuid,
      timestamp: record.timestamp,
      user: record.user,
      item: record.item,
      action: record.action,
      payload: record.payload,
      cursor: this.cursorAt('events', record.seq),
      seq: record.seq,
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
