/**
 * The engine's view of storage. Point reads see staged writes at once; `durable` reads and range
 * reads see only what is durable, because that is all a client may ever be shown; hot keys are
 * served from an LRU cache; a failed write forgets everything staged.
 *
 * Every suite runs on both KeyValueStore implementations the tests use: LevelStore (the
 * production one, in a temp dir) and the in-memory fake, which first passes the same
 * conformance checks so that it cannot drift from LevelDB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelStore } from '../../src/storage/level-store.js';
import { StagedStore, type StagedStoreOptions } from '../../src/storage/staged-store.js';
import { prefixEnd, type KeyValueStore } from '../../src/storage/store.js';
import { GatedStore, MemoryStore, collectEntries, compareKeys, settle } from './memory-store.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Implementation {
  name: string;
  open(): Promise<KeyValueStore>;
}

const implementations: Implementation[] = [
  {
    name: 'MemoryStore',
    open: async () => new MemoryStore(),
  },
  ...[false, true].map((asyncReads) => ({
    name: asyncReads ? 'LevelStore (asyncReads)' : 'LevelStore',
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'syncgraph-unit-'));
      const store = await LevelStore.open(dir, { asyncReads });
      cleanups.push(async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      });
      return store;
    },
  })),
];

const put = (key: string, value: unknown) => ({ type: 'put' as const, key, value: JSON.stringify(value) });

describe.each(implementations)('KeyValueStore conformance: $name', ({ open }) => {
  it('reads back what a batch wrote, and nothing for a missing key', async () => {
    const store = await open();
    expect(await store.get('missing')).toBeUndefined();
    await store.write([put('a', 1), put('b', 2), { type: 'del', key: 'b' }, put('c', 3)], { sync: true });
    expect(await store.get('a')).toBe('1');
    expect(await store.get('b')).toBeUndefined();
    expect(await store.get('c')).toBe('3');
  });

  it('accepts an empty batch', async () => {
    const store = await open();
    await store.write([], { sync: true });
    expect(await collectEntries(store.entries({}))).toEqual([]);
  });

  it('iterates in UTF-8 byte order, as LevelDB compares keys', async () => {
    const store = await open();
    // U+FFFF sorts after U+1F600 in UTF-16 code units but before it in UTF-8 bytes.
    const keys = ['b', 'a', 'A', 'a!', 'a~', 'aé', 'a\uffff', 'a😀', 'a!b'];
    await store.write(keys.map((k) => put(k, k)), { sync: true });
    const iterated = (await collectEntries(store.entries({}))).map(([k]) => k);
    expect(iterated).toEqual([...keys].sort(compareKeys));
    expect(iterated.indexOf('a\uffff')).toBeLessThan(iterated.indexOf('a😀'));
  });

  it('honours gt, gte, lt, lte, reverse and limit', async () => {
    const store = await open();
    await store.write(['k1', 'k2', 'k3', 'k4', 'k5'].map((k) => put(k, k)), { sync: true });
    const keys = async (range: Parameters<KeyValueStore['entries']>[0]) => (await collectEntries(store.entries(range))).map(([k]) => k);
    expect(await keys({ gt: 'k1', lt: 'k4' })).toEqual(['k2', 'k3']);
    expect(await keys({ gte: 'k2', lte: 'k4' })).toEqual(['k2', 'k3', 'k4']);
    expect(await keys({ gte: 'k2', reverse: true })).toEqual(['k5', 'k4', 'k3', 'k2']);
    expect(await keys({ limit: 2 })).toEqual(['k1', 'k2']);
    expect(await keys({ lt: 'k5', reverse: true, limit: 2 })).toEqual(['k4', 'k3']);
    expect(await keys({ gt: 'k5' })).toEqual([]);
  });

  it('iterates a snapshot: writes made during an iteration are not seen by it', async () => {
    const store = await open();
    await store.write([put('a', 1), put('c', 3), put('e', 5)], { sync: true });
    const seen: Array<[string, string]> = [];
    for await (const entry of store.entries({})) {
      if (seen.length === 0) await store.write([put('b', 2), { type: 'del', key: 'e' }, put('c', 'changed')], { sync: true });
      seen.push(entry);
    }
    expect(seen).toEqual([
      ['a', '1'],
      ['c', '3'],
      ['e', '5'],
    ]);
  });

  it('clears a range and nothing else', async () => {
    const store = await open();
    await store.write(['p!1', 'p!2', 'q!1'].map((k) => put(k, k)), { sync: true });
    await store.clear({ gte: 'p!', lt: prefixEnd('p!') });
    expect((await collectEntries(store.entries({}))).map(([k]) => k)).toEqual(['q!1']);
  });

  it('selects exactly the keys of a prefix with [prefix, prefixEnd(prefix))', async () => {
    const store = await open();
    const keyArb = fc.string({ unit: fc.constantFrom('a', 'b', '!', '~', 'é', 'ÿ', '€'), minLength: 1, maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(keyArb, { maxLength: 20 }), keyArb, async (keys, prefix) => {
        await store.clear({});
        await store.write(keys.map((k) => put(k, k)), { sync: true });
        const inRange = (await collectEntries(store.entries({ gte: prefix, lt: prefixEnd(prefix) }))).map(([k]) => k);
        expect(inRange).toEqual(keys.filter((k) => k.startsWith(prefix)).sort(compareKeys));
      }),
      { numRuns: 40 },
    );
  });
});

describe.each(implementations)('StagedStore over $name', ({ open }) => {
  async function setup(options: StagedStoreOptions = {}) {
    const store = new GatedStore(await open());
    const failures: unknown[] = [];
    const staged = new StagedStore(store, { ...options, onWriteFailure: (error) => failures.push(error) });
    return { store, staged, failures };
  }

  describe('staging', () => {
    it('shows a staged put to get at once, but not to durable reads or ranges', async () => {
      const { store, staged } = await setup();
      const done = staged.stage([{ type: 'put', key: 'k', value: { n: 1 } }]);
      expect(await staged.get('k')).toEqual({ n: 1 });
      expect(await staged.get('k', { durable: true })).toBeUndefined();
      expect(await collectEntries(staged.entries({}))).toEqual([]);
      expect(staged.stagedCount).toBe(1);

      await (await store.writeAt(0)).succeed();
      await done;
      expect(await staged.get('k', { durable: true })).toEqual({ n: 1 });
      expect(await collectEntries(staged.entries({}))).toEqual([['k', { n: 1 }]]);
      expect(staged.stagedCount).toBe(0);
    });

    it('shows a staged delete to get at once, and the old value to durable reads until it lands', async () => {
      const { store, staged } = await setup();
      const first = staged.stage([{ type: 'put', key: 'k', value: 'old' }]);
      await (await store.writeAt(0)).succeed();
      await first;
      const done = staged.stage([{ type: 'del', key: 'k' }]);
      expect(await staged.get('k')).toBeUndefined();
      expect(await staged.get('k', { durable: true })).toBe('old');
      expect(await collectEntries(staged.entries({}))).toEqual([['k', 'old']]);
      await (await store.writeAt(1)).succeed();
      await done;
      expect(await staged.get('k', { durable: true })).toBeUndefined();
      expect(await collectEntries(staged.entries({}))).toEqual([]);
    });

    it('keeps showing a later staged value when an earlier write of the same key lands', async () => {
      const { store, staged } = await setup();
      const first = staged.stage([{ type: 'put', key: 'k', value: 1 }]);
      const inFlight = await store.writeAt(0);
      const second = staged.stage([{ type: 'put', key: 'k', value: 2 }]); // queued behind the first
      await inFlight.succeed();
      await first;
      expect(await staged.get('k')).toBe(2);
      expect(await staged.get('k', { durable: true })).toBe(1);
      await (await store.writeAt(1)).succeed();
      await second;
      expect(await staged.get('k')).toBe(2);
      expect(await staged.get('k', { durable: true })).toBe(2);
    });

    it('runs onDurable in staging order, once the values are durable', async () => {
      const { store, staged } = await setup();
      const order: string[] = [];
      const durableSeen: Array<Promise<unknown>> = [];
      const stage = (key: string) =>
        staged.stage([{ type: 'put', key, value: key }], () => {
          order.push(key);
          durableSeen.push(staged.get(key, { durable: true }));
        });
      const all = [stage('a')];
      const inFlight = await store.writeAt(0);
      all.push(stage('b'), stage('c'));
      await inFlight.succeed();
      await (await store.writeAt(1)).succeed();
      await Promise.all(all);
      expect(order).toEqual(['a', 'b', 'c']);
      expect(await Promise.all(durableSeen)).toEqual(['a', 'b', 'c']);
    });

    it('resolves flush once everything staged is durable', async () => {
      const { store, staged } = await setup();
      staged.stage([{ type: 'put', key: 'a', value: 1 }]);
      const inFlight = await store.writeAt(0);
      staged.stage([{ type: 'put', key: 'b', value: 2 }]);
      const flushed = staged.flush();
      await inFlight.succeed();
      await (await store.writeAt(1)).succeed();
      await flushed;
      expect(await collectEntries(staged.entries({}))).toEqual([
        ['a', 1],
        ['b', 2],
      ]);
    });
  });

  describe('cache', () => {
    it('takes a written key in on its first read, and refreshes a cached key when it is written', async () => {
      const { store, staged } = await setup();
      const done = staged.stage([{ type: 'put', key: 'k', value: 'v' }]);
      await (await store.writeAt(0)).succeed();
      await done;
      const reads = store.gets;
      // Written, never read: not in the cache (a flood of new keys must not push out read ones).
      expect(await staged.get('k')).toBe('v');
      expect(store.gets).toBe(reads + 1);
      expect(await staged.get('k', { durable: true })).toBe('v');
      expect(store.gets).toBe(reads + 1);
      // Cached now: its next write refreshes the cached value, read without the store.
      const again = staged.stage([{ type: 'put', key: 'k', value: 'w' }]);
      await (await store.writeAt(1)).succeed();
      await again;
      expect(await staged.get('k', { durable: true })).toBe('w');
      expect(await staged.get('k')).toBe('w');
      expect(store.gets).toBe(reads + 1);
    });

    it('reads a key from the store once, then from the cache, absent keys included', async () => {
      const { store, staged } = await setup();
      await store.inner.write([put('k', [1, 2])], { sync: true });
      expect(await staged.get('k')).toEqual([1, 2]);
      expect(await staged.get('k')).toEqual([1, 2]);
      expect(await staged.get('none')).toBeUndefined();
      expect(await staged.get('none', { durable: true })).toBeUndefined();
      expect(store.gets).toBe(2);
    });

    it('is bounded: a value larger than the budget is read from the store every time', async () => {
      const { store, staged } = await setup({ cacheBytesMax: 200 });
      await store.inner.write([put('big', 'x'.repeat(500)), put('small', 's')], { sync: true });
      await staged.get('big');
      await staged.get('big');
      expect(store.gets).toBe(2);
      await staged.get('small');
      await staged.get('small');
      expect(store.gets).toBe(3);
    });

    it('never holds an uncached key: each read of it goes to the store, and its writes are seen', async () => {
      const { store, staged } = await setup({ uncached: (key) => key.startsWith('log!') });
      await store.inner.write([put('log!1', 'a'), put('kept', 'b')], { sync: true });
      expect(await staged.get('log!1')).toBe('a');
      expect(await staged.get('log!1')).toBe('a');
      expect(await staged.get('kept')).toBe('b');
      expect(await staged.get('kept')).toBe('b');
      expect(store.gets).toBe(3);
      // Written, then deleted: the durable value is read from the store each time, never stale.
      const write = staged.stage([{ type: 'put', key: 'log!1', value: 'a2' }]);
      await (await store.writeAt(0)).succeed();
      await write;
      expect(await staged.get('log!1', { durable: true })).toBe('a2');
      const del = staged.stage([{ type: 'del', key: 'log!1' }]);
      await (await store.writeAt(1)).succeed();
      await del;
      expect(await staged.get('log!1')).toBeUndefined();
      expect(store.gets).toBe(5);
    });

    it('does not cache a read that raced a write of the same key', async () => {
      const { store, staged } = await setup();
      await store.inner.write([put('k', 'v0')], { sync: true });
      const held = store.holdNextGet();
      const racing = staged.get('k', { durable: true });
      const read = await held; // the read has seen v0 and is held
      expect(read.value).toBe(JSON.stringify('v0'));
      const write = staged.stage([{ type: 'put', key: 'k', value: 'v1' }]);
      await (await store.writeAt(0)).succeed();
      await write;
      read.release();
      expect(await racing).toBe('v1'); // it looked again rather than return what it read before
      expect(await staged.get('k', { durable: true })).toBe('v1');
      expect(await staged.get('k')).toBe('v1');
    });
  });

  describe('write failure', () => {
    it('rejects the staged writes, forgets them, and reads the durable values again', async () => {
      const { store, staged, failures } = await setup();
      const base = staged.stage([
        { type: 'put', key: 'k', value: 'durable' },
        { type: 'put', key: 'gone', value: 'durable' },
      ]);
      await (await store.writeAt(0)).succeed();
      await base;
      expect(await staged.get('k')).toBe('durable'); // cached

      const inFlight = staged.stage([{ type: 'put', key: 'k', value: 'lost' }]).catch((e: unknown) => e);
      const write = await store.writeAt(1);
      const queued = staged
        .stage([
          { type: 'put', key: 'new', value: 'lost' },
          { type: 'del', key: 'gone' },
        ])
        .catch((e: unknown) => e);
      expect(await staged.get('k')).toBe('lost');
      expect(await staged.get('new')).toBe('lost');
      expect(await staged.get('gone')).toBeUndefined();

      const disk = new Error('EIO');
      write.fail(disk);
      expect(await inFlight).toBe(disk);
      expect(await queued).toBe(disk);
      expect(failures).toEqual([disk]);
      expect(staged.stagedCount).toBe(0);
      expect(await staged.get('k')).toBe('durable');
      expect(await staged.get('new')).toBeUndefined();
      expect(await staged.get('gone')).toBe('durable');
      expect(store.writes).toHaveLength(2); // the queued stage was never written
    });

    it('keeps working after a failure', async () => {
      const { store, staged } = await setup();
      const lost = staged.stage([{ type: 'put', key: 'k', value: 1 }]).catch(() => 'lost');
      (await store.writeAt(0)).fail(new Error('EIO'));
      expect(await lost).toBe('lost');
      const done = staged.stage([{ type: 'put', key: 'k', value: 2 }]);
      expect(await staged.get('k')).toBe(2);
      await (await store.writeAt(1)).succeed();
      await done;
      await settle();
      expect(await staged.get('k', { durable: true })).toBe(2);
    });
  });
});
