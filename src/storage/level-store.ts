/**
 * The LevelDB implementation of KeyValueStore, on `level` (classic-level in Node).
 *
 * Point reads are synchronous by default. The engine's reads are the few keys a change touches
 * (its entity, its ccid), almost always in memory: the block cache, the page cache, or absent
 * and answered by a Bloom filter. Synchronous, such a read costs a few microseconds; on the
 * thread pool it costs a hand-off each way and, on a busy machine, a wake-up of a pool thread
 * that preempts the event loop: measured here, mutations over graphql-ws went 15-40% faster
 * (npm run bench, W1). A read that does go to a slow disk then stalls the event loop, so a node
 * whose data is much larger than its memory should use `asyncReads`. Range reads (pages,
 * replays) always run on the pool: they are long.
 */
import { Level } from 'level';
import type { KeyValueStore, RangeOptions, WriteOp } from './store.js';

export interface LevelStoreOptions {
  /** Point reads on the thread pool. @default false */
  asyncReads?: boolean;
  /**
   * LevelDB's memtable size (`writeBufferSize`): writes land there, and each time it fills it is
   * written out as a new level-0 file for compaction to merge. LevelDB's 4 MiB default fills every
   * fraction of a second under a steady write load, and the compactions that follow take CPU from
   * the node (measured with npm run bench, W1b: about a fifth more changes/s with 64 MiB). The
   * cost is memory, at most twice this (the memtable being filled and the one being written out),
   * and a longer log to replay at start after a crash. @default 64 MiB
   */
  writeBufferBytes?: number;
}

export class LevelStore implements KeyValueStore {
  readonly syncReads: boolean;
  /** Present only with synchronous reads (the StagedStore then reads without a promise). */
  readonly getSync: ((key: string) => string | undefined) | undefined;

  private constructor(
    private readonly db: Level<string, string>,
    private readonly asyncReads: boolean,
  ) {
    this.syncReads = !asyncReads;
    this.getSync = asyncReads ? undefined : (key) => this.db.getSync(key) ?? undefined;
  }

  static async open(location: string, options: LevelStoreOptions = {}): Promise<LevelStore> {
    const db = new Level<string, string>(location, {
      keyEncoding: 'utf8',
      valueEncoding: 'utf8',
      writeBufferSize: options.writeBufferBytes ?? 64 * 1024 * 1024,
    });
    await db.open();
    return new LevelStore(db, options.asyncReads ?? false);
  }

  async get(key: string): Promise<string | undefined> {
    return (this.asyncReads ? await this.db.get(key) : this.db.getSync(key)) ?? undefined;
  }



  async compact(range: { gte: string; lt: string }): Promise<void> {
    // classic-level has it; `level`'s portable type does not declare it.
    const db = this.db as unknown as { compactRange?: (start: string, end: string) => Promise<void> };
    await db.compactRange?.(range.gte, range.lt);
  }

  async getMany(keys: string[]): Promise<Array<string | undefined>> {
    if (keys.length === 0) return [];
    if (!this.asyncReads) return keys.map((key) => this.db.getSync(key) ?? undefined);
    return (await this.db.getMany(keys)).map((v) => v ?? undefined);
  }

  async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    if (ops.length === 0) return;
    // A chained batch: abstract-level's array form normalises every operation in JavaScript
    // (about 6 µs each, measured), the chained form hands each to the binding (under 1 µs).
    const batch = this.db.batch();
    for (const op of ops) {
      if (op.type === 'put') batch.put(op.key, op.value);
      else batch.del(op.key);
    }
    // `sync` is classic-level's option: fsync before resolving, which is what "durable" means.
    await batch.write({ sync: options.sync } as Parameters<typeof batch.write>[0]);
  }

  async *entries(range: RangeOptions): AsyncIterable<[string, string]> {
    const iterator = this.db.iterator({ ...range, limit: range.limit ?? -1 });
    try {
      for (;;) {
        // Pull in chunks: one native call per chunk instead of one per entry.
        const chunk = await iterator.nextv(256);
        if (chunk.length === 0) return;
        for (const entry of chunk) yield entry;
      }
    } finally {
      await iterator.close();
    }
  }

  async page(range: RangeOptions & { limit: number }): Promise<Array<[string, string]>> {
    const iterator = this.db.iterator(range);
    try {
      // nextv may return fewer entries than asked (it stops at a byte budget): only an empty
      // answer means the end.
      const out: Array<[string, string]> = [];
      while (out.length < range.limit) {
        const chunk = await iterator.nextv(range.limit - out.length);
        if (chunk.length === 0) break;
        for (const entry of chunk) out.push(entry);
      }
      return out;
    } finally {
      await iterator.close();
    }
  }

  async clear(range: RangeOptions): Promise<void> {
    await this.db.clear({ ...range, limit: range.limit ?? -1 });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
