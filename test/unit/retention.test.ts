/**
 * Simperium's retention: the `versionMax` most recent versions of an entity, then every 10th,
 * at most `version10Max` of those. `isRetained` is the definition; `versionsToPrune` is the
 * incremental form the engine applies at each write, and must never drift from the definition.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultRetention, isRetained, versionsToPrune, type RetentionPolicy } from '../../src/model/retention.js';

/** Every version of 1..latest that the definition keeps. */
function retainedSet(latest: number, policy: RetentionPolicy): number[] {
  const out: number[] = [];
  for (let v = 1; v <= latest; v++) if (isRetained(v, latest, policy)) out.push(v);
  return out;
}

/**
 * How many versions the policy keeps at `latest`, counted from the rule itself: the recent window,
 * plus the tens below it, capped.
 */
function retainedCount(latest: number, { versionMax, version10Max }: RetentionPolicy): number {
  const recent = Math.min(latest, versionMax);
  const tensBelow = latest > versionMax ? Math.floor((latest - versionMax) / 10) : 0;
  return recent + Math.min(tensBelow, version10Max);
}

// The bounds the engine enforces on bucket options (versionMax 1..10000, version10Max 0..100000),
// scaled down so that N runs past both windows.
const policyArb: fc.Arbitrary<RetentionPolicy> = fc.record({
  versionMax: fc.integer({ min: 1, max: 120 }),
  version10Max: fc.integer({ min: 0, max: 60 }),
});

describe('isRetained, with the defaults (50 recent, then 100 tens)', () => {
  const policy = defaultRetention;
  const kept = (v: number, latest: number) => isRetained(v, latest, policy);

  it('uses the documented defaults', () => {
    expect(defaultRetention).toEqual({ versionMax: 50, version10Max: 100 });
  });

  it('keeps only versions that exist', () => {
    expect(kept(0, 10)).toBe(false);
    expect(kept(-10, 10)).toBe(false);
    expect(kept(11, 10)).toBe(false);
    expect(kept(1, 1)).toBe(true);
  });

  it('keeps everything while there are at most 50 versions', () => {
    expect(retainedSet(50, policy)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('drops version 1 at version 51, but keeps version 10 as a tenth', () => {
    expect(kept(1, 51)).toBe(false);
    expect(kept(2, 51)).toBe(true);
    expect(kept(9, 60)).toBe(false);
    expect(kept(10, 60)).toBe(true);
    expect(kept(11, 60)).toBe(true);
  });

  it('keeps the 50 recent versions and the tens below them at version 200', () => {
    const expected = [...Array.from({ length: 15 }, (_, i) => (i + 1) * 10), ...Array.from({ length: 50 }, (_, i) => 151 + i)];
    expect(retainedSet(200, policy)).toEqual(expected);
    expect(kept(149, 200)).toBe(false);
  });

  it('keeps at most 100 tens: at version 1100 they are 60..1050', () => {
    expect(kept(50, 1100)).toBe(false);
    expect(kept(60, 1100)).toBe(true);
    expect(kept(1050, 1100)).toBe(true);
    expect(kept(1051, 1100)).toBe(true);
    expect(retainedSet(1100, policy)).toHaveLength(150);
  });

  it('counts tens below the recent window only: at version 1055 they are 10..1000', () => {
    expect(kept(10, 1055)).toBe(true);
    expect(kept(1000, 1055)).toBe(true);
    expect(kept(1005, 1055)).toBe(false);
    expect(kept(1006, 1055)).toBe(true);
    expect(retainedSet(1055, policy).filter((v) => v <= 1005)).toHaveLength(100);
  });

  it('keeps 150 versions at version 10000: 8960..9950 by tens, then 9951..10000', () => {
    const set = retainedSet(10_000, policy);
    expect(set).toHaveLength(150);
    expect(set[0]).toBe(8960);
    expect(set[99]).toBe(9950);
    expect(set[100]).toBe(9951);
    expect(set.at(-1)).toBe(10_000);
  });

  it('keeps no tens when version10Max is 0', () => {
    const policy = { versionMax: 5, version10Max: 0 };
    expect(retainedSet(100, policy)).toEqual([96, 97, 98, 99, 100]);
  });
});

describe('isRetained laws', () => {
  it('keeps exactly min(N, versionMax) + min(tens below the window, version10Max) versions', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 1, max: 1500 }), (policy, latest) => {
        expect(retainedSet(latest, policy)).toHaveLength(retainedCount(latest, policy));
      }),
    );
  });

  it('always keeps the latest version and the whole recent window', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 1, max: 5000 }), fc.nat(), (policy, latest, back) => {
        expect(isRetained(latest, latest, policy)).toBe(true);
        const v = latest - (back % Math.min(latest, policy.versionMax));
        expect(isRetained(v, latest, policy)).toBe(true);
      }),
    );
  });

  it('never brings a pruned version back: once dropped, dropped for every later latest', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0, max: 3000 }), (policy, v, a, d) => {
        const latest = Math.max(a, v);
        if (!isRetained(v, latest, policy)) expect(isRetained(v, latest + d, policy)).toBe(false);
      }),
    );
  });
});

describe('versionsToPrune: incremental pruning', () => {
  it('leaves exactly the retained set when applied at every step from 1 to N', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 1, max: 2000 }), (policy, n) => {
        const kept = new Set<number>();
        // Plain checks in the loop (an expect per version would cost seconds); the first
        // violation is reported with its step.
        let violation: string | undefined;
        for (let latest = 1; latest <= n && violation === undefined; latest++) {
          kept.add(latest);
          const pruned = versionsToPrune(latest - 1, latest, policy);
          // One write deletes at most one version leaving the recent window and one leaving the tens.
          if (pruned.length > 2) violation = `step ${latest} prunes ${pruned.length} versions`;
          for (const v of pruned) {
            if (!kept.has(v)) violation = `step ${latest} prunes ${v}, already gone`;
            kept.delete(v);
          }
          // Exact at every step: nothing kept that should go, and as many as the rule keeps.
          for (const v of kept) if (!isRetained(v, latest, policy)) violation = `step ${latest} keeps ${v}`;
          if (kept.size !== retainedCount(latest, policy)) violation = `step ${latest} keeps ${kept.size} versions`;
        }
        expect(violation).toBeUndefined();
        expect([...kept].sort((a, b) => a - b)).toEqual(retainedSet(n, policy));
      }),
    );
  });

  it('returns exactly the versions retained before and not after, sorted, for any jump', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 0, max: 1500 }), fc.integer({ min: 0, max: 300 }), (policy, previous, d) => {
        const latest = previous + d;
        const expected = retainedSet(previous, policy).filter((v) => !isRetained(v, latest, policy));
        expect(versionsToPrune(previous, latest, policy)).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('prunes nothing when the version does not move, or while inside the recent window', () => {
    expect(versionsToPrune(0, 1, defaultRetention)).toEqual([]);
    expect(versionsToPrune(49, 50, defaultRetention)).toEqual([]);
    expect(versionsToPrune(120, 120, defaultRetention)).toEqual([]);
  });

  it.each([
    [50, 51, [1]],
    [59, 60, []], // 10 leaves the recent window but is a tenth
    [60, 61, [11]],
    [1100, 1101, [1051]],
    [1109, 1110, [60]], // 60 leaves the window of tens (1060 left the recent window)
  ])('with the defaults, %i -> %i prunes %j', (previous, latest, expected) => {
    expect(versionsToPrune(previous, latest, defaultRetention)).toEqual(expected);
  });
});
