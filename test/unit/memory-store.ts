/**
 * Test doubles for the storage edge: an in-memory KeyValueStore that keeps the promises of
 * `src/storage/store.ts` (atomic batches, snapshot iterators, keys in LevelDB's byte order), and a
 * gate that holds every write (and, on request, reads) until the test releases or fails it, so
 * tests control "in flight" with deferreds instead of sleeps. The memory store runs the same
 * conformance checks as LevelStore (staged-store.test.ts), so the fake cannot drift.
 */
import type { KeyValueStore, RangeOptions, WriteOp } from '../../src/storage/store.js';

import { deferred, type Deferred } from '../support/deferred.js';

export { deferred, type Deferred };

/**
 * One turn of the event loop: every pending microtask (promise continuation) has run when it
 * resolves. Not a sleep: no timer, nothing depends on how long it takes.
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** LevelDB (utf8 keys) orders keys by their UTF-8 bytes, not by UTF-16 code units as `<` does. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function inRange(key: string, range: RangeOptions): boolean {
  if (range.gt !== undefined && compareKeys(key, range.gt) <= 0) return false;
  if (range.gte !== undefined && compareKeys(key, range.gte) < 0) return false;
  if (range.lt !== undefined && compareKeys(key, range.lt) >= 0) return false;
  if (range.lte !== undefined && compareKeys(key, range.lte) > 0) return false;
  return true;
}

function select(data: ReadonlyMap<string, string>, range: RangeOptions): Array<[string, string]> {
  const selected = [...data].filter(([key]) => inRange(key, range)).sort(([a], [b]) => compareKeys(a, b));
  if (range.reverse === true) selected.reverse();
  const limit = range.limit ?? -1;
  return limit >= 0 ? selected.slice(0, limit) : selected;
}

export class MemoryStore implements KeyValueStore {
  private readonly data = new Map<string, string>();
  /** Number of `get` calls, to tell a cache hit from a store read. */
  gets = 0;
  /** Every batch written, in order. */
  readonly batches: WriteOp[][] = [];

  async get(key: string): Promise<string | undefined> {
    this.gets++;
    return this.data.get(key);
  }

  async getMany(keys: string[]): Promise<Array<string | undefined>> {
    this.gets += keys.length;
    return keys.map((key) => this.data.get(key));
  }

  async write(ops: WriteOp[], _options: { sync: boolean }): Promise<void> {
    this.apply(ops);
  }

  /** Applies a batch atomically (synchronously: no reader can see half of it). */
  apply(ops: WriteOp[]): void {
    this.batches.push(ops);
    for (const op of ops) {
      if (op.type === 'put') this.data.set(op.key, op.value);
      else this.data.delete(op.key);
    }
  }

  async *entries(range: RangeOptions): AsyncIterable<[string, string]> {
    // The snapshot is taken when iteration starts, as a LevelDB iterator's is.
    const snapshot = select(this.data, range);
    for (const entry of snapshot) yield entry;
  }

  async page(range: RangeOptions & { limit: number }): Promise<Array<[string, string]>> {
    return select(this.data, range).slice(0, range.limit);
  }

  async clear(range: RangeOptions): Promise<void> {
    for (const [key] of select(this.data, { ...range, reverse: false })) this.data.delete(key);
  }

  async close(): Promise<void> {}
}

export interface GatedWrite {
  ops: WriteOp[];
  options: { sync: boolean };
  /** Applies the batch to the inner store, then resolves the write. */
  succeed(): Promise<void>;
  /** Rejects the write with `error`; nothing is applied. */
  fail(error: unknown): void;
}

export interface HeldGet {
  /** What the store held when the read was made. */
  value: string | undefined;
  /** Lets the read return its (possibly stale by now) value. */
  release(): void;
}

/**
 * Wraps a store so that each `write` stays in flight until the test calls `succeed` or `fail`
 * on it, and so that a read can be held after it has read (to race it against a write).
 */
export class GatedStore implements KeyValueStore {
  readonly writes: GatedWrite[] = [];
  gets = 0;
  private readonly writeWaiters: Array<{ index: number; resolve: (write: GatedWrite) => void }> = [];
  private holdNext: Deferred<HeldGet> | undefined;

  constructor(readonly inner: KeyValueStore) {}

  /** Resolves with the `index`-th write (0-based) once it has been issued. */
  writeAt(index: number): Promise<GatedWrite> {
    const existing = this.writes[index];
    if (existing !== undefined) return Promise.resolve(existing);
    return new Promise((resolve) => this.writeWaiters.push({ index, resolve }));
  }

  /** The next `get` reads at once, then waits for `release()`; resolves when that read was made. */
  holdNextGet(): Promise<HeldGet> {
    this.holdNext = deferred<HeldGet>();
    return this.holdNext.promise;
  }

  async getMany(keys: string[]): Promise<Array<string | undefined>> {
    return Promise.all(keys.map((key) => this.get(key)));
  }

  async get(key: string): Promise<string | undefined> {
    this.gets++;
    const hold = this.holdNext;
    this.holdNext = undefined;
    const value = await this.inner.get(key);
    if (hold !== undefined) {
      const gate = deferred();
      hold.resolve({ value, release: () => gate.resolve() });
      await gate.promise;
    }
    return value;
  }

  write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    const done = deferred();
    const write: GatedWrite = {
      ops,
      options,
      succeed: async () => {
        await this.inner.write(ops, options);
        done.resolve();
        await done.promise;
      },
      fail: (error) => done.reject(error),
    };
    this.writes.push(write);
    for (const waiter of this.writeWaiters.filter((w) => w.index === this.writes.length - 1)) {
      this.writeWaiters.splice(this.writeWaiters.indexOf(waiter), 1);
      waiter.resolve(write);
    }
    return done.promise;
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

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Drains an async iterable into an array. */
export async function collectEntries<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
