/**
 * History collection on replicas of a cluster (Partition.collectHistory given a stable vector),
 * on engines exchanging records directly (`recordsSince` / `applyChanges`): what goes, what a
 * replica that did not collect still agrees with, how a fresh copy is filled from a collected
 * one (a floor), why a copy holding part of the collected history refuses it (it is rebuilt), old
 * cursors expiring, and the ccid rule after the window.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import type { Partition } from '../../src/engine/partition.js';
import type { ChangeView } from '../../src/engine/records.js';
import { defaultLimits } from '../../src/options.js';
import { defaultRetention } from '../../src/model/retention.js';
import { MemoryStore } from './memory-store.js';

const HOUR = 3_600_000;
const admin = { admin: true };

async function openReplica(origin: string, clock: { now: number }): Promise<Partition> {
  let id = 0;
  const engine = await Engine.open(new MemoryStore(), {
    now: () => clock.now,
    newId: () => `0190a000-0000-7000-8000-${origin}${(++id).toString(16).padStart(10, '0')}`.slice(0, 36),
    newNodeId: () => origin,
    limits: defaultLimits,
    retention: defaultRetention,
    keepClearedLog: true,
    history: { horizonMs: HOUR, ccidWindowMs: HOUR },
    onBackgroundError: (error) => {
      throw error;
    },
  });
  return engine.partition('app', 'notes');
}

async function listed(p: Partition): Promise<ChangeView[]> {
  const out: ChangeView[] = [];
  for (let cursor: string | null = null; ; ) {
    const page = await p.changes(cursor, 1000);
    out.push(...page.changes);
    cursor = page.cursor;
    if (!page.hasMore) return out;
  }
}

/** Brings `to` up to `from`, batch after batch (as anti-entropy does), with `from`'s floor when it has one. */
async function pull(to: Partition, from: Partition, batch = 3): Promise<void> {
  for (let round = 0; round < 100; round++) {
    const since = to.vectorOf('changes');
    const answer = await from.recordsSince('changes', since, batch);
    await to.applyChanges(answer.records, { compacted: answer.compacted, ...(answer.floor === undefined ? {} : { floor: answer.floor, since, complete: !answer.more }) });
    if (!answer.more) return;
  }
}

async function collectAll(p: Partition, now: number, stable = p.vectorOf('changes'), budget = 1000) {
  const total = { scanned: 0, superseded: 0, tombstones: 0, cleared: 0, ccids: 0 };
  for (;;) {
    const pass = await p.collectHistory(now, budget, stable);
    for (const kind of ['scanned', 'superseded', 'tombstones', 'cleared', 'ccids'] as const) total[kind] += pass[kind];
    if (pass.done) return total;
  }
}

async function setup() {
  const clock = { now: 1_700_000_000_000 };
  const a = await openReplica('a', clock);
  const b = await openReplica('b', clock);
  let n = 0;
  const write = async (p: Partition, key: string, op: 'MODIFY' | 'DELETE', data?: Record<string, unknown>, ccid = (++n).toString(16).padStart(6, '0')) => {
    const [outcome] = await p.submitChanges([{ ccid, key, op, ...(data ? { data } : {}) }], null, admin);
    if (outcome!.error !== null) throw new Error(outcome!.error.message);
    return outcome!;
  };
  return { clock, a, b, write };
}

describe('history collection on a cluster replica', () => {
  it('collects only given a stable vector, and then what it covers', async () => {
    const { clock, a, b, write } = await setup();
    for (let i = 0; i < 10; i++) for (const key of ['x', 'y']) await write(a, key, 'MODIFY', { i });
    await write(a, 'z', 'MODIFY', { v: 1 });
    await write(a, 'z', 'DELETE');
    await pull(b, a);
    clock.now += 2 * HOUR;
    await write(a, 'head', 'MODIFY', {});
    await pull(b, a);
    expect(await a.collectHistory(clock.now)).toMatchObject({ scanned: 0 });
    // Stable up to before the head only.
    const stable = { a: 22 };
    const collected = await collectAll(a, clock.now, stable, 7);
    expect(collected).toMatchObject({ superseded: 19, tombstones: 1, ccids: 22 });
    expect((await listed(a)).map((c) => [c.key, c.version])).toEqual([
      ['x', 10],
      ['y', 10],
      ['head', 1],
    ]);
    // b collected nothing and still holds the same entities (tombstone apart: it goes there too).
    expect(await b.entities(100, null, false)).toEqual(await a.entities(100, null, false));
    await collectAll(b, clock.now, stable);
    expect(await b.digest()).toEqual(await a.digest());
  });

  it('fills a fresh copy from a collected one with its floor; a copy holding part of it refuses', async () => {
    const { clock, a, b, write } = await setup();
    const c = await openReplica('c', clock);
    for (let i = 0; i < 6; i++) await write(a, 'x', 'MODIFY', { i });
    await pull(c, a); // c holds a:1..6
    for (let i = 6; i < 12; i++) await write(a, 'x', 'MODIFY', { i });
    await write(a, 'y', 'MODIFY', { v: 1 });
    await write(a, 'y', 'DELETE');
    clock.now += 2 * HOUR;
    await write(a, 'head', 'MODIFY', {});
    await collectAll(a, clock.now);
    expect((await listed(a)).map((c) => c.key)).toEqual(['x', 'head']);

    // b is empty: it takes what a kept, skips the gaps, and ends with a's vector and entities.
    await pull(b, a);
    expect(b.vectorOf('changes')).toEqual(a.vectorOf('changes'));
    expect(await b.digest()).toEqual(await a.digest());
    expect((await listed(b)).map((c) => [c.key, c.version])).toEqual([
      ['x', 12],
      ['head', 1],
    ]);
    // A record made on b on top of what it took counts on from the collected history.
    const next = await write(b, 'x', 'MODIFY', { i: 12 });
    expect(next.change!.version).toBe(13);
    await pull(a, b);
    expect(await a.digest()).toEqual(await b.digest());

    // c holds a:1..6, part of what a collected (the deletion of y among what it lacks): it must
    // not take a's records with gaps (the cluster rebuilds it instead).
    const before = c.vectorOf('changes');
    await pull(c, a);
    expect(c.vectorOf('changes')).toEqual(before);
  });

  it('keeps the log bounded while an entity is updated without pause (its head never stable)', async () => {
    const { clock, a, b, write } = await setup();
    let seq = 0;
    for (let i = 0; i < 300; i++) {
      clock.now += 60_000;
      seq = (await write(a, 'hot', 'MODIFY', { i })).change!.originSeq;
      if (i % 10 === 9) {
        await pull(b, a);
        // The last few records are not stable yet: the head never is.
        await collectAll(a, clock.now, { a: seq - 5 });
      }
    }
    // What is left: the records younger than the horizon (an hour: 60) and the checkpoint.
    const left = await listed(a);
    expect(left.length).toBeLessThanOrEqual(62);
    expect(left.at(-1)).toMatchObject({ key: 'hot', version: 300 });
    await collectAll(b, clock.now, { a: seq - 5 });
    expect(await b.digest()).toEqual(await a.digest());
  });

  it('removes what an EMPTY cleared once stable, keeping the EMPTY itself', async () => {
    const { clock, a, b, write } = await setup();
    await write(a, 'x', 'MODIFY', { v: 1 });
    await write(a, 'y', 'MODIFY', { v: 1 });
    const [empty] = await a.submitChanges([{ ccid: 'e0', op: 'EMPTY' }], null, admin);
    expect(empty!.error).toBeNull();
    await write(a, 'z', 'MODIFY', { v: 1 });
    await pull(b, a);
    clock.now += 2 * HOUR;
    await write(a, 'head', 'MODIFY', {});
    expect(await collectAll(a, clock.now)).toMatchObject({ cleared: 2, tombstones: 0 });
    expect((await listed(a)).map((c) => c.op)).toEqual(['EMPTY', 'MODIFY', 'MODIFY']);
    await pull(b, a);
    expect(await b.digest()).toEqual(await a.digest());
    // A copy filled from a now: the EMPTY, then what followed it.
    const c = await openReplica('c', clock);
    await pull(c, a);
    expect(await c.digest()).toEqual(await a.digest());
    expect(c.vectorOf('changes')).toEqual(a.vectorOf('changes'));
  });

  it('expires a cursor from before a collected deletion, on the replica and on a copy filled from it', async () => {
    const { clock, a, b, write } = await setup();
    await write(a, 'x', 'MODIFY', { v: 1 });
    const early = (await a.changes(null, 10)).cursor;
    await write(a, 'x', 'DELETE');
    await write(a, 'y', 'MODIFY', { v: 1 });
    clock.now += 2 * HOUR;
    await write(a, 'head', 'MODIFY', {});
    await collectAll(a, clock.now);
    await expect(a.changes(early, 10)).rejects.toMatchObject({ code: 'INVALID_CURSOR' });
    // A reader from the start, or with a recent cursor, is fine.
    const recent = (await a.changes(null, 10)).cursor;
    expect((await a.changes(recent, 10)).changes).toEqual([]);
    await pull(b, a);
    await expect(b.changes(early, 10)).rejects.toMatchObject({ code: 'INVALID_CURSOR' });
  });

  it('applies a record with a known ccid as a new change when made after the ccid window, on every replica', async () => {
    const { clock, a, b, write } = await setup();
    await write(a, 'x', 'MODIFY', { v: 1 }, '5a3e');
    await pull(b, a);
    clock.now += 2 * HOUR;
    await write(a, 'head', 'MODIFY', {});
    await pull(b, a);
    // a forgot the ccid (and collected nothing else: x:1 is x's latest); b did not collect.
    expect(await collectAll(a, clock.now)).toMatchObject({ ccids: 1 });
    const retry = await write(a, 'x', 'MODIFY', { v: 2 }, '5a3e');
    expect(retry.duplicate).toBe(false);
    // b still remembers the ccid, yet takes the late record as a new change too.
    await pull(b, a);
    expect(await b.entity('x', null)).toMatchObject({ version: 2, data: { v: 2 } });
    expect(await b.digest()).toEqual(await a.digest());
    // Within the window a retry through b is still a duplicate.
    expect((await write(b, 'head', 'MODIFY', { again: true }, (await listed(b)).find((c) => c.key === 'head')!.ccid)).duplicate).toBe(true);
  });
});
