/**
 * The engine's view of storage: reads see every staged write at once (so the next change of a
 * partition can be computed while the previous one is still being fsynced), writes are
 * acknowledged only when durable, and hot keys are served from an LRU cache.
 *
 * Point reads (`get`) see staged state; range reads (`entries`) see durable state only, which is
 * what replays and pages must serve: nothing that could still be lost is ever shown to a client.
 */
import { LRUCache } from 'lru-cache';
import { GroupCommitter, type GroupCommitOptions } from './group-commit.js';
import { prefixEnd, type KeyValueStore, type RangeOptions, type WriteOp } from './store.js';

/** A write. */
export type StagedOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

/** From `getNow`: the value is not at hand, `get` would have to wait for it. */
export const NOT_NOW = Symbol('not now');

interface StageGroup {
  /** The encoded writes of every part, in order. */
  writes: WriteOp[];
  /** Each `stage` call: its ops, where its writes start, its callback. */
  parts: Array<{ ops: StagedOp[]; from: number; onDurable: (() => void) | undefined }>;
  promise: Promise<void>;
  settle: { resolve: () => void; reject: (error: unknown) => void };
}

export interface StagedStoreOptions extends GroupCommitOptions {
  /** Budget of the read cache, in bytes of encoded values (counted as UTF-16 units). @default 64 MiB */
  cacheBytesMax?: number;
  /**
   * Keys the cache never holds, read or written: those read by range (logs) or rarely by key
   * (indexes consulted on retries, old versions). A policy by key rather than by call, so that no
   * read can slip one into the cache where a later write would have to find and evict it; the
   * settling of every write then skips the cache for them. @default none
   */
  uncached?: (key: string) => boolean;
  onWriteFailure?: (error: unknown) => void;
}

export class StagedStore {
  /** Written but not yet durable: key -> the op that wrote it last (compared by identity on settle). */
  private readonly staged = new Map<string, StagedOp>();
  private readonly cache: LRUCache<string, { value: unknown; size: number } | { absent: true }>;
  private readonly committer: GroupCommitter;
  private readonly uncached: (key: string) => boolean;
  private failureCount = 0;
  /** Reads of keys the cache may hold: answered by it, or not. */
  private readonly cacheCounts = { hits: 0, misses: 0 };
  /** What was staged in this run of the event loop, not yet handed to the group commit. */
  private group: StageGroup | undefined;
  private readonly onCallbackError: ((error: unknown) => void) | undefined;
  /** Store reads in flight, by key: a write of the key that settles meanwhile marks them stale. */
  private readonly reads = new Map<string, Set<{ stale: boolean }>>();

  constructor(
    readonly store: KeyValueStore,
    options: StagedStoreOptions = {},
  ) {
    this.uncached = options.uncached ?? (() => false);
    this.cache = new LRUCache({
      maxSize: options.cacheBytesMax ?? 64 * 1024 * 1024,
      sizeCalculation: (entry) => ('size' in entry ? entry.size + 64 : 64),
    });
    this.onCallbackError = options.onCallbackError;
    this.committer = new GroupCommitter(store, {
      ...options,
      onFailure: (error) => {
        // What was staged may never land: forget it, and anything cached from it.
        this.staged.clear();
        this.cache.clear();
        this.failureCount++;
        for (const set of this.reads.values()) for (const token of set) token.stale = true;
        options.onWriteFailure?.(error);
      },
    });
  }

  /**
   * The value of `key` as staged, else as stored; `undefined` when absent. Treat as immutable.
   * With `durable`, staged writes are ignored: what clients read must never be something that
   * could still be lost.
   */
  async get<T>(key: string, options?: { durable?: boolean }): Promise<T | undefined> {
    const durable = options?.durable === true;
    for (let attempt = 1; ; attempt++) {
      const now = this.peek<T>(key, durable);
      if (now !== NOT_NOW) return now;
      const [read] = await this.load([key]);
      // A write of this key settled while we read: what we read may predate it, look again.
      if (read!.stale && attempt < 3) continue;
      return read!.value as T | undefined;
    }
  }

  /**
   * `get` without a promise when the answer is at hand: staged, cached, or read on this thread
   * (synchronous reads, the default); NOT_NOW when it would take a read on the thread pool. A
   * write applies hundreds of thousands of changes a second this way: an `await` per read, even
   * of a value at hand, costs a promise and a turn of the microtask queue each.
   */
  getNow<T>(key: string): T | undefined | typeof NOT_NOW {
    return this.peek<T>(key, false);
  }

  private peek<T>(key: string, durable: boolean): T | undefined | typeof NOT_NOW {
    const staged = durable ? undefined : this.staged.get(key);
    if (staged !== undefined) return staged.type === 'del' ? undefined : (staged.value as T);
    if (!this.uncached(key)) {
      const cached = this.cache.get(key);
      if (cached !== undefined) {
        this.cacheCounts.hits++;
        return 'absent' in cached ? undefined : (cached.value as T);
      }
      this.cacheCounts.misses++;
    }
    if (this.store.getSync !== undefined) return this.readSync(key) as T | undefined;
    return NOT_NOW;
  }

  /** The read cache: bytes held (as it counts them) and its budget, entries, and reads it answered or not. */
  cacheStats(): { bytes: number; budget: number; entries: number; hits: number; misses: number } {
    return { bytes: this.cache.calculatedSize, budget: this.cache.maxSize, entries: this.cache.size, ...this.cacheCounts };
  }

  /**
   * A read that completes on this thread: no write can settle during it, so what it reads is
   * current and safe to cache. An absent key is not cached: LevelDB's Bloom filter answers as fast.
   */
  private readSync(key: string): unknown {
    const raw = this.store.getSync!(key);
    if (raw === undefined) return undefined;
    const value: unknown = JSON.parse(raw);
    if (!this.uncached(key)) this.cache.set(key, { value, size: raw.length });
    return value;
  }

  /**
   * Loads into the cache, in one store call, the keys that are neither staged nor cached: later
   * `get`s of them are then answered from memory. Purely an optimisation.
   */
  async prefetch(keys: readonly string[]): Promise<void> {
    if (this.store.syncReads === true) return;
    const missing = [...new Set(keys)].filter((key) => !this.staged.has(key) && !this.cache.has(key));
    if (missing.length > 0) await this.load(missing);
  }

  /**
   * Reads keys from the store and caches each, unless a write of it settled during the read
   * (then the value read may be older than the one written, and is returned marked stale).
   */
  private async load(keys: string[]): Promise<Array<{ value: unknown; stale: boolean }>> {
    const tokens = keys.map((key) => {
      const token = { stale: false };
      let set = this.reads.get(key);
      if (set === undefined) this.reads.set(key, (set = new Set()));
      set.add(token);
      return token;
    });
    try {
      const raws = keys.length === 1 ? [await this.store.get(keys[0]!)] : await this.store.getMany(keys);
      return keys.map((key, i) => {
        const raw = raws[i];
        const value: unknown = raw === undefined ? undefined : JSON.parse(raw);
        const stale = tokens[i]!.stale;
        // An absent key is worth remembering only when reading it again would mean a trip to
        // another thread (with synchronous reads, the Bloom filter answers as fast as the LRU).
        if (!stale && !this.uncached(key) && (raw !== undefined || this.store.syncReads !== true)) {
          this.cache.set(key, raw === undefined ? { absent: true } : { value, size: raw.length });
        }
        return { value, stale };
      });
    } finally {
      keys.forEach((key, i) => {
        const set = this.reads.get(key);
        set?.delete(tokens[i]!);
        if (set?.size === 0) this.reads.delete(key);
      });
    }
  }

  /**
   * Stages `ops` (visible to `get` at once) and resolves when they are durable. `onDurable` runs
   * synchronously when they are, in staging order.
   *
   * What is staged in one run of the event loop (a request's changes, say) goes to the group
   * commit as one submission, sealed at the end of the run: one promise and one entry in the
   * commit queue for all of them instead of one per change. The ops of each call still land
   * together and in order, since the whole group lands in one batch.
   */
  stage(ops: StagedOp[], onDurable?: () => void): Promise<void> {
    let group = this.group;
    if (group === undefined) {
      let settle!: StageGroup['settle'];
      const promise = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      group = this.group = { writes: [], parts: [], promise, settle };
      queueMicrotask(this.seal);
    }
    // Every change goes through here: no per-op wrappers, and each op is its own staged entry
    // (compared by identity when it settles).
    const writes = group.writes;
    group.parts.push({ ops, from: writes.length, onDurable });
    // A change writes the same object under several keys, one after the other (entity and
    // version, log and ccid): encode each object once.
    let lastValue: unknown = undefined;
    let lastRaw = '';
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.type === 'put') {
        if (op.value !== lastValue || i === 0) {
          lastValue = op.value;
          lastRaw = JSON.stringify(op.value);
        }
        writes.push({ type: 'put', key: op.key, value: lastRaw });
      } else {
        writes.push({ type: 'del', key: op.key });
      }
      this.staged.set(op.key, op);
    }
    return group.promise;
  }

  /** Hands the open group to the group commit (see `stage`). */
  private readonly seal = (): void => {
    const group = this.group;
    if (group === undefined) return;
    this.group = undefined;
    this.committer.submit(group.writes, () => this.settle(group)).then(group.settle.resolve, group.settle.reject);
  };

  /** A group is durable: what it wrote is now what the store holds. */
  private settle(group: StageGroup): void {
    const { writes } = group;
    for (const { ops, from, onDurable } of group.parts) {
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        const key = op.key;
        const reading = this.reads.get(key);
        if (reading !== undefined) for (const token of reading) token.stale = true;
        // The cache holds what was read: a write refreshes a key the cache holds, and leaves the
        // others out. A key written but not read since (a new entity, most of an import) would
        // only push out keys that are read; the first read of it takes it in (a LevelDB read of
        // a recent write, from memory). A deleted key leaves the cache rather than taking a place
        // in it as "absent": an entry costs several times the 64 bytes its budget counts.
        if (!this.uncached(key) && this.cache.has(key)) {
          if (op.type === 'put') this.cache.set(key, { value: op.value, size: (writes[from + i] as { value: string }).value.length });
          else this.cache.delete(key);
        }
        if (this.staged.get(key) === op) this.staged.delete(key);
      }
      if (onDurable === undefined) continue;
      try {
        onDurable();
      } catch (error) {
        // A listener's failure must not undo or stall durable writes, nor keep the group's
        // later callbacks from running: report it and go on.
        this.onCallbackError?.(error);
      }
    }
  }

  /** How many writes have failed (each one discarded all staged state). */
  get failures(): number {
    return this.failureCount;
  }

  /** Resolves when everything staged so far is durable. */
  flush(): Promise<void> {
    this.seal();
    return this.committer.flush();
  }

  /** Durable entries of a key range, values decoded. */
  async *entries<T>(range: RangeOptions): AsyncIterable<[string, T]> {
    for await (const [key, raw] of this.store.entries(range)) yield [key, JSON.parse(raw) as T];
  }

  /** A page of durable entries, values decoded: one store call, no per-entry promise. */
  async page<T>(range: RangeOptions & { limit: number }): Promise<Array<[string, T]>> {
    return (await this.store.page(range)).map(([key, raw]) => [key, JSON.parse(raw) as T]);
  }

  /**
   * Deletes everything under `prefix` for good, cached copies included: once what is staged is
   * durable, so that nothing staged lands after the deletion.
   */
  async purge(prefix: string): Promise<void> {
    await this.flush();
    const range = { gte: prefix, lt: prefixEnd(prefix) };
    await this.store.clear(range);
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key);
    // Deleted is not yet erased: LevelDB keeps the old values in its files until it compacts them.
    await this.store.compact?.(range);
  }

  /** Deletes a range of garbage (keys no reader will ask for again). */
  async clear(range: RangeOptions): Promise<void> {
    await this.store.clear(range);
  }

  /** Whether `prefetch` does anything: with synchronous point reads, reading ahead gains nothing. */
  get prefetches(): boolean {
    return this.store.syncReads !== true;
  }

  get stagedCount(): number {
    return this.staged.size;
  }
}
