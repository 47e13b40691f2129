/**
 * The engine's open partitions (Engine.closeIdle): a partition no one asked for during a whole
 * interval, and with no live subscriber, is closed; the next ask opens it again from the store,
 * as it was. Whoever still holds the closed object cannot write with its stale counters, and a
 * subscriber attaching to it ends at once instead of waiting for records that go elsewhere.
 */
import { describe, expect, it } from 'vitest';
import { CLOSED } from '../../src/engine/live-feed.js';
import { openTestEngine } from './engine-fixture.js';

const admin = { admin: true };
let n = 0;
const ccid = () => (++n).toString(16).padStart(8, '0');

async function write(engine: Awaited<ReturnType<typeof openTestEngine>>, bucket: string, baseVersion: number, v: number) {
  const partition = await engine.partition('default', bucket);
  const [result] = await partition.submitChanges([{ ccid: ccid(), key: 'k', op: 'MODIFY', baseVersion, data: { v } }], null, admin);
  return result!;
}

describe('closing idle partitions', () => {
  it('closes those no one asked for since the last call, and opens them again as they were', async () => {
    const engine = await openTestEngine();
    expect((await write(engine, 'a', 0, 1)).change?.version).toBe(1);
    expect((await write(engine, 'b', 0, 1)).change?.version).toBe(1);
    expect(engine.openCount).toBe(2);
    // The first call only marks: no one has been idle for a whole interval yet.
    expect(await engine.closeIdle()).toBe(0);
    await engine.partition('default', 'b');
    expect(await engine.closeIdle()).toBe(1);
    expect(engine.openedPartition('default/a')).toBeUndefined();
    expect(engine.openedPartition('default/b')).toBeDefined();
    expect(await engine.closeIdle()).toBe(1);
    expect(engine.openCount).toBe(0);

    const again = await write(engine, 'a', 1, 2);
    expect(again).toMatchObject({ duplicate: false, change: { version: 2 } });
    const a = await engine.partition('default', 'a');
    expect((await a.changes(null, 10)).changes.map((c) => c.version)).toEqual([1, 2]);
  });

  it('keeps a partition open while it has a live subscriber', async () => {
    const engine = await openTestEngine();
    await write(engine, 'a', 0, 1);
    const a = await engine.partition('default', 'a');
    const subscriber = a.changeFeed.attach(10);
    await engine.closeIdle();
    expect(await engine.closeIdle()).toBe(0);
    expect(engine.openedPartition('default/a')).toBe(a);
    subscriber.close();
    expect(await engine.closeIdle()).toBe(1);
  });

  it('refuses a write through a closed partition object, and ends a subscriber that attaches to it', async () => {
    const engine = await openTestEngine();
    await write(engine, 'a', 0, 1);
    const stale = await engine.partition('default', 'a');
    await engine.closeIdle();
    expect(await engine.closeIdle()).toBe(1);
    await expect(stale.submitChanges([{ ccid: ccid(), key: 'k', op: 'MODIFY', baseVersion: 1, data: { v: 9 } }], null, admin)).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
    const late = stale.changeFeed.attach(10);
    expect(await late.next()).toBe(CLOSED);
    expect(stale.changeFeed.size).toBe(0);
    // Nothing of the refused write landed.
    const a = await engine.partition('default', 'a');
    expect(await a.entity('k', null)).toMatchObject({ version: 1, data: { v: 1 } });
  });
});
