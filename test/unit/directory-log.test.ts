/**
 * replication/directory-log.ts: nodes that exchange their directory records (any amount, any
 * order, with gaps) end with the same directory; each key takes the latest write's value.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridClock } from '../../src/engine/hlc.js';
import { ReplicatedDirectoryStore, type DirectoryChange } from '../../src/replication/directory-log.js';
import { MemoryStore } from './memory-store.js';

async function node(origin: string, clock: { now: number }) {
  const disk = new MemoryStore();
  const store = await ReplicatedDirectoryStore.open(disk, origin, new HybridClock(() => clock.now));
  const changes: DirectoryChange[] = [];
  store.onRemoteChanges = (c) => changes.push(...c);
  return { disk, store, changes };
}

async function directoryOf(disk: MemoryStore): Promise<Array<[string, string]>> {
  return disk.page({ gte: 'auth!', lt: 'auth"', limit: 10_000 });
}

type Step = { kind: 'write'; at: number; key: number; value: number | null } | { kind: 'sync'; to: number; from: number; limit: number; reversed: boolean } | { kind: 'tick' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), at: fc.nat(2), key: fc.nat(4), value: fc.option(fc.nat(9), { nil: null }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync' as const), to: fc.nat(2), from: fc.nat(2), limit: fc.integer({ min: 1, max: 4 }), reversed: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const) }) },
);

describe('the replicated directory', () => {
  it('converges on every node, whatever was exchanged in which order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 40 }), async (steps) => {
        const clock = { now: 1_700_000_000_000 };
        const nodes = await Promise.all(['n1', 'n2', 'n3'].map((o) => node(o, clock)));
        for (const step of steps) {
          if (step.kind === 'tick') clock.now += 1;
          else if (step.kind === 'write') {
            const key = `auth!user!app!u${step.key}`;
            await nodes[step.at]!.store.write([step.value === null ? { type: 'del', key } : { type: 'put', key, value: String(step.value) }], { sync: true });
          } else if (step.to !== step.from) {
            const { records } = await nodes[step.from]!.store.recordsSince(nodes[step.to]!.store.vectorNow(), step.limit);
            await nodes[step.to]!.store.apply(step.reversed ? [...records].reverse() : records);
          }
        }
        for (let round = 0; round < 3; round++) {
          for (const a of nodes) for (const b of nodes) if (a !== b) await a.store.apply((await b.store.recordsSince(a.store.vectorNow(), 10_000)).records);
        }
        const directories = await Promise.all(nodes.map((n) => directoryOf(n.disk)));
        expect(directories[1]).toEqual(directories[0]);
        expect(directories[2]).toEqual(directories[0]);
        expect(nodes[1]!.store.vectorNow()).toEqual(nodes[0]!.store.vectorNow());
      }),
      { numRuns: 200 },
    );
  });

  it('keeps the latest write of a key, and reports what other nodes changed', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = await Promise.all([node('n1', clock), node('n2', clock)]);
    await a!.store.write([{ type: 'put', key: 'auth!key!h1', value: '{"v":1}' }], { sync: true });
    clock.now += 1;
    await b!.store.write([{ type: 'put', key: 'auth!key!h1', value: '{"v":2}' }], { sync: true });
    // The older write arriving later does not win.
    await b!.store.apply((await a!.store.recordsSince(b!.store.vectorNow(), 100)).records);
    await a!.store.apply((await b!.store.recordsSince(a!.store.vectorNow(), 100)).records);
    expect(await a!.disk.get('auth!key!h1')).toBe('{"v":2}');
    expect(await b!.disk.get('auth!key!h1')).toBe('{"v":2}');
    expect(a!.changes).toEqual([{ key: 'auth!key!h1', previous: '{"v":1}', value: '{"v":2}' }]);
    expect(b!.changes).toEqual([]);
    // Malformed records (from a buggy peer) are ignored.
    await a!.store.apply([{ origin: 'n3', seq: 1, hlc: 1, ops: [{ key: 'p!x', value: 'y' }] }]);
    expect(await a!.disk.get('p!x')).toBeUndefined();
  });

  it('logs a directory that existed before the node joined a cluster, once', async () => {
    const clock = { now: 1_700_000_000_000 };
    const disk = new MemoryStore();
    await disk.write([{ type: 'put', key: 'auth!app!x', value: '{}' }], { sync: true });
    const store = await ReplicatedDirectoryStore.open(disk, 'n1', new HybridClock(() => clock.now));
    expect(await store.adoptExisting('auth!')).toBe(1);
    expect(await store.adoptExisting('auth!')).toBe(0);
    const other = await node('n2', clock);
    await other.store.apply((await store.recordsSince(other.store.vectorNow(), 100)).records);
    expect(await other.disk.get('auth!app!x')).toBe('{}');
  });
});
