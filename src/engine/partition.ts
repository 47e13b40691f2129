/**
 * One partition (one bucket of one app): its state machine, as clients and the engine use it.
 * The class is built in layers, a file each: partition-core.ts (state, the exclusive section,
 * log entries and views), partition-replication.ts (records from peers), partition-history.ts
 * (history collection), and this file (changes, events, reads, settings). Every change goes
 *   validate -> dedupe ccid -> transform against what happened since its base -> apply
 *   -> stage one atomic batch (log record, entity, version, ccid, meta) -> durable -> publish
 * Changes of a partition are computed one at a time (the `exclusive` chain) but are not fsynced
 * one at a time: the staged store group-commits them, and a result is returned only once the
 * batch holding it, and everything it was computed from, is durable.
 */
import { decodeCursor, type StreamKind } from '../model/cursor.js';
import { ErrorCode, SyncError, invalidInput } from '../model/errors.js';
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
import { normaliseCcid, validateCcid, validateClientId, validateEntityKey, validateKeyPrefix } from '../model/names.js';
import { isRetained } from '../model/retention.js';
import { advance, dominates, emptyVector, merge, seqOf } from '../model/version-vector.js';
import { compareOrder, recordRef } from '../model/converge.js';
import { epochKey, PartitionLayout, registry } from '../storage/layout.js';
import { NOT_NOW, type StagedOp, type StagedStore } from '../storage/staged-store.js';
import {
  initialMeta,
  type BucketConfig,
  type ChangeEntry,
  type ChangeOutcome,
  type ChangeView,
  type EntityState,
  type EntityView,
  type EventEntry,
  type EventView,
  type PartitionMeta,
} from './records.js';
import {
  type Caller,
  type ChangeInput,
  type ChangePage,
  type CheckedChange,
  type EngineContext,
  type EventPage,
  type LogHeads,
  type PushEventsOutcome,
  type RecordBase,
  type Resume,
  BadVersion,
  badVersion,
  covers,
  cursorFor,
  entryVector,
  isChangeError,
  isTrivialVector,
  onlyOrigin,
  partitionId,
  passes,
} from './partition-core.js';
import { CollectingPartition } from './partition-history.js';
export {
  covers,
  cursorFor,
  entryVector,
  partitionId,
  type Caller,
  type ChangeInput,
  type ChangePage,
  type EngineContext,
  type EventPage,
  type HistoryCollected,
  type PushEventsOutcome,
  type RecordsSince,
  type Resume,
} from './partition-core.js';

export class Partition extends CollectingPartition {

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
            entity: error instanceof BadVersion ? this.entityView(error.key, error.current) : null,
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
        if (config.conflictMode === 'OPTIMISTIC') throw badVersion(`${key} already exists at version ${alive.version}`, key, alive);
        data = applyDiff(alive.data, transform(local, diffObjects({}, alive.data), {}, true));
      }
    } else {
      if (alive === undefined) throw new SyncError(ErrorCode.MISSING_ENTITY, `${key} does not exist`);
      if (from > alive.version) throw badVersion(`baseVersion ${from} is newer than ${key}'s version ${alive.version}`, key, alive);
      if (from === alive.version) {
        data = 'data' in body ? body.data : applyDiff(alive.data, body.diff);
      } else {
        if (config.conflictMode === 'OPTIMISTIC') {
          throw badVersion(`${key} is at version ${alive.version}: pull before pushing`, key, alive);
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
    // Made from nothing, the change's diff is its data (not stored: records.ts `ChangeRecord.diff`).
    const diff = alive === undefined ? undefined : diffObjects(alive.data, data);
    if (alive !== undefined && diff !== undefined && isEmptyDiff(diff)) {
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
      throw badVersion(`${key} is at version ${current.version}, not ${baseVersion}`, key, current);
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
    diff: ObjectDiff | null | undefined,
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

  headCursor(stream: StreamKind): string {
    return this.cursorOf(stream, stream === 'changes' ? this.durableChangeVector : this.durableEventVector);
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
}
