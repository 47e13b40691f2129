/**
 * model/converge.ts: an entity's state is a function of the set of its records. Histories are
 * generated the way a cluster makes them: several origins, each editing its own replica and
 * now and then receiving what others made, with clocks that respect causality.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareOrder,
  emptyKeyState,
  extend,
  extendsState,
  merge3,
  recordRef,
  replayKey,
  type KeyRecord,
  type KeyState,
} from '../../src/model/converge.js';
import type { JsonObject } from '../../src/model/json.js';

interface Replica {
  origin: string;
  clock: number;
  seq: number;
  records: Map<string, KeyRecord>;
  /** Maintained the way the engine does: extend when possible, else replay. */
  state: KeyState;
}

function receive(replica: Replica, record: KeyRecord): void {
  if (replica.records.has(record.ref)) return;
  replica.records.set(record.ref, record);
  replica.clock = Math.max(replica.clock, record.hlc);
  replica.state = extendsState(replica.state, record) ? extend(replica.state, record) : replayKey([...replica.records.values()]);
}

type Step =
  | { kind: 'edit'; at: number; field: string; value: string | number | null }
  | { kind: 'delete'; at: number }
  | { kind: 'send'; from: number; to: number; count: number };

const fieldArb = fc.constantFrom('title', 'body', 'n', 'tag');
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('edit' as const),
      at: fc.nat(2),
      field: fieldArb,
      value: fc.oneof(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' '), maxLength: 8 }), fc.integer({ min: 0, max: 9 }), fc.constant(null)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('send' as const), from: fc.nat(2), to: fc.nat(2), count: fc.integer({ min: 1, max: 4 }) }) },
);

/** Runs a history; returns the replicas and every record made. */
function run(steps: readonly Step[]): { replicas: Replica[]; all: KeyRecord[] } {
  const replicas: Replica[] = ['n1', 'n2', 'n3'].map((origin) => ({ origin, clock: 0, seq: 0, records: new Map(), state: emptyKeyState }));
  const all: KeyRecord[] = [];
  for (const step of steps) {
    if (step.kind === 'send') {
      const from = replicas[step.from]!;
      const to = replicas[step.to]!;
      const missing = [...from.records.values()].filter((r) => !to.records.has(r.ref)).sort(compareOrder);
      // Causal delivery is not assumed: any subset, in any order.
      for (const record of missing.reverse().slice(0, step.count)) receive(to, record);
      continue;
    }
    const replica = replicas[step.at]!;
    const current = replica.state.data;
    let data: JsonObject | null;
    if (step.kind === 'delete') data = null;
    else {
      data = { ...(current ?? {}) };
      if (step.value === null) delete data[step.field];
      else data[step.field] = step.value;
    }
    replica.seq++;
    replica.clock++;
    const record: KeyRecord = {
      ref: recordRef(replica.origin, replica.seq),
      hlc: replica.clock,
      origin: replica.origin,
      deps: replica.state.heads,
      data,
    };
    all.push(record);
    receive(replica, record);
  }
  return { replicas, all };
}

describe('converge', () => {
  it('orders by clock, then origin', () => {
    expect(compareOrder({ hlc: 1, origin: 'b' }, { hlc: 2, origin: 'a' })).toBeLessThan(0);
    expect(compareOrder({ hlc: 2, origin: 'a' }, { hlc: 2, origin: 'b' })).toBeLessThan(0);
    expect(compareOrder({ hlc: 2, origin: 'a' }, { hlc: 2, origin: 'a' })).toBe(0);
  });

  it('a single chain of records ends in its last state, version = number of records', () => {
    const a: KeyRecord = { ref: 'n1:1', hlc: 1, origin: 'n1', deps: [], data: { x: 1 } };
    const b: KeyRecord = { ref: 'n1:2', hlc: 2, origin: 'n1', deps: ['n1:1'], data: { x: 2 } };
    const c: KeyRecord = { ref: 'n1:3', hlc: 3, origin: 'n1', deps: ['n1:2'], data: null };
    expect(replayKey([c, a, b])).toEqual({ data: null, version: 3, heads: ['n1:3'], last: { hlc: 3, origin: 'n1' } });
  });

  it('concurrent edits of different fields both survive; of one string, merge', () => {
    const base: KeyRecord = { ref: 'n1:1', hlc: 1, origin: 'n1', deps: [], data: { title: 'hello world', n: 1 } };
    const left: KeyRecord = { ref: 'n1:2', hlc: 5, origin: 'n1', deps: ['n1:1'], data: { title: 'hello big world', n: 1 } };
    const right: KeyRecord = { ref: 'n2:1', hlc: 4, origin: 'n2', deps: ['n1:1'], data: { title: 'hello world!', n: 2 } };
    const state = replayKey([right, left, base]);
    expect(state.data).toEqual({ title: 'hello big world!', n: 2 });
    expect(state.version).toBe(3);
    expect(state.heads).toEqual(['n1:2', 'n2:1']);
  });

  it('a later delete wins; a later edit brings a concurrently deleted entity back', () => {
    expect(merge3({ a: 1 }, { a: 2 }, null)).toBeNull();
    expect(merge3({ a: 1 }, null, { a: 1, b: 2 })).toEqual({ a: 1, b: 2 });
    // Two creations from nothing: the later one's fields win where both set them.
    expect(merge3(null, { a: 1, c: 3 }, { a: 2, b: 2 })).toEqual({ a: 2, b: 2, c: 3 });
  });

  it('every replica holding the same set holds the same state, whatever the delivery order', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), fc.nat(), (steps, shuffleSeed) => {
        const { replicas, all } = run(steps);
        const truth = replayKey(all);
        // Permutations of the whole set agree.
        const shuffled = [...all].sort((a, b) => ((hash(a.ref, shuffleSeed) - hash(b.ref, shuffleSeed)) | 0));
        expect(replayKey(shuffled)).toEqual(truth);
        // Replicas that received everything (incrementally, in their own order) agree with it.
        for (const replica of replicas) {
          for (const record of all) receive(replica, record);
          expect(replica.state).toEqual(truth);
        }
        expect(truth.version).toBe(all.length);
      }),
      { numRuns: 300 },
    );
  });

  it('with one writer at a time (records made on everything before), the state is the last record', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 30 }), (steps) => {
        // Every edit made on one replica that first receives everything: no concurrency.
        const sequential = steps.map((s): Step => (s.kind === 'send' ? s : { ...s, at: 0 }));
        const { all } = run(sequential);
        const state = replayKey(all);
        expect(state.data).toEqual(all.at(-1)?.data ?? null);
        expect(state.heads).toEqual(all.length > 0 ? [all.at(-1)!.ref] : []);
      }),
    );
  });
});

function hash(s: string, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x9e3779b1);
  return h;
}
