/**
 * History collection of a partition (docs/ARCHITECTURE.md, "History collection"): superseded
 * records, tombstones and old ccids, on a single node past the horizon, on a replica once causally
 * stable (replication/stability.ts, model/replica-history.ts).
 */
import { diffObjects } from '../model/jsondiff.js';
import { advance, emptyVector, seqOf, type VersionVector } from '../model/version-vector.js';
import { recordRef, replayKey } from '../model/converge.js';
import { ccidExpired, checkpointChain, parseRef, refCovered, replicaVerdict, tombstoneGoes } from '../model/replica-history.js';
import { PartitionLayout } from '../storage/layout.js';
import { type StagedOp } from '../storage/staged-store.js';
import { type ChangeEntry, type EntityState, type PartitionMeta } from './records.js';
import {
  type HistoryCollected,
  covers,
  entityStateOf,
  keyRecordOf,
  passes,
  sameJson,
} from './partition-core.js';
import { ReplicatingPartition } from './partition-replication.js';

export abstract class CollectingPartition extends ReplicatingPartition {


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
    await this.sweepClearedCcids(now - policy.ccidWindowMs, budget, result);
    return result;
  }

  /**
   * A pass of the sweep of a single node's ccid index (PartitionMeta `ccidSweep`): the entries of
   * records EMPTY or DROP cleared hold the record itself (every other entry of a single node holds
   * a log position, and goes with its record), and go once older than the ccid window. Passes
   * resume where the last one stopped, `budget` entries each; a sweep that met an entry too young
   * to go starts again once it reaches the end.
   */
  protected async sweepClearedCcids(threshold: number, budget: number, result: HistoryCollected): Promise<void> {
    const barrier = await this.exclusive(async () => {
      const meta = await this.meta();
      if (meta.ccidSweep === undefined) return undefined;
      // Range reads see durable data only: let what is staged land first.
      await this.lastStaged;
      const page = await this.store.page<ChangeEntry | number>({ ...this.layout.ccids(meta.ccidSweep), limit: budget });
      const ops: StagedOp[] = [];
      let again = meta.ccidSweepAgain === true;
      for (const [dbKey, entry] of page) {
        if (typeof entry === 'number') continue;
        if (entry.at > threshold) again = true;
        else {
          ops.push({ type: 'del', key: dbKey });
          result.ccids++;
        }
      }
      const next: PartitionMeta = { ...meta };
      delete next.ccidSweepAgain;
      if (page.length === budget) {
        next.ccidSweep = page.at(-1)![0];
        if (again) next.ccidSweepAgain = true;
        result.done = false;
      } else if (again) next.ccidSweep = '';
      else delete next.ccidSweep;
      ops.push({ type: 'put', key: this.layout.meta, value: next });
      this.stage(ops);
      return this.lastStaged;
    });
    await barrier;
  }

  /** Where the next pass over a replica's log starts: passes sweep the whole log, round after round. */
  protected sweepFrom = 0;

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
  protected async collectReplicated(
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
  protected async parentsOf(ref: string): Promise<readonly string[] | undefined> {
    const { origin, seq } = parseRef(ref);
    const pos = await this.positionOf(origin, seq);
    if (pos === undefined) return undefined;
    return (await this.store.get<ChangeEntry>(this.layout.change(pos), { durable: true }))?.deps ?? [];
  }

  /** The log entries of `key` that count (not superseded, not cleared), with their positions. */
  protected async keyEntries(meta: PartitionMeta, key: string): Promise<Array<{ pos: number; entry: ChangeEntry }>> {
    const out: Array<{ pos: number; entry: ChangeEntry }> = [];
    for await (const [dbKey, entry] of this.store.entries<ChangeEntry>(this.layout.changesFrom(meta.changeLogStart))) {
      if (entry.key !== key || entry.superseded === true) continue;
      if (meta.cut !== undefined && seqOf(meta.cut, entry.origin) >= entry.seq) continue;
      out.push({ pos: PartitionLayout.seqOfKey(dbKey), entry });
    }
    return out;
  }
}
