/**
 * Version vectors form a join semilattice under `merge` (pointwise maximum), ordered by
 * `dominates`; `advance` only ever moves a vector up. Equality is semantic: an origin at seq 0
 * and an absent origin are the same knowledge.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { advance, covers, dominates, emptyVector, merge, seqOf, type VersionVector } from '../../src/model/version-vector.js';

/** Same knowledge: every origin at the same seq (absent counts as 0). */
function same(a: VersionVector, b: VersionVector): boolean {
  for (const origin of new Set([...Object.keys(a), ...Object.keys(b)])) if (seqOf(a, origin) !== seqOf(b, origin)) return false;
  return true;
}

/** A deep-frozen copy, so that any mutation of an input throws. */
const frozen = (v: VersionVector): VersionVector => Object.freeze({ ...v });

// A few shared origins so that vectors overlap; seq 0 included (an origin known but not seen).
const originArb = fc.constantFrom('n1', 'n2', 'n3', 'n4', 'a0f3c9e1b2d4', 'node.x');
const vectorArb = fc.dictionary(originArb, fc.integer({ min: 0, max: 50 }), { maxKeys: 6 }).map(frozen);

describe('merge', () => {
  it('is commutative', () => {
    fc.assert(fc.property(vectorArb, vectorArb, (a, b) => same(merge(a, b), merge(b, a))));
  });

  it('is associative', () => {
    fc.assert(fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => same(merge(merge(a, b), c), merge(a, merge(b, c)))));
  });

  it('is idempotent', () => {
    fc.assert(fc.property(vectorArb, (a) => same(merge(a, a), a)));
  });

  it('has the empty vector as identity', () => {
    fc.assert(fc.property(vectorArb, (a) => same(merge(a, emptyVector), a) && same(merge(emptyVector, a), a)));
  });

  it('is the pointwise maximum', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, originArb, (a, b, origin) => seqOf(merge(a, b), origin) === Math.max(seqOf(a, origin), seqOf(b, origin))),
    );
  });

  it('dominates both of its inputs', () => {
    fc.assert(fc.property(vectorArb, vectorArb, (a, b) => dominates(merge(a, b), a) && dominates(merge(a, b), b)));
  });

  it('is the least upper bound: whatever dominates both inputs dominates their merge', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => !dominates(c, a) || !dominates(c, b) || dominates(c, merge(a, b))),
    );
  });

  it('does not modify its inputs', () => {
    // The inputs are frozen: writing to them would throw in strict mode.
    fc.assert(
      fc.property(vectorArb, vectorArb, (a, b) => {
        merge(a, b);
      }),
    );
  });
});

describe('dominates', () => {
  it('is reflexive', () => {
    fc.assert(fc.property(vectorArb, (a) => dominates(a, a)));
  });

  it('is antisymmetric: mutual dominance means the same knowledge', () => {
    fc.assert(fc.property(vectorArb, vectorArb, (a, b) => !(dominates(a, b) && dominates(b, a)) || same(a, b)));
  });

  it('is transitive', () => {
    fc.assert(
      fc.property(vectorArb, vectorArb, vectorArb, (a, b, c) => !(dominates(a, b) && dominates(b, c)) || dominates(a, c)),
    );
  });

  it('holds exactly when merging adds nothing', () => {
    fc.assert(fc.property(vectorArb, vectorArb, (a, b) => dominates(a, b) === same(merge(a, b), a)));
  });

  it('treats a missing origin as seq 0', () => {
    expect(dominates(emptyVector, { n1: 0 })).toBe(true);
    expect(dominates({ n1: 0 }, emptyVector)).toBe(true);
    expect(dominates(emptyVector, { n1: 1 })).toBe(false);
    expect(dominates({ n1: 2, n2: 1 }, { n1: 3 })).toBe(false);
  });

  // Origins are object keys: one named like an Object.prototype member must read as seq 0 when
  // absent (the cursor format admits such names).
  it.each([['constructor'], ['toString'], ['__proto__']])('treats an origin named %j as any other', (origin) => {
    const seen: VersionVector = Object.fromEntries([[origin, 3]]);
    expect(seqOf(emptyVector, origin)).toBe(0);
    expect(dominates(emptyVector, seen)).toBe(false);
    expect(dominates(seen, emptyVector)).toBe(true);
    expect(seqOf(merge(emptyVector, seen), origin)).toBe(3);
    expect(seqOf(advance(emptyVector, origin, 3), origin)).toBe(3);
    // Advancing another origin keeps this one.
    const both = advance(seen, 'n9', 1);
    expect([seqOf(both, origin), seqOf(both, 'n9'), Object.keys(both).length]).toEqual([3, 1, 2]);
    expect(seqOf(advance(advance(emptyVector, 'n9', 1), origin, 4), origin)).toBe(4);
    expect(covers(emptyVector, origin, 1)).toBe(false);
  });
});

describe('advance', () => {
  it('is monotone: the result dominates the input', () => {
    fc.assert(fc.property(vectorArb, originArb, fc.integer({ min: 0, max: 60 }), (v, origin, seq) => dominates(advance(v, origin, seq), v)));
  });

  it('raises one origin to at least seq and leaves the others alone', () => {
    fc.assert(
      fc.property(vectorArb, originArb, fc.integer({ min: 0, max: 60 }), originArb, (v, origin, seq, other) => {
        const next = advance(v, origin, seq);
        expect(seqOf(next, origin)).toBe(Math.max(seqOf(v, origin), seq));
        if (other !== origin) expect(seqOf(next, other)).toBe(seqOf(v, other));
      }),
    );
  });

  it('never moves back, and returns the same vector when there is nothing new', () => {
    const v = frozen({ n1: 5 });
    expect(advance(v, 'n1', 3)).toBe(v);
    expect(advance(v, 'n1', 5)).toBe(v);
    expect(advance(v, 'n1', 6)).toEqual({ n1: 6 });
    expect(v).toEqual({ n1: 5 });
  });

  it('equals merging a one-origin vector', () => {
    fc.assert(
      fc.property(vectorArb, originArb, fc.integer({ min: 0, max: 60 }), (v, origin, seq) => same(advance(v, origin, seq), merge(v, { [origin]: seq }))),
    );
  });

  it('in any order, reaches the merge of everything seen', () => {
    const recordArb = fc.array(fc.tuple(originArb, fc.integer({ min: 1, max: 60 })), { maxLength: 20 });
    fc.assert(
      fc.property(recordArb, (records) => {
        const forward = records.reduce<VersionVector>((v, [o, s]) => advance(v, o, s), emptyVector);
        const backward = [...records].reverse().reduce<VersionVector>((v, [o, s]) => advance(v, o, s), emptyVector);
        return same(forward, backward);
      }),
    );
  });
});

describe('covers', () => {
  it('holds exactly for records at or below the origin seq', () => {
    fc.assert(
      fc.property(vectorArb, originArb, fc.integer({ min: 0, max: 60 }), (v, origin, seq) => covers(v, origin, seq) === seqOf(v, origin) >= seq),
    );
  });

  it('holds after advancing to that record', () => {
    fc.assert(fc.property(vectorArb, originArb, fc.integer({ min: 1, max: 60 }), (v, origin, seq) => covers(advance(v, origin, seq), origin, seq)));
  });
});
