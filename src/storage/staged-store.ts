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
import type { KeyValueStore, RangeOptions, WriteOp } from './store.js';

export type StagedOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

const ABSENT = Symbol('absent');
type Cached = { value: unknown } | typeof ABSENT;

export interface StagedStoreOptions extends GroupCommitOptions {
  /** Budget of the read cache, in bytes of encoded values (counted as UTF-16 units). @default 64 MiB */
  cacheBytesMax?: number;
  onWriteFailure?: (error: unknown) => void;
}

export class StagedStore {
  /** Written but not yet durable: key -> the submission's entry (compared by identity on settle). */
  private readonly staged = new Map<string, { value: unknown } | typeof ABSENT>();
  private readonly cache: LRUCache<string, { value: unknown; size: number } | { absent: true }>;
  private readonly committer: GroupCommitter;
  /** Counts settled submissions, so a read racing a write can tell. */
  private settledEpoch = 0;

  constructor(
    readonly store: KeyValueStore,
    options: StagedStoreOptions = {},
  ) {
    this.cache = new LRUCache({
      maxSize: options.cacheBytesMax ?? 64 * 1024 * 1024,
      sizeCalculation: (entry) => ('size' in entry ? entry.size + 64 : 64),
    });
    this.committer = new GroupCommitter(store, {
      ...options,
      onFailure: (error) => {
        // What was staged may never land: forget it, and anything cached from it.
        this.staged.clear();
        this.cache.clear();
        this.settledEpoch++;
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
      const staged = durable ? undefined : this.staged.get(key);
      if (staged !== undefined) return staged === ABSENT ? undefined : (staged.value as T);
      const cached = this.cache.get(key);
      if (cached !== undefined) return 'absent' in cached ? undefined : (cached.value as T);
      const epoch = this.settledEpoch;
      const raw = await this.store.get(key);
      // A write settled while we read: what we read may predate it, so look again rather than
      // caching a stale value.
      if (epoch !== this.settledEpoch) {
        if (attempt < 3) continue;
        // Under a write storm, serve what we read (it was durable) but do not cache it.
        return raw === undefined ? undefined : (JSON.parse(raw) as T);
      }
      if (raw === undefined) {
        this.cache.set(key, { absent: true });
        return undefined;
      }
      const value = JSON.parse(raw) as T;
      this.cache.set(key, { value, size: raw.length });
      return value;
    }
  }

  /**
   * Stages `ops` (visible to `get` at once) and resolves when they are durable. `onDurable` runs
   * synchronously when they are, in staging order.
   */
  stage(ops: StagedOp[], onDurable?: () => void): Promise<void> {
    const entries: Array<[string, Cached, number]> = [];
    const writes: WriteOp[] = [];
    for (const op of ops) {
      if (op.type === 'put') {
        const raw = JSON.stringify(op.value);
        const entry = { value: op.value };
        entries.push([op.key, entry, raw.length]);
        writes.push({ type: 'put', key: op.key, value: raw });
      } else {
        entries.push([op.key, ABSENT, 0]);
        writes.push({ type: 'del', key: op.key });
      }
    }
    for (const [key, entry] of entries) this.staged.set(key, entry);
    return this.committer.submit(writes, () => {
      this.settledEpoch++;
      for (const [key, entry, size] of entries) {
        this.cache.set(key, entry === ABSENT ? { absent: true } : { value: entry.value, size });
        if (this.staged.get(key) === entry) this.staged.delete(key);
      }
      onDurable?.();
    });
  }

  /** Resolves when everything staged so far is durable. */
  flush(): Promise<void> {
    return this.committer.flush();
  }

  /** Durable entries of a key range, values decoded. */
  async *entries<T>(range: RangeOptions): AsyncIterable<[string, T]> {
    for await (const [key, raw] of this.store.entries(range)) yield [key, JSON.parse(raw) as T];
  }

  /** Deletes a range of garbage (keys no reader will ask for again). */
  async clear(range: RangeOptions): Promise<void> {
    await this.store.clear(range);
  }

  get stagedCount(): number {
    return this.staged.size;
  }
}
