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
