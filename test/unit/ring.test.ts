/**
 * The consistent-hashing ring (src/replication/ring.ts): deterministic, distinct preference
 * lists, an even spread, and minimal movement when a node joins or leaves.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Ring } from '../../src/replication/ring.js';

const nodeIds = fc.uniqueArray(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 1, maxLength: 7 });
const partitions = Array.from({ length: 2000 }, (_, i) => `app/bucket-${i}`);

describe('Ring', () => {
  it('is the same whatever order the nodes are given in', () => {
    fc.assert(
      fc.property(nodeIds, fc.string(), fc.integer({ min: 1, max: 5 }), (ids, partition, n) => {
        const a = new Ring(ids, { vnodes: 16 });
        const b = new Ring([...ids].reverse(), { vnodes: 16 });
        expect(a.preferenceList(partition, n)).toEqual(b.preferenceList(partition, n));
      }),
    );
  });

  it('lists min(n, nodes) distinct nodes, the owner first', () => {
    fc.assert(
      fc.property(nodeIds, fc.string(), fc.integer({ min: 0, max: 9 }), (ids, partition, n) => {
        const ring = new Ring(ids, { vnodes: 8 });
        const list = ring.preferenceList(partition, n);
        expect(list).toHaveLength(Math.min(n, ids.length));
        expect(new Set(list).size).toBe(list.length);
        for (const node of list) expect(ids).toContain(node);
        if (n > 0) expect(list[0]).toBe(ring.owner(partition));
      }),
    );
  });

  it('spreads partitions evenly: every node owns within 40% of its fair share', () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const ring = new Ring(ids);
    const owned = new Map<string, number>();
    for (const p of partitions) owned.set(ring.owner(p)!, (owned.get(ring.owner(p)!) ?? 0) + 1);
    const fair = partitions.length / ids.length;
    for (const id of ids) expect(Math.abs((owned.get(id) ?? 0) - fair) / fair).toBeLessThan(0.4);
  });

  it('moves only what a joining node takes: every other partition keeps its owner and backups', () => {
    fc.assert(
      fc.property(nodeIds, fc.stringMatching(/^[A-Z]{1,8}$/), (ids, joining) => {
        const before = new Ring(ids, { vnodes: 16 });
        const after = new Ring([...ids, joining], { vnodes: 16 });
        for (const p of partitions.slice(0, 300)) {
          const was = before.preferenceList(p, 3);
          const now = after.preferenceList(p, 3);
          // The new list is the old one with the joining node inserted (and the last pushed out).
          expect(now.filter((node) => node !== joining)).toEqual(was.slice(0, now.filter((node) => node !== joining).length));
        }
      }),
      { numRuns: 50 },
    );
  });

  it("gives a leaving node's partitions to the others, and touches nothing else", () => {
    fc.assert(
      fc.property(nodeIds.filter((ids) => ids.length >= 2), fc.nat(), (ids, pick) => {
        const leaving = ids[pick % ids.length]!;
        const before = new Ring(ids, { vnodes: 16 });
        const after = new Ring(ids.filter((id) => id !== leaving), { vnodes: 16 });
        for (const p of partitions.slice(0, 300)) {
          const was = before.preferenceList(p, 3);
          const now = after.preferenceList(p, 3);
          expect(now.slice(0, was.filter((node) => node !== leaving).length)).toEqual(was.filter((node) => node !== leaving));
        }
      }),
      { numRuns: 50 },
    );
  });

  it('refuses a ring without points per node', () => {
    expect(() => new Ring(['a'], { vnodes: 0 })).toThrow(RangeError);
    expect(new Ring([]).preferenceList('p', 3)).toEqual([]);
  });
});
