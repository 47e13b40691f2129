/**
 * A partition as a replica: records from peers applied in any order to the same converged state
 * (model/converge.ts), EMPTY/DROP from peers, what a peer asks for (records since its vector, the
 * digest), and the floors of collected history handed between replicas.
 */
import { type StreamKind } from '../model/cursor.js';
import { createHash } from 'node:crypto';
import { canonicalJson } from '../model/json.js';
import { diffObjects } from '../model/jsondiff.js';
import { advance, dominates, emptyVector, merge, seqOf, type VersionVector } from '../model/version-vector.js';
import { compareOrder, extend, extendsState, recordRef, replayKey, type KeyRecord, type KeyState } from '../model/converge.js';
import { isRetryAfterWindow, needsRebuild } from '../model/replica-history.js';
import { PartitionLayout } from '../storage/layout.js';
import { type StagedOp } from '../storage/staged-store.js';
import {
  type BucketConfig,
  type ChangeEntry,
  type ChangeRecord,
  type ChangeView,
  type EntityState,
  type EventEntry,
  type EventRecord,
  type PartitionMeta,
} from './records.js';
import {
  RECORDS_BYTES_MAX,
  type RecordsSince,
  checkRecord,
  covers,
  entityStateOf,
  entryVector,
  isTrivialVector,
  isVector,
  keyRecordOf,
  keyStateOf,
  onlyOrigin,
  orderOf,
  ownFields,
  sameJson,
  PartitionCore,
} from './partition-core.js';

export abstract class ReplicatingPartition extends PartitionCore {

  /** The floors of peers this copy took records from with gaps (`PartitionMeta.taken`). */
  async takenFloor(): Promise<VersionVector> {
    return (await this.durableMeta()).taken ?? emptyVector;
  }

  /**
   * Records from a copy that collected history are coming (`floor`): what it covers counts as
   * collected here too (a record whose parents are missing keeps its origin's version), and a
   * cursor that does not reach it has expired (its reader may have missed a collected deletion).
   */
  protected async takeFloor(floor: VersionVector): Promise<void> {
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
  protected async adoptFloor(floor: VersionVector): Promise<void> {
    const vector = merge(this.changeVector, floor);
    if (dominates(this.changeVector, vector)) return;
    this.changeVector = vector;
    const meta = await this.meta();
    this.stage([{ type: 'put', key: this.layout.meta, value: { ...meta, adopted: merge(meta.adopted ?? emptyVector, floor) } satisfies PartitionMeta }], () => {
      this.durableChangeVector = vector;
    });
  }


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

  protected async applyChangeRecord(record: ChangeRecord, compacted: boolean, transferFloor?: VersionVector): Promise<void> {
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
  protected async rewriteKey(
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
  protected async keyRecords(meta: PartitionMeta, keys: ReadonlySet<string>, excluded: ReadonlySet<string>): Promise<Map<string, KeyRecord[]>> {
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
  protected async supersede(loser: ChangeEntry, ops: StagedOp[]): Promise<void> {
    const pos = await this.positionOf(loser.origin, loser.seq);
    if (pos === undefined) return;
    const entry = await this.store.get<ChangeEntry>(this.layout.change(pos));
    if (entry !== undefined) ops.push({ type: 'put', key: this.layout.change(pos), value: { ...entry, superseded: true } });
  }

  /**
   * The log position of record `origin:seq`, if it is in the log: a binary search on vectors for
   * where the vector first covers it, then forward (records moved after an EMPTY/DROP left holes).
   */
  protected async positionOf(origin: string, seq: number): Promise<number | undefined> {
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

  protected stageEntry(pos: number, entry: ChangeEntry, vector: VersionVector, ops: StagedOp[] | undefined): void {
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
  protected async applyClear(record: ChangeRecord): Promise<void> {
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
}
