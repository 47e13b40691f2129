/**
 * Baseline: classic-level in this process, in a temporary directory, with JSON string values of
 * about `valueBytes` bytes (what syncgraph stores):
 *  - batched puts: batches of `batchSize` puts, not synced, one batch at a time;
 *  - synced puts: single puts with `{ sync: true }` (an fsync each), one at a time.
 */
import { join } from 'node:path';
import { Level } from 'level';
import { removeTempDir, tempDir } from '../support/services.js';

export interface RawLevelResult {
  batchedPutsPerSecond: number;
  batchedPuts: number;
  syncedPutsPerSecond: number;
  syncedPuts: number;
  valueBytes: number;
}

export async function runRawLevel(options: { seconds: number; batchSize: number; valueBytes: number }): Promise<RawLevelResult> {
  const dir = tempDir('syncgraph-bench-level-');
  const db = new Level<string, string>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open();
    const text = 'x'.repeat(Math.max(0, options.valueBytes - 50));
    let n = 0;
    const value = () => JSON.stringify({ n, t: Date.now(), text });
    const key = () => `p!bench!c!${(++n).toString().padStart(16, '0')}`;

    // Warm-up: a few batches, so the first measured batch does not pay for opening files.
    for (let i = 0; i < 20; i++) {
      await db.batch(Array.from({ length: options.batchSize }, () => ({ type: 'put' as const, key: key(), value: value() })));
    }

    let batchedPuts = 0;
    let started = performance.now();
    let end = started + options.seconds * 1000;
    while (performance.now() < end) {
      const ops = [];
      for (let i = 0; i < options.batchSize; i++) ops.push({ type: 'put' as const, key: key(), value: value() });
      await db.batch(ops);
      batchedPuts += options.batchSize;
    }
    const batchedPutsPerSecond = batchedPuts / ((performance.now() - started) / 1000);

    let syncedPuts = 0;
    started = performance.now();
    end = started + options.seconds * 1000;
    while (performance.now() < end) {
      await db.put(key(), value(), { sync: true });
      syncedPuts++;
    }
    const syncedPutsPerSecond = syncedPuts / ((performance.now() - started) / 1000);
    return { batchedPutsPerSecond, batchedPuts, syncedPutsPerSecond, syncedPuts, valueBytes: value().length };
  } finally {
    await db.close().catch(() => undefined);
    removeTempDir(dir);
  }
}
