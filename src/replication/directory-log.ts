/**
 * The directory (apps, API keys, users, tokens, shared buckets, ACL rules: auth/directory.ts) on
 * every node of a cluster. The directory writes small batches of keys; here each batch also
 * becomes a record of this node's directory log (origin, dense sequence, hybrid clock), written
 * in the same atomic batch, and nodes exchange the records they lack (by version vector, like
 * partitions). A key's value is the one of the latest write in (clock, origin) order
 * (last-writer-wins per key, stamped in `dm!`), so every node that holds the same records holds
 * the same directory, whatever order they came in. The directory is small and read on every
 * request, so every node keeps all of it.
 *
 *   dl!{origin}!{seq}     DirectoryRecord
 *   dm!{key}              the stamp of the write that set `key` (or deleted it)
 *   dv!                   this node's vector of directory records
 */
import { compareOrder, type Ordered } from '../model/converge.js';
import { advance, emptyVector, seqOf, type VersionVector } from '../model/version-vector.js';
import { prefixEnd, type KeyValueStore, type RangeOptions, type WriteOp } from '../storage/store.js';
import type { HybridClock } from '../engine/hlc.js';

export interface DirectoryRecord {
  origin: string;
  seq: number;
  hlc: number;
  /** The keys written: a value, or null for a deletion. */
  ops: Array<{ key: string; value: string | null }>;
}

/** A key whose value changed because of another node's write (for caches and revocations). */
export interface DirectoryChange {
  key: string;
  previous: string | undefined;
  value: string | null;
}

const LOG = 'dl!';
const STAMP = 'dm!';
const VECTOR = 'dv!';
const SEQ_DIGITS = 16;

export class ReplicatedDirectoryStore implements KeyValueStore {
  private vector: VersionVector;
  private tail: Promise<unknown> = Promise.resolve();
  /** Called after a local write is durable (the cluster pushes it to the peers). */
  onLocalWrite: ((record: DirectoryRecord) => void) | undefined;
  /** Called after records of other nodes changed keys here (caches, revocations). */
  onRemoteChanges: ((changes: DirectoryChange[]) => void) | undefined;

  private constructor(
    private readonly inner: KeyValueStore,
    private readonly origin: string,
    private readonly clock: HybridClock,
    vector: VersionVector,
  ) {
    this.vector = vector;
  }

  static async open(inner: KeyValueStore, origin: string, clock: HybridClock): Promise<ReplicatedDirectoryStore> {
    const raw = await inner.get(VECTOR);
    return new ReplicatedDirectoryStore(inner, origin, clock, raw === undefined ? emptyVector : (JSON.parse(raw) as VersionVector));
  }

  get syncReads(): boolean | undefined {
    return this.inner.syncReads;
  }

  vectorNow(): VersionVector {
    return this.vector;
  }

  get(key: string): Promise<string | undefined> {
    return this.inner.get(key);
  }
  getMany(keys: string[]): Promise<Array<string | undefined>> {
    return this.inner.getMany(keys);
  }
  entries(range: RangeOptions): AsyncIterable<[string, string]> {
    return this.inner.entries(range);
  }
  page(range: RangeOptions & { limit: number }): Promise<Array<[string, string]>> {
    return this.inner.page(range);
  }
  clear(range: RangeOptions): Promise<void> {
    return this.inner.clear(range);
  }
  async close(): Promise<void> {}

  /** A directory write: applied here and logged for the other nodes, in one atomic batch. */
  write(ops: WriteOp[], _options: { sync: boolean }): Promise<void> {
    return this.serially(async () => {
      const seq = seqOf(this.vector, this.origin) + 1;
      const record: DirectoryRecord = {
        origin: this.origin,
        seq,
        hlc: this.clock.tick(),
        ops: ops.map((op) => ({ key: op.key, value: op.type === 'put' ? op.value : null })),
      };
      const vector = advance(this.vector, this.origin, seq);
      const stamp = JSON.stringify({ hlc: record.hlc, origin: record.origin } satisfies Ordered);
      await this.inner.write(
        [
          ...ops,
          ...ops.map((op): WriteOp => ({ type: 'put', key: STAMP + op.key, value: stamp })),
          { type: 'put', key: logKey(this.origin, seq), value: JSON.stringify(record) },
          { type: 'put', key: VECTOR, value: JSON.stringify(vector) },
        ],
        { sync: true },
      );
      this.vector = vector;
      this.onLocalWrite?.(record);
    });
  }

  /**
   * Applies other nodes' records: each origin's in sequence (those already here are skipped, a
   * gap stops that origin until the missing ones come); each key takes the value of the latest
   * write. Resolves with this node's vector once durable.
   */
  apply(records: readonly DirectoryRecord[]): Promise<VersionVector> {
    return this.serially(async () => {
      const changes: DirectoryChange[] = [];
      for (const record of records) {
        if (!isRecord(record) || record.seq !== seqOf(this.vector, record.origin) + 1) continue;
        this.clock.observe(record.hlc);
        const order: Ordered = { hlc: record.hlc, origin: record.origin };
        const writes: WriteOp[] = [];
        for (const op of record.ops) {
          const stamp = await this.inner.get(STAMP + op.key);
          if (stamp !== undefined && compareOrder(JSON.parse(stamp) as Ordered, order) >= 0) continue;
          const previous = await this.inner.get(op.key);
          writes.push(op.value === null ? { type: 'del', key: op.key } : { type: 'put', key: op.key, value: op.value });
          writes.push({ type: 'put', key: STAMP + op.key, value: JSON.stringify(order) });
          changes.push({ key: op.key, previous, value: op.value });
        }
        const vector = advance(this.vector, record.origin, record.seq);
        writes.push({ type: 'put', key: logKey(record.origin, record.seq), value: JSON.stringify(record) });
        writes.push({ type: 'put', key: VECTOR, value: JSON.stringify(vector) });
        await this.inner.write(writes, { sync: true });
        this.vector = vector;
      }
      if (changes.length > 0) this.onRemoteChanges?.(changes);
      return this.vector;
    });
  }

  /** The records held here that `vector` does not cover, each origin's in order, at most `limit`. */
  async recordsSince(vector: VersionVector, limit: number): Promise<{ records: DirectoryRecord[]; more: boolean }> {
    const records: DirectoryRecord[] = [];
    for (const origin of Object.keys(this.vector).sort()) {
      const from = seqOf(vector, origin) + 1;
      if (from > seqOf(this.vector, origin)) continue;
      const prefix = `${LOG}${origin}!`;
      const page = await this.inner.page({ gte: logKey(origin, from), lt: prefixEnd(prefix), limit: limit - records.length + 1 });
      for (const [, raw] of page) {
        if (records.length >= limit) return { records, more: true };
        records.push(JSON.parse(raw) as DirectoryRecord);
      }
    }
    return { records, more: false };
  }

  /**
   * A node that joins a cluster with a directory of its own (it ran alone before) logs what it
   * has once, so that the other nodes receive it too.
   */
  async adoptExisting(prefix: string): Promise<number> {
    if (Object.keys(this.vector).length > 0) return 0;
    const rows = await this.inner.page({ gte: prefix, lt: prefixEnd(prefix), limit: 10_000_000 });
    for (let i = 0; i < rows.length; i += 500) {
      await this.write(rows.slice(i, i + 500).map(([key, value]): WriteOp => ({ type: 'put', key, value })), { sync: true });
    }
    return rows.length;
  }

  private serially<T>(run: () => Promise<T>): Promise<T> {
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function logKey(origin: string, seq: number): string {
  return `${LOG}${origin}!${seq.toString().padStart(SEQ_DIGITS, '0')}`;
}

const ORIGIN = /^[A-Za-z0-9._-]{1,64}$/;

function isRecord(value: unknown): value is DirectoryRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Partial<DirectoryRecord>;
  return (
    typeof r.origin === 'string' &&
    ORIGIN.test(r.origin) &&
    Number.isSafeInteger(r.seq) &&
    Number.isSafeInteger(r.hlc) &&
    Array.isArray(r.ops) &&
    r.ops.every((op) => typeof op === 'object' && op !== null && typeof op.key === 'string' && op.key.startsWith('auth!') && (op.value === null || typeof op.value === 'string'))
  );
}
