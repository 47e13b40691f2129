/**
 * The storage interface the engine is written against. LevelDB (`level-store.ts`) is the
 * production implementation; every implementation keeps these promises:
 * - `write(ops, {sync: true})` is atomic and durable when it resolves;
 * - iterators see a consistent snapshot taken when they are created, in key order.
 * Values are JSON strings: encoding happens once, in the layer above, which also sizes them.
 */
export type WriteOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export interface RangeOptions {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  limit?: number;
}

export interface KeyValueStore {
  /**
   * Point reads complete without waiting for another thread (the promise is already settled):
   * batching or caching them ahead of time gains nothing.
   */
  readonly syncReads?: boolean;
  get(key: string): Promise<string | undefined>;
  /** With `syncReads`: the same read, without a promise (nothing can happen in between). */
  getSync?(key: string): string | undefined;
  /** Several point reads in one call (one trip to LevelDB's thread pool instead of many). */
  getMany(keys: string[]): Promise<Array<string | undefined>>;
  write(ops: WriteOp[], options: { sync: boolean }): Promise<void>;
  entries(range: RangeOptions): AsyncIterable<[string, string]>;
  /** At most `limit` entries of a range, read at once (a page of a log). */
  page(range: RangeOptions & { limit: number }): Promise<Array<[string, string]>>;
  /** Deletes a key range; not atomic with writes, used only for garbage nobody reads any more. */
  clear(range: RangeOptions): Promise<void>;
  /** Rewrites a key range's files, so that deleted values are gone from disk too (optional). */
  compact?(range: { gte: string; lt: string }): Promise<void>;
  close(): Promise<void>;
}

/** The smallest string greater than every string starting with `prefix`. */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
