/**
 * History collection (Partition.collectHistory): superseded change records and tombstones older
 * than the horizon go, ccids older than the window are forgotten, and what is left still gives a
 * reader from the start every live entity. Old cursors expire; recent history and the log's head
 * stay; a write racing the collection is never lost. Property: whatever the writes, collecting
 * leaves exactly the latest record of each live entity among the old ones.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Partition } from '../../src/engine/partition.js';
import { openTestEngine } from './engine-fixture.js';
import { MemoryStore } from './memory-store.js';

const HOUR = 3_600_000;
const admin = { admin: true };

async function setup(history = { horizonMs: HOUR, ccidWindowMs: HOUR }) {
  let now = 1_700_000_000_000;
  const engine = await openTestEngine(undefined, { now: () => now, history });
  const notes = await engine.partition('default', 'notes');
  let ccid = 0;
  const write = async (key: string, op: 'MODIFY' | 'DELETE', data?: Record<string, unknown>) => {
    const [result] = await notes.submitChanges([{ ccid: (++ccid).toString(16).padStart(8, '0'), key, op, ...(data ? { data } : {}) }], null, admin);
    if (result!.error !== null) throw new Error(result!.error.message);
    return result!;
  };
  return { engine, notes, write, advance: (ms: number) => (now += ms), now: () => now };
}

async function allChanges(partition: Partition) {
  const out = [];
  for (let since: string | null = null; ; ) {
    const page = await partition.changes(since, 1000);
    out.push(...page.changes);
    if (!page.hasMore) return out;
    since = page.cursor;
  }
}

describe('history collection', () => {
  it('keeps the latest record of each live entity, removes superseded ones and tombstones', async () => {
    const { notes, write, advance, now } = await setup();
    await write('a', 'MODIFY', { v: 1 });
    await write('a', 'MODIFY', { v: 2 });
    await write('b', 'MODIFY', { v: 1 });
    await write('c', 'MODIFY', { v: 1 });
    await write('c', 'DELETE');
    const oldCursor = (await notes.changes(null, 2)).cursor;
    advance(2 * HOUR);
    await write('d', 'MODIFY', { v: 1 }); // young, and the log's head
    const collected = await notes.collectHistory(now());
    expect(collected).toMatchObject({ scanned: 5, superseded: 2, tombstones: 1, ccids: 5, done: true });
    // A reader from the start gets every live entity once, at its latest version.
    expect((await allChanges(notes)).map((c) => [c.key, c.version])).toEqual([
      ['a', 2],
      ['b', 1],
      ['d', 1],
    ]);
    expect((await notes.entities(null, null, true)).map((e) => e.key)).toEqual(['a', 'b', 'd']);
    expect(await notes.versions('c')).toEqual([]);
    // A cursor from before the collected part has expired.
    await expect(notes.changes(oldCursor, null)).rejects.toMatchObject({ code: 'INVALID_CURSOR' });
    // A forgotten ccid is a new change again; the write goes on from the entity's version.
    const [again] = await notes.submitChanges([{ ccid: '00000001', key: 'a', op: 'MODIFY', baseVersion: 2, data: { v: 3 } }], null, admin);
    expect(again).toMatchObject({ duplicate: false, change: { version: 3 } });
  });

  it('leaves history younger than the horizon, and the log head however old', async () => {
    const { notes, write, advance, now } = await setup();
    await write('a', 'MODIFY', { v: 1 });
    await write('a', 'MODIFY', { v: 2 });
    advance(30 * 60_000);
    expect(await notes.collectHistory(now())).toMatchObject({ scanned: 0, superseded: 0 });
    await write('z', 'MODIFY', { v: 1 });
    await write('z', 'DELETE');
    advance(10 * HOUR);
    // The tombstone of z is the head of the log: it stays, and so do positions.
    expect(await notes.collectHistory(now())).toMatchObject({ scanned: 3, superseded: 2, tombstones: 0 });
    expect((await allChanges(notes)).map((c) => [c.key, c.op])).toEqual([
      ['a', 'MODIFY'],
      ['z', 'DELETE'],
    ]);
    const next = await write('y', 'MODIFY', { v: 1 });
    expect(next.change!.cursor).not.toBe((await allChanges(notes)).at(-2)!.cursor);
  });

  it('removes a record kept as its entity\'s latest once a later write supersedes it', async () => {
    const { notes, write, advance, now } = await setup();
    await write('a', 'MODIFY', { v: 1 });
    await write('b', 'MODIFY', { v: 1 });
    advance(2 * HOUR);
    await write('head', 'MODIFY', {});
    expect(await notes.collectHistory(now())).toMatchObject({ scanned: 2, superseded: 0 });
    await write('a', 'MODIFY', { v: 2 });
    await write('b', 'DELETE');
    // The next pass reports what the writes removed.
    expect(await notes.collectHistory(now())).toMatchObject({ scanned: 0, superseded: 2 });
    // Nothing of a or b is left before the head but their latest records, written after it.
    expect((await allChanges(notes)).map((c) => [c.key, c.version])).toEqual([
      ['head', 1],
      ['a', 2],
      ['b', 2],
    ]);
  });

  it('lets a reader page from the start through collected history; only a collected deletion expires a cursor', async () => {
    const { notes, write, advance, now } = await setup();
    for (const key of ['a', 'b', 'c', 'd']) await write(key, 'MODIFY', { v: 1 });
    for (const key of ['a', 'b', 'c', 'd']) await write(key, 'MODIFY', { v: 2 });
    advance(2 * HOUR);
    await write('head', 'MODIFY', {});
    await notes.collectHistory(now());
    const seen: string[] = [];
    for (let since: string | null = null; ; ) {
      const page = await notes.changes(since, 1);
      seen.push(...page.changes.map((c) => `${c.key}${c.version}`));
      if (!page.hasMore) break;
      since = page.cursor;
    }
    expect(seen).toEqual(['a2', 'b2', 'c2', 'd2', 'head1']);
    // A reader that read a2 and b2 is fine while nothing after it is collected...
    const afterB = (await notes.changes(null, 2)).cursor;
    await write('d', 'DELETE');
    advance(2 * HOUR);
    await write('head2', 'MODIFY', {});
    expect((await notes.changes(afterB, 10)).changes.map((c) => `${c.key}${c.op === 'DELETE' ? '-' : ''}`)).toEqual(['c', 'head', 'd-', 'head2']);
    // ...but once the deletion of d is collected, it would never learn of it: expired.
    expect(await notes.collectHistory(now())).toMatchObject({ tombstones: 1 });
    await expect(notes.changes(afterB, 10)).rejects.toMatchObject({ code: 'INVALID_CURSOR' });
  });

  it('remembers a ccid for the longer of the horizon and the window', async () => {
    const { notes, write, advance, now } = await setup({ horizonMs: HOUR, ccidWindowMs: 5 * HOUR });
    await write('a', 'MODIFY', { v: 1 });
    await write('b', 'MODIFY', { v: 1 });
    advance(2 * HOUR);
    await notes.collectHistory(now());
    const [retry] = await notes.submitChanges([{ ccid: '00000001', key: 'a', op: 'MODIFY', data: { v: 1 } }], null, admin);
    expect(retry!.duplicate).toBe(true);
  });

  it('forgets the ccids of records EMPTY cleared once past the window; a retry before then is still a duplicate', async () => {
    const { notes, write, advance, now } = await setup();
    await write('a', 'MODIFY', { v: 1 }); // ccid 00000001
    await write('b', 'MODIFY', { v: 1 }); // ccid 00000002
    const [emptied] = await notes.submitChanges([{ ccid: 'e0000001', op: 'EMPTY' }], null, admin);
    expect(emptied!.error).toBeNull();
    await notes.settle(); // the cleared records are gone from the log; their ccids hold them
    await write('c', 'MODIFY', { v: 1 }); // ccid 00000003, after the EMPTY
    const retry = async (ccid: string, key: string) =>
      (await notes.submitChanges([{ ccid, key, op: 'MODIFY', data: { v: 9 } }], null, admin))[0]!;
    // Within the window the sweep meets them too young, and keeps them.
    advance(30 * 60_000);
    expect(await notes.collectHistory(now())).toMatchObject({ ccids: 0 });
    expect(await retry('00000001', 'a')).toMatchObject({ duplicate: true, change: { key: 'a', version: 1 } });
    // Past it, they go: the two cleared ones (the sweep), and the EMPTY's (the log; c's record is
    // the log's head, which stays, with its ccid).
    advance(2 * HOUR);
    expect(await notes.collectHistory(now())).toMatchObject({ ccids: 3, done: true });
    expect(await notes.collectHistory(now())).toMatchObject({ ccids: 0 });
    // Forgotten: a retry now is a new change (in the emptied bucket, a new entity).
    expect(await retry('00000001', 'a')).toMatchObject({ duplicate: false, change: { key: 'a', version: 1 } });
    expect((await notes.entities(null, null, false)).map((e) => e.key)).toEqual(['a', 'c']);
  });

  it('sweeps the ccids of cleared records in budgeted passes that resume where the last stopped', async () => {
    const { notes, write, advance, now } = await setup();
    for (const key of ['a', 'b', 'c', 'd', 'e']) await write(key, 'MODIFY', { v: 1 });
    await notes.submitChanges([{ ccid: 'e0000001', op: 'EMPTY' }], null, admin);
    await notes.settle();
    advance(2 * HOUR);
    let forgotten = 0;
    let passes = 0;
    for (let done = false; !done; passes++) {
      const pass = await notes.collectHistory(now(), 2);
      forgotten += pass.ccids;
      done = pass.done;
    }
    // The five cleared records' ccids and the EMPTY's own (it holds its record too), two a pass;
    // the fourth pass finds the end.
    expect([forgotten, passes]).toEqual([6, 4]);
    const [retry] = await notes.submitChanges([{ ccid: '00000003', key: 'c', op: 'MODIFY', data: { v: 2 } }], null, admin);
    expect(retry).toMatchObject({ duplicate: false, change: { version: 1 } });
  });

  it('works through a long history in budgeted passes', async () => {
    const { notes, write, advance, now } = await setup();
    for (let i = 0; i < 50; i++) await write(`k${i % 5}`, 'MODIFY', { i });
    advance(2 * HOUR);
    await write('head', 'MODIFY', {});
    const passes = [];
    for (;;) {
      const pass = await notes.collectHistory(now(), 12);
      passes.push(pass);
      if (pass.done) break;
    }
    expect(passes.length).toBe(5);
    expect(passes.reduce((n, p) => n + p.superseded, 0)).toBe(45);
    expect((await allChanges(notes)).map((c) => c.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'head']);
  });

  it('never loses a write racing the collection of its entity', async () => {
    const { notes, write, advance, now } = await setup();
    await write('a', 'MODIFY', { v: 1 });
    await write('a', 'DELETE');
    await write('b', 'MODIFY', {});
    advance(2 * HOUR);
    const [collected, revived] = await Promise.all([notes.collectHistory(now()), write('a', 'MODIFY', { v: 'back' })]);
    expect(collected.scanned).toBeGreaterThan(0);
    expect(await notes.entity('a', null)).toMatchObject({ data: { v: 'back' }, deleted: false });
  });

  it('keeps exactly the latest record of each live entity among the old ones (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.boolean()), { minLength: 1, maxLength: 40 }), async (ops) => {
        const { notes, write, advance, now } = await setup();
        const live = new Map<string, number>();
        for (const [key, remove] of ops) {
          if (remove && live.has(key)) {
            await write(key, 'DELETE');
            live.delete(key);
          } else {
            const result = await write(key, 'MODIFY', { n: Math.random() });
            live.set(key, result.change!.version!);
          }
        }
        advance(2 * HOUR);
        await write('zz-head', 'MODIFY', {});
        while (!(await notes.collectHistory(now(), 7)).done);
        // Then every live entity once more: the records collection kept go as they are superseded.
        for (const key of [...live.keys()]) live.set(key, (await write(key, 'MODIFY', { again: true })).change!.version!);
        const left = (await allChanges(notes)).filter((c) => c.key !== 'zz-head');
        const entities = await notes.entities(null, null, true);
        const expected = [...live].sort(([a], [b]) => (a < b ? -1 : 1));
        expect(left.map((c) => [c.key, c.version]).sort(([a], [b]) => (String(a) < String(b) ? -1 : 1))).toEqual(expected);
        expect(entities.filter((e) => e.key !== 'zz-head').map((e) => [e.key, e.version])).toEqual(expected);
      }),
      { numRuns: 60 },
    );
  });
});

describe("a node's history round", () => {
  const history = { horizonMs: HOUR, ccidWindowMs: HOUR };

  /** Three buckets written and the engine closed, then a new engine on the same store: nothing open. */
  async function reopened() {
    const store = new MemoryStore();
    let now = 1_700_000_000_000;
    const options = { now: () => now, history };
    const first = await openTestEngine(store, options);
    for (const bucket of ['a', 'b', 'c']) {
      const partition = await first.partition('default', bucket);
      for (const [ccid, v] of [[`${bucket}0000001`, 1], [`${bucket}0000002`, 2]] as const) {
        const [result] = await partition.submitChanges([{ ccid, key: 'k', op: 'MODIFY', data: { v } }], null, admin);
        expect(result!.error).toBeNull();
      }
    }
    await first.close();
    now += 2 * HOUR;
    return { engine: await openTestEngine(store, options), now: () => now, store };
  }

  it('lets go of the partitions it opened itself, and one let go of opens again as it was', async () => {
    const { engine, now } = await reopened();
    const kept = await engine.partition('default', 'b');
    const collected = await engine.collectHistory(now());
    expect(collected).toMatchObject({ superseded: 3, done: true });
    expect(engine.openedPartition('default/a')).toBeUndefined();
    expect(engine.openedPartition('default/c')).toBeUndefined();
    expect(engine.openedPartition('default/b')).toBe(kept);

    const a = await engine.partition('default', 'a');
    expect((await allChanges(a)).map((c) => [c.key, c.version])).toEqual([['k', 2]]);
    // The log's head keeps its ccid (a retry is still a duplicate), and versions go on.
    const [retried] = await a.submitChanges([{ ccid: 'a0000002', key: 'k', op: 'MODIFY', data: { v: 2 } }], null, admin);
    expect(retried).toMatchObject({ duplicate: true, change: { version: 2 } });
    const [next] = await a.submitChanges([{ ccid: 'a0000003', key: 'k', op: 'MODIFY', baseVersion: 2, data: { v: 3 } }], null, admin);
    expect(next).toMatchObject({ duplicate: false, change: { version: 3 } });
  });

  /** Runs `meanwhile` with partition `id` as soon as it is opened (by the round), before the opener goes on. */
  function onOpen(id: string, meanwhile: (partition: Partition) => void): void {
    const open = Partition.open.bind(Partition);
    vi.spyOn(Partition, 'open').mockImplementation(async (...args) => {
      const partition = await open(...args);
      if (partition.partition === id) meanwhile(partition);
      return partition;
    });
  }
  afterEach(() => vi.restoreAllMocks());

  it('does not open a partition with nothing to collect: history too young, or only the head', async () => {
    const { engine, now, store } = await reopened();
    const d = await engine.partition('default', 'd');
    await d.submitChanges([{ ccid: 'd0000001', key: 'k', op: 'MODIFY', data: { v: 1 } }], null, admin); // only a head, old enough below
    const e = await engine.partition('default', 'e');
    await e.submitChanges([{ ccid: 'e0000001', key: 'k', op: 'MODIFY', data: { v: 1 } }], null, admin);
    await e.submitChanges([{ ccid: 'e0000002', key: 'k', op: 'MODIFY', data: { v: 2 } }], null, admin);
    await engine.close();
    const later = await openTestEngine(store, { now: () => now() + 2 * HOUR, history });
    const opened: string[] = [];
    const open = Partition.open.bind(Partition);
    vi.spyOn(Partition, 'open').mockImplementation(async (...args) => {
      const partition = await open(...args);
      opened.push(partition.partition);
      return partition;
    });
    // At the first round a, b and c are old enough; d and e are not.
    expect(await later.collectHistory(now() + HOUR - 1)).toMatchObject({ superseded: 3 });
    expect(opened.sort()).toEqual(['default/a', 'default/b', 'default/c']);
    // At the second, e is; d is a lone head, and a, b and c are down to theirs: nothing to do.
    opened.length = 0;
    expect(await later.collectHistory(now() + 2 * HOUR)).toMatchObject({ superseded: 1 });
    expect(opened).toEqual(['default/e']);
    expect(later.openCount).toBe(0);
  });

  it('keeps open a partition a request asked for while the round had it, and the write lands', async () => {
    const { engine, now } = await reopened();
    let request: Promise<Partition> | undefined;
    onOpen('default/c', () => (request = engine.partition('default', 'c')));
    await engine.collectHistory(now());
    const c = await request!;
    expect(engine.openedPartition('default/c')).toBe(c);
    const [written] = await c.submitChanges([{ ccid: 'c0000003', key: 'k', op: 'MODIFY', baseVersion: 2, data: { v: 3 } }], null, admin);
    expect(written).toMatchObject({ duplicate: false, change: { version: 3 } });
  });

  it('keeps open a partition opened before the round, or with a live subscriber', async () => {
    const { engine, now } = await reopened();
    const before = engine.partition('default', 'b');
    onOpen('default/a', (a) => a.changeFeed.attach(10));
    await engine.collectHistory(now());
    expect(engine.openedPartition('default/a')?.changeFeed.size).toBe(1);
    expect(engine.openedPartition('default/b')).toBe(await before);
    expect(engine.openedPartition('default/c')).toBeUndefined();
  });
});
