/**
 * Stability across replicas (replication/stability.ts): the element-wise minimum of the vectors
 * replicas reported, and causal stability on top of it. Property: in a model of replicas making
 * records and exchanging them in random orders and reporting their vectors at random moments,
 * whenever a record is causally stable, every record concurrent with it is already held by every
 * replica (so a late concurrent record can never meet a replica that collected).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { advanceStability, initialStability, maxVector, minVector } from '../../src/replication/stability.js';
import { dominates, seqOf, type VersionVector } from '../../src/model/version-vector.js';

describe('minVector and maxVector', () => {
  it('take each origin at its lowest and highest (absent counts 0)', () => {
    expect(minVector([{ a: 3, b: 2 }, { a: 1, b: 5, c: 1 }])).toEqual({ a: 1, b: 2 });
    expect(minVector([{ a: 3 }, { b: 1 }])).toEqual({});
    expect(maxVector([{ a: 3, b: 2 }, { a: 1, b: 5, c: 1 }])).toEqual({ a: 3, b: 5, c: 1 });
    expect(minVector([])).toEqual({});
  });
});

describe('advanceStability', () => {
  const replicas = ['n1', 'n2', 'n3'];

  it('needs every replica heard from, then a second step covering the first one\'s maximum', () => {
    let state = advanceStability(initialStability, replicas, [{ a: 5 }, { a: 3 }, undefined]);
    expect(state.stable).toEqual({});
    state = advanceStability(state, replicas, [{ a: 5 }, { a: 3 }, { a: 4 }]);
    expect(state.stable).toEqual({});
    expect(state.pending).toEqual({ min: { a: 3 }, max: { a: 5 } });
    // The minimum has not reached the earlier maximum: a record concurrent with a:3 may still be
    // on its way to a replica.
    state = advanceStability(state, replicas, [{ a: 6 }, { a: 4 }, { a: 6 }]);
    expect(state.stable).toEqual({});
    state = advanceStability(state, replicas, [{ a: 6 }, { a: 5 }, { a: 6 }]);
    expect(state.stable).toEqual({ a: 3 });
    expect(state.pending).toEqual({ min: { a: 5 }, max: { a: 6 } });
  });

  it('starts over when the replica set changes (a newcomer blocks until it reported)', () => {
    let state = initialStability;
    for (let i = 0; i < 3; i++) state = advanceStability(state, replicas, [{ a: 5 }, { a: 5 }, { a: 5 }]);
    expect(state.stable).toEqual({ a: 5 });
    state = advanceStability(state, ['n1', 'n2', 'n4'], [{ a: 5 }, { a: 5 }, undefined]);
    expect(state.stable).toEqual({});
    state = advanceStability(state, ['n1', 'n2', 'n4'], [{ a: 5 }, { a: 5 }, {}]);
    state = advanceStability(state, ['n1', 'n2', 'n4'], [{ a: 5 }, { a: 5 }, {}]);
    expect(state.stable).toEqual({});
  });

  it('never moves back while the set stays, and stays under every vector reported', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.nat({ max: 4 }), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 30 }), (steps) => {
        // Each replica's vector of one origin only grows.
        const seen = [0, 0, 0];
        let state = initialStability;
        for (const step of steps) {
          for (let i = 0; i < 3; i++) seen[i]! += step[i]!;
          const before = state.stable;
          state = advanceStability(state, replicas, seen.map((a) => ({ a })));
          expect(dominates(state.stable, before)).toBe(true);
          for (const a of seen) expect(seqOf(state.stable, 'a')).toBeLessThanOrEqual(a);
        }
      }),
    );
  });
});

/** A record of the model: its origin's id and sequence, and the records its origin held then. */
interface ModelRecord {
  ref: string;
  origin: string;
  seq: number;
  past: ReadonlySet<string>;
}

describe('causal stability (model)', () => {
  // Steps: make a record at a replica, copy one origin's next records between replicas (each
  // origin's in sequence, as anti-entropy does), report a replica's vector, or compute stability.
  const stepArb = fc.oneof(
    fc.record({ kind: fc.constant('make' as const), at: fc.nat({ max: 2 }) }),
    fc.record({ kind: fc.constant('copy' as const), from: fc.nat({ max: 2 }), to: fc.nat({ max: 2 }), origin: fc.nat({ max: 2 }), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant('sync' as const), from: fc.nat({ max: 2 }), to: fc.nat({ max: 2 }) }),
    fc.record({ kind: fc.constant('report' as const), at: fc.nat({ max: 2 }) }),
    fc.record({ kind: fc.constant('step' as const) }),
  );

  it('a causally stable record has every record concurrent with it on every replica', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 20, maxLength: 150, size: 'max' }), (steps) => {
        const ids = ['n1', 'n2', 'n3'];
        const records = new Map<string, ModelRecord>();
        // What each replica holds, as a vector (records are dense per origin) and a set.
        const vectors: Array<Record<string, number>> = ids.map(() => ({}));
        const holds = (i: number, ref: string) => {
          const r = records.get(ref)!;
          return (vectors[i]![r.origin] ?? 0) >= r.seq;
        };
        const reported: Array<VersionVector | undefined> = ids.map(() => undefined);
        let state = initialStability;
        let checked = 0;
        for (const step of steps) {
          if (step.kind === 'make') {
            const origin = ids[step.at]!;
            const seq = (vectors[step.at]![origin] ?? 0) + 1;
            const past = new Set([...records.keys()].filter((ref) => holds(step.at, ref)));
            const ref = `${origin}:${seq}`;
            records.set(ref, { ref, origin, seq, past });
            vectors[step.at]![origin] = seq;
          } else if (step.kind === 'copy') {
            const origin = ids[step.origin]!;
            const have = vectors[step.to]![origin] ?? 0;
            vectors[step.to]![origin] = Math.max(have, Math.min(vectors[step.from]![origin] ?? 0, have + step.n));
          } else if (step.kind === 'sync') {
            for (const origin of ids) vectors[step.to]![origin] = Math.max(vectors[step.to]![origin] ?? 0, vectors[step.from]![origin] ?? 0);
          } else if (step.kind === 'report') {
            reported[step.at] = { ...vectors[step.at]! };
          } else {
            state = advanceStability(state, ids, reported);
            for (const record of records.values()) {
              if (seqOf(state.stable, record.origin) < record.seq) continue;
              checked++;
              for (const other of records.values()) {
                const concurrent = !record.past.has(other.ref) && !other.past.has(record.ref) && other.ref !== record.ref;
                if (concurrent) for (let i = 0; i < ids.length; i++) expect(holds(i, other.ref), `${other.ref} concurrent with stable ${record.ref}, missing on ${ids[i]}`).toBe(true);
              }
            }
          }
        }
        return checked >= 0;
      }),
      { numRuns: 400 },
    );
  });
});
