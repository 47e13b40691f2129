/**
 * The engine over an in-memory store: what a failed write leaves behind. A write that fails is
 * answered with an error, nothing of it is visible afterwards, and the next changes continue the
 * logs without a gap (sequence numbers, versions) from what is durable.
 */
import { describe, expect, it } from 'vitest';
import type { KeyValueStore, WriteOp } from '../../src/storage/store.js';
import { MemoryStore } from './memory-store.js';
import { openTestEngine } from './engine-fixture.js';

/** A store whose next write fails when armed. */
class FailingStore extends MemoryStore {
  failNext = false;
  override async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    return super.write(ops, options);
  }
}

const open = (store: KeyValueStore) => openTestEngine(store);

describe('a failed write', () => {
  it('fails its request, leaves nothing behind, and later changes continue from what is durable', async () => {
    const store = new FailingStore();
    const engine = await open(store);
    const notes = await engine.partition('default', 'notes');
    const admin = { admin: true };
    const [first] = await notes.submitChanges([{ ccid: 'a1', key: 'k', op: 'MODIFY', data: { n: 1 } }], null, admin);
    expect(first!.change).toMatchObject({ version: 1, seq: 1 });

    store.failNext = true;
    await expect(notes.submitChanges([{ ccid: 'a2', key: 'k', op: 'MODIFY', baseVersion: 1, data: { n: 2 } }], null, admin)).rejects.toThrow('disk full');
    expect(await notes.entity('k', null)).toMatchObject({ version: 1, data: { n: 1 } });

    // The failed ccid was not recorded: a retry applies it, as version 2, at the next position.
    const [retry] = await notes.submitChanges([{ ccid: 'a2', key: 'k', op: 'MODIFY', baseVersion: 1, data: { n: 2 } }], null, admin);
    expect(retry).toMatchObject({ duplicate: false, change: { version: 2, seq: 2 } });
    const page = await notes.changes(null, null);
    expect(page.changes.map((c) => [c.ccid, c.seq])).toEqual([
      ['a1', 1],
      ['a2', 2],
    ]);
    await engine.close();
  });

  it('reopens with the sequences read from the logs', async () => {
    const store = new MemoryStore();
    const engine = await open(store);
    const notes = await engine.partition('default', 'notes');
    await notes.submitChanges(
      [
        { ccid: 'b1', key: 'x', op: 'MODIFY', data: {} },
        { ccid: 'b2', key: 'y', op: 'MODIFY', data: {} },
      ],
      null,
      { admin: true },
    );
    await engine.close();
    const reopened = await open(store);
    const again = await reopened.partition('default', 'notes');
    const [next] = await again.submitChanges([{ ccid: 'b3', key: 'z', op: 'MODIFY', data: {} }], null, { admin: true });
    expect(next!.change!.seq).toBe(3);
    expect(again.headCursor('changes')).toBe(next!.change!.cursor);
    await reopened.close();
  });
});

describe('the ccid index of a single node', () => {
  it('names the record by its log position, and answers a retry as a duplicate also once EMPTY cleared the record, across a restart', async () => {
    const store = new MemoryStore();
    let engine = await open(store);
    let notes = await engine.partition('default', 'notes');
    const admin = { admin: true };
    const [applied] = await notes.submitChanges([{ ccid: 'c1', key: 'k', op: 'MODIFY', data: { n: 1 } }], null, admin);
    // No second copy of the record: the index holds its position.
    expect(await store.get('p!default/notes!ccid!c1')).toBe('1');
    const [retried] = await notes.submitChanges([{ ccid: 'c1', key: 'k', op: 'MODIFY', data: { n: 9 } }], null, admin);
    expect(retried).toMatchObject({ duplicate: true, change: { id: applied!.change!.id, ccid: 'c1', version: 1, data: { n: 1 }, cursor: applied!.change!.cursor } });

    await notes.submitChanges([{ ccid: 'c2', op: 'EMPTY' }], null, admin);
    await notes.settle();
    // The record is gone from the log; the index now holds the record itself.
    expect(await store.get('p!default/notes!c!0000000000000001')).toBeUndefined();
    expect(JSON.parse((await store.get('p!default/notes!ccid!c1'))!)).toMatchObject({ id: applied!.change!.id, ccid: 'c1' });
    for (const restart of [false, true]) {
      if (restart) {
        await engine.close();
        engine = await open(store);
        notes = await engine.partition('default', 'notes');
      }
      const [again] = await notes.submitChanges([{ ccid: 'c1', key: 'k', op: 'MODIFY', data: { n: 9 } }], null, admin);
      expect(again).toMatchObject({ duplicate: true, change: { id: applied!.change!.id, version: 1, data: { n: 1 } } });
      expect(await notes.entity('k', null)).toBeNull();
    }
    await engine.close();
  });
});

describe('retained versions', () => {
  it('keeps a version once: the entity is its current version, version 1 is stored apart when superseded', async () => {
    const store = new MemoryStore();
    const engine = await open(store);
    const notes = await engine.partition('default', 'notes');
    const admin = { admin: true };
    await notes.submitChanges([{ ccid: 'f1', key: 'k', op: 'MODIFY', data: { title: 'a', body: 'x' } }], null, admin);
    const versionKey = (v: number) => `p!default/notes!g1!ver!k!${v.toString().padStart(10, '0')}`;
    expect(await store.get(versionKey(1))).toBeUndefined();
    expect((await notes.versions('k')).map((e) => [e.version, e.data])).toEqual([[1, { title: 'a', body: 'x' }]]);
    expect(await notes.entity('k', 1)).toMatchObject({ version: 1, data: { title: 'a', body: 'x' } });

    await notes.submitChanges([{ ccid: 'f2', key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'b', body: 'x' } }], null, admin);
    expect(JSON.parse((await store.get(versionKey(1)))!)).toMatchObject({ version: 1, data: { title: 'a', body: 'x' } });
    expect((await notes.versions('k')).map((e) => [e.version, e.data])).toEqual([
      [2, { title: 'b', body: 'x' }],
      [1, { title: 'a', body: 'x' }],
    ]);
    expect(await notes.entity('k', 1)).toMatchObject({ version: 1, data: { title: 'a' } });
    // A stale edit made on version 1 is rebased on it: both edits survive.
    const [rebased] = await notes.submitChanges([{ ccid: 'f3', key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'a', body: 'y' } }], null, admin);
    expect(rebased!.change).toMatchObject({ version: 3, data: { title: 'b', body: 'y' } });
    expect(await notes.entity('k', 4)).toBeNull();
    await engine.close();
  });
});

describe('change records', () => {
  it('store no diff for a change made from nothing (derived from its data when read), and store every other diff', async () => {
    const store = new MemoryStore();
    const engine = await open(store);
    const notes = await engine.partition('default', 'notes');
    const admin = { admin: true };
    const record = async (seq: number) => JSON.parse((await store.get(`p!default/notes!c!${seq.toString().padStart(16, '0')}`))!) as Record<string, unknown>;
    const [created] = await notes.submitChanges([{ ccid: 'd1', key: 'k', op: 'MODIFY', data: { title: 'a', tags: ['x'], n: 1 } }], null, admin);
    const [edited] = await notes.submitChanges([{ ccid: 'd2', key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'ab', tags: ['x'], n: 1 } }], null, admin);
    await notes.submitChanges([{ ccid: 'd3', key: 'k', op: 'DELETE' }], null, admin);
    const [revived] = await notes.submitChanges([{ ccid: 'd4', key: 'k', op: 'MODIFY', data: { n: 2 } }], null, admin);
    expect('diff' in (await record(1))).toBe(false);
    expect((await record(2))['diff']).toEqual({ title: { o: 'r', v: 'ab' } });
    expect((await record(3))['diff']).toBeNull();
    expect('diff' in (await record(4))).toBe(false);
    // Read back (answers, pages), a create's diff is its data, every key added.
    const fromNothing = { title: { o: '+', v: 'a' }, tags: { o: '+', v: ['x'] }, n: { o: '+', v: 1 } };
    expect(created!.change!.diff).toEqual(fromNothing);
    expect(revived!.change).toMatchObject({ version: 4, diff: { n: { o: '+', v: 2 } } });
    const page = await notes.changes(null, null);
    expect(page.changes.map((c) => c.diff)).toEqual([fromNothing, edited!.change!.diff, null, { n: { o: '+', v: 2 } }]);
    await engine.close();
  });
});
