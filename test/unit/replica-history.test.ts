/**
 * The rules of history collection on a cluster's replicas (model/replica-history.ts), and the
 * property they exist for: replicas that collect at different moments (or not at all), keep
 * making records on what they hold and exchange them in any order, end with the same entity
 * (data and version) once they hold the same records and have collected alike.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replayKey, recordRef, type KeyRecord } from '../../src/model/converge.js';
import {
  ancestorsOf,
  ccidExpired,
  checkpointChain,
  collectedBase,
  isRetryAfterWindow,
  needsRebuild,
  replicaVerdict,
  tombstoneGoes,
} from '../../src/model/replica-history.js';
import { merge, seqOf, type VersionVector } from '../../src/model/version-vector.js';

const record = (ref: string, op = 'MODIFY', more: Partial<{ key: string | null; superseded: boolean; cleared: boolean }> = {}) => ({
  ref,
  key: 'k',
  op,
  superseded: false,
  cleared: false,
  ...more,
});

describe('replicaVerdict', () => {
  const chain = new Set(['a:3', 'a:2']);
  it('collects the ancestors of a checkpoint, never the chain to the single head', () => {
    expect(replicaVerdict(record('a:1'), { heads: ['a:3'], chain })).toBe('superseded');
    expect(replicaVerdict(record('a:2'), { heads: ['a:3'], chain })).toBe('keep');
    expect(replicaVerdict(record('a:1'), { heads: ['a:3'], chain: undefined })).toBe('keep');
    expect(replicaVerdict(record('a:1'), { heads: ['a:3', 'b:1'], chain })).toBe('keep');
    // A DELETE that is not a checkpoint's ancestor is a tombstone candidate (tombstoneGoes decides).
    expect(replicaVerdict(record('a:1', 'DELETE'), { heads: ['a:3', 'b:1'], chain })).toBe('tombstone');
  });
  it('collects a DELETE that is a head as a tombstone, keeps a live head', () => {
    expect(replicaVerdict(record('a:3', 'DELETE'), { heads: ['a:3'], chain })).toBe('tombstone');
    expect(replicaVerdict(record('a:3'), { heads: ['a:3'], chain })).toBe('keep');
  });
  it('collects what counts for nothing: rival losers, cleared records, ancestors of a collected tombstone; keeps EMPTY/DROP', () => {
    expect(replicaVerdict(record('a:1', 'MODIFY', { superseded: true }), { heads: ['a:1'], chain })).toBe('superseded');
    expect(replicaVerdict(record('a:1', 'MODIFY', { cleared: true }), { heads: ['a:1'], chain })).toBe('cleared');
    expect(replicaVerdict(record('a:1'), undefined)).toBe('superseded');
    expect(replicaVerdict(record('a:1', 'EMPTY', { key: null }), undefined)).toBe('keep');
  });
});

describe('checkpointChain', () => {
  const parents: Record<string, string[]> = { 'a:4': ['a:3'], 'a:3': ['a:2'], 'a:2': ['a:1', 'b:1'], 'a:1': [], 'b:1': [] };
  const parentsOf = async (ref: string) => parents[ref];
  it('walks back single parents to the first stable record', async () => {
    expect(await checkpointChain('a:4', (ref) => ref === 'a:4', parentsOf)).toEqual(new Set(['a:4']));
    expect(await checkpointChain('a:4', (ref) => ref === 'a:3', parentsOf)).toEqual(new Set(['a:4', 'a:3']));
  });
  it('gives up at a merge, a missing record or its step bound', async () => {
    expect(await checkpointChain('a:4', (ref) => ref === 'a:1', parentsOf)).toBeUndefined();
    expect(await checkpointChain('x:9', () => false, parentsOf)).toBeUndefined();
    expect(await checkpointChain('a:4', (ref) => ref === 'a:3', parentsOf, 0)).toBeUndefined();
  });
});

describe('tombstoneGoes', () => {
  const r = (ref: string, hlc: number, deps: string[] = []) => ({ ref, hlc, origin: ref.split(':')[0]!, deps });
  it('takes the DELETE and its ancestors when every other record comes after it', () => {
    const records = [r('a:1', 1), r('a:2', 2, ['a:1']), r('b:1', 5)];
    expect(tombstoneGoes(r('a:2', 2), records)).toEqual(new Set(['a:2', 'a:1']));
  });
  it('keeps a DELETE that deleted a concurrent record before it', () => {
    const records = [r('a:1', 1), r('b:1', 2), r('a:2', 3, ['a:1'])];
    expect(tombstoneGoes(r('a:2', 3), records)).toBeUndefined();
  });
  it('takes a DELETE that later records descend from, not one whose ancestors they were made on', () => {
    expect(tombstoneGoes(r('a:2', 2), [r('a:1', 1), r('a:2', 2, ['a:1']), r('b:1', 5, ['a:2'])])).toEqual(new Set(['a:2', 'a:1']));
    expect(tombstoneGoes(r('a:2', 2), [r('a:1', 1), r('a:2', 2, ['a:1']), r('b:1', 5, ['a:1'])])).toBeUndefined();
  });
});

describe('small rules', () => {
  it('collectedBase: a record made on a collected parent keeps its origin\'s count', () => {
    expect(collectedBase({ deps: ['a:1'], version: 5 }, { a: 1 }, undefined)).toBe(4);
    expect(collectedBase({ deps: ['a:2'], version: 5 }, { a: 1 }, undefined)).toBe(4);
    expect(collectedBase({ deps: ['a:1'], version: 5 }, { a: 1 }, { a: 1 })).toBeUndefined();
    expect(collectedBase({ deps: [], version: 1 }, { a: 1 }, undefined)).toBeUndefined();
    expect(collectedBase({ deps: ['a:1'], version: 5 }, undefined, undefined)).toBeUndefined();
  });
  it('needsRebuild: a copy holding part of an origin below the floor, beyond floors it took', () => {
    expect(needsRebuild({}, { a: 5 })).toBe(false);
    expect(needsRebuild({ a: 5, b: 1 }, { a: 5 })).toBe(false);
    expect(needsRebuild({ a: 3 }, { a: 5 })).toBe(true);
    expect(needsRebuild({ a: 3 }, { a: 5 }, { a: 5 })).toBe(false);
  });
  it('a retry after the ccid window is a new change; the ccid expires with the window', () => {
    expect(isRetryAfterWindow({ hlc: 1_000_000 }, { hlc: 1_000_000 + 10_000_000 }, 10_000)).toBe(false);
    expect(isRetryAfterWindow({ hlc: 1_000_000 }, { hlc: 1_000_001 + 10_000_000 }, 10_000)).toBe(true);
    expect(isRetryAfterWindow({ hlc: 1 }, { hlc: 1e12 }, undefined)).toBe(false);
    expect(ccidExpired(1_000_000, 1000 + 10_000, 10_000)).toBe(false);
    expect(ccidExpired(999_999, 1000 + 10_000, 10_000)).toBe(true);
  });
  it('ancestorsOf: the record and everything it descends from', () => {
    const records = [{ ref: 'a:1', deps: [] }, { ref: 'a:2', deps: ['a:1'] }, { ref: 'b:1', deps: [] }];
    expect(ancestorsOf('a:2', records)).toEqual(new Set(['a:2', 'a:1']));
  });
});

// ------------------------------------------------------------------------ the property

interface Rec {
  ref: string;
  origin: string;
  seq: number;
  hlc: number;
  deps: string[];
  data: { n: number } | null;
  version: number;
}

/** One replica of one key: the records it holds and the floor of what it collected. */
interface Replica {
  records: Map<string, Rec>;
  vector: VersionVector;
  floor: VersionVector;
}

function keyRecords(replica: Replica): KeyRecord[] {
  return [...replica.records.values()].map((r) => {
    const base = collectedBase(r, replica.floor, undefined);
    return { ref: r.ref, hlc: r.hlc, origin: r.origin, deps: r.deps, data: r.data, ...(base === undefined ? {} : { base }) };
  });
}

/** Collects by the rules, everything being stable (called after every replica holds the same records). */
function collect(replica: Replica): void {
  const all = [...replica.records.values()];
  if (all.length === 0) return;
  const state = replayKey(keyRecords(replica));
  const heads = state.heads;
  const drop = new Set<string>();
  if (heads.length === 1) {
    const head = replica.records.get(heads[0]!)!;
    for (const r of all) if (r.ref !== head.ref) drop.add(r.ref);
    if (head.data === null) drop.add(head.ref);
  } else {
    for (const r of [...all].sort((a, b) => a.hlc - b.hlc)) {
      if (r.data !== null || drop.has(r.ref)) continue;
      for (const gone of tombstoneGoes(r, all.filter((x) => !drop.has(x.ref))) ?? []) drop.add(gone);
    }
  }
  for (const ref of drop) replica.records.delete(ref);
  replica.floor = merge(replica.floor, replica.vector);
}

function deliver(from: Replica, to: Replica): void {
  for (const r of from.records.values()) {
    if (seqOf(to.vector, r.origin) >= r.seq) continue; // held, or collected there
    to.records.set(r.ref, r);
  }
  to.vector = merge(to.vector, from.vector);
}

describe('collection at different moments keeps replicas converging (property)', () => {
  const stepArb = fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('make' as const), at: fc.nat({ max: 2 }), remove: fc.boolean(), n: fc.nat({ max: 99 }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const), from: fc.nat({ max: 2 }), to: fc.nat({ max: 2 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('syncAndCollect' as const), at: fc.nat({ max: 2 }) }) },
  );

  it('same records and collection, same entity', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60, size: 'max' }), (steps) => {
        const replicas: Replica[] = [0, 1, 2].map(() => ({ records: new Map(), vector: {}, floor: {} }));
        let clock = 0;
        for (const step of steps) {
          if (step.kind === 'make') {
            const replica = replicas[step.at]!;
            const state = replayKey(keyRecords(replica));
            // A DELETE needs a live entity, as on a real node.
            if (step.remove && state.data === null) continue;
            const origin = `r${step.at}`;
            const seq = seqOf(replica.vector, origin) + 1;
            const rec: Rec = { ref: recordRef(origin, seq), origin, seq, hlc: ++clock, deps: state.heads, data: step.remove ? null : { n: step.n }, version: state.version + 1 };
            replica.records.set(rec.ref, rec);
            replica.vector = merge(replica.vector, { [origin]: seq });
          } else if (step.kind === 'deliver') {
            deliver(replicas[step.from]!, replicas[step.to]!);
          } else {
            // Everything is everywhere (stable): one replica collects now, the others later or never.
            for (const a of replicas) for (const b of replicas) deliver(a, b);
            collect(replicas[step.at]!);
          }
        }
        for (const a of replicas) for (const b of replicas) deliver(a, b);
        for (const replica of replicas) collect(replica);
        const states = replicas.map((replica) => {
          const state = replayKey(keyRecords(replica));
          return { data: state.data, version: state.data === null ? 0 : state.version };
        });
        expect(states[1]).toEqual(states[0]);
        expect(states[2]).toEqual(states[0]);
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 500) },
    );
  });
});
