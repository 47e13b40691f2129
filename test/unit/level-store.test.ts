/** The LevelDB store: pages are whole even past LevelDB's per-call byte budget. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LevelStore } from '../../src/storage/level-store.js';

const dir = mkdtempSync(join(tmpdir(), 'syncgraph-level-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LevelStore.page', () => {
  it('returns `limit` entries in key order when the range holds more, whatever their size', async () => {
    const store = await LevelStore.open(dir);
    try {
      const value = 'v'.repeat(2048);
      const ops = Array.from({ length: 2000 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(5, '0')}`, value }));
      await store.write(ops, { sync: false });
      const page = await store.page({ gte: 'k', lt: 'l', limit: 1500 });
      expect(page).toHaveLength(1500);
      expect(page.map(([key]) => key)).toEqual(ops.slice(0, 1500).map((op) => op.key));
      const rest = await store.page({ gt: page.at(-1)![0], lt: 'l', limit: 1500 });
      expect(rest).toHaveLength(500);
      expect(await store.getMany(['k00000', 'missing'])).toEqual([value, undefined]);
    } finally {
      await store.close();
    }
  });
});
