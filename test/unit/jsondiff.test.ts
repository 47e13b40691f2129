import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/model/errors.js';
import { isJsonObject, jsonEqual, type JsonObject, type JsonValue } from '../../src/model/json.js';
import {
  applyDiff,
  applyDiffLenient,
  DiffApplyError,
  diffObjects,
  isEmptyDiff,
  parseDiff,
  transform,
  type DiffOp,
  type ListDiff,
  type ObjectDiff,
} from '../../src/model/jsondiff.js';
import { codeOf } from '../support/codes.js';

// ---------------------------------------------------------------------------------------------
// Generators: small key and character sets, so that two edits of one base collide often.
// ---------------------------------------------------------------------------------------------

const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'title', '__proto__', 'two words');
const textArb = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'é', '😀', '😃'), maxLength: 16 });
const leafArb: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 2, arbitrary: fc.integer({ min: -50, max: 50 }) },
  { weight: 3, arbitrary: textArb },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }) },
);

function valueArb(depth: number): fc.Arbitrary<JsonValue> {
  if (depth === 0) return leafArb;
  const inner = valueArb(depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: leafArb },
    { weight: 1, arbitrary: fc.array(inner, { maxLength: 4 }) },
    { weight: 1, arbitrary: fc.dictionary(keyArb, inner, { maxKeys: 4 }) },
  );
}

const objectArb: fc.Arbitrary<JsonObject> = fc.dictionary(keyArb, valueArb(2), { maxKeys: 5 });

const DELETE = Symbol('delete');

/** Assignment to `__proto__` would set the prototype: define the key instead. */
function put(obj: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/** A random edit of `value`, as a user would make: keep, replace, or edit in place. */
function mutateValue(value: JsonValue): fc.Arbitrary<JsonValue> {
  const options: Array<fc.WeightedArbitrary<JsonValue>> = [
    { weight: 2, arbitrary: fc.constant(value) },
    { weight: 1, arbitrary: valueArb(1) },
  ];
  if (typeof value === 'string') {
    const chars = [...value];
    options.push({
      weight: 3,
      arbitrary: fc
        .tuple(fc.nat({ max: chars.length }), fc.nat({ max: 3 }), fc.string({ unit: fc.constantFrom('x', 'y', '😃'), maxLength: 3 }))
        .map(([at, removed, inserted]) => chars.slice(0, at).join('') + inserted + chars.slice(at + removed).join('')),
    });
  }
  if (typeof value === 'number' && Number.isInteger(value)) {
    options.push({ weight: 2, arbitrary: fc.integer({ min: -5, max: 5 }).map((k) => value + k) });
  }
  if (Array.isArray(value)) options.push({ weight: 3, arbitrary: mutateArray(value) });
  if (isJsonObject(value)) options.push({ weight: 3, arbitrary: mutateObject(value) });
  return fc.oneof(...options);
}

function keepOrDelete(value: JsonValue): fc.Arbitrary<JsonValue | typeof DELETE> {
  return fc.oneof({ weight: 4, arbitrary: mutateValue(value) }, { weight: 1, arbitrary: fc.constant(DELETE) });
}

function mutateObject(obj: JsonObject): fc.Arbitrary<JsonObject> {
  const keys = Object.keys(obj);
  return fc
    .tuple(fc.tuple(...keys.map((key) => keepOrDelete(obj[key] as JsonValue))), fc.dictionary(keyArb, valueArb(1), { maxKeys: 2 }))
    .map(([values, added]) => {
      const out: JsonObject = {};
      keys.forEach((key, i) => {
        const value = values[i];
        if (value !== DELETE && value !== undefined) put(out, key, value);
      });
      for (const key of Object.keys(added)) if (!Object.hasOwn(obj, key)) put(out, key, added[key] as JsonValue);
      return out;
    });
}

function mutateArray(list: JsonValue[]): fc.Arbitrary<JsonValue[]> {
  return fc
    .tuple(
      fc.tuple(...list.map((value) => keepOrDelete(value))),
      fc.array(fc.tuple(fc.nat({ max: list.length }), valueArb(1)), { maxLength: 2 }),
    )
    .map(([values, inserts]) => {
      const out: JsonValue[] = [];
      for (let gap = 0; gap <= list.length; gap++) {
        for (const [at, value] of inserts) if (at === gap) out.push(value);
        const value = values[gap];
        if (gap < list.length && value !== DELETE && value !== undefined) out.push(value);
      }
      return out;
    });
}

/** Turns some integer `r` ops into the equivalent `I`, as a client counting clicks would send. */
function withIncrements(base: JsonObject, diff: ObjectDiff, flags: boolean[]): ObjectDiff {
  let cursor = 0;
  const convert = (before: JsonValue | undefined, op: DiffOp): DiffOp => {
    if (op.o === 'r' && typeof op.v === 'number' && typeof before === 'number') {
      const delta = op.v - before;
      if (Number.isSafeInteger(before) && Number.isSafeInteger(op.v) && flags[cursor++] === true) return { o: 'I', v: delta };
    }
    if (op.o === 'O' && isJsonObject(before)) return { o: 'O', v: walk(before, op.v) };
    if (op.o === 'L' && Array.isArray(before)) {
      const v: ObjectDiff = {};
      for (const key of Object.keys(op.v)) v[key] = convert(before[Number(key)], op.v[key] as DiffOp);
      return { o: 'L', v };
    }
    return op;
  };
  const walk = (obj: JsonObject, d: ObjectDiff): ObjectDiff => {
    const out: ObjectDiff = {};
    for (const key of Object.keys(d)) {
      const op = convert(Object.hasOwn(obj, key) ? obj[key] : undefined, d[key] as DiffOp);
      Object.defineProperty(out, key, { value: op, writable: true, enumerable: true, configurable: true });
    }
    return out;
  };
  return walk(base, diff);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
    Object.freeze(value);
  }
  return value;
}

/**
 * A list diff as a client or an earlier transform may send it, mixing `+` and `-` (diffObjects
 * never does): element ops at original indices, inserts at valid result indices that no other
 * op uses.
 */
function rawListDiffArb(list: JsonValue[]): fc.Arbitrary<ListDiff> {
  const elementOp = (value: JsonValue): fc.Arbitrary<DiffOp | null> =>
    fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 2, arbitrary: fc.constant<DiffOp>({ o: '-' }) },
      { weight: 2, arbitrary: mutateValue(value).map((after) => diffObjects({ x: value }, { x: after }).x ?? null) },
    );
  return fc
    .tuple(fc.tuple(...list.map(elementOp)), fc.array(fc.tuple(fc.nat({ max: list.length + 3 }), leafArb), { maxLength: 3 }))
    .map(([ops, inserts]) => {
      const out: ListDiff = {};
      ops.forEach((op, i) => {
        if (op !== null) out[i] = op;
      });
      const survivors = ops.filter((op) => op?.o !== '-').length;
      let rank = 0;
      for (const [index, value] of [...inserts].sort((x, y) => x[0] - y[0])) {
        if (Object.hasOwn(out, index) || index - rank > survivors) continue;
        out[index] = { o: '+', v: value };
        rank++;
      }
      return out;
    });
}

/** Two realistic concurrent changes of one base (sometimes the very same change). */
const scenarioArb = objectArb.chain((base) =>
  mutateObject(base).chain((editedA) =>
    fc.record({
      base: fc.constant(base),
      editedA: fc.constant(editedA),
      editedB: fc.oneof({ weight: 5, arbitrary: mutateObject(base) }, { weight: 1, arbitrary: fc.constant(editedA) }),
      flagsA: fc.array(fc.boolean(), { maxLength: 8 }),
      flagsB: fc.array(fc.boolean(), { maxLength: 8 }),
    }),
  ),
);

function expectJsonEqual(actual: JsonValue, expected: JsonValue): void {
  if (!jsonEqual(actual, expected)) expect(actual).toEqual(expected);
}

function own(obj: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}


/** Both orders of application, B winning: the two sides of the convergence law. */
function bothOrders(base: JsonObject, a: ObjectDiff, b: ObjectDiff): [JsonObject, JsonObject] {
  const aThenB = applyDiff(applyDiff(base, a), transform(b, a, base, true));
  const bThenA = applyDiff(applyDiff(base, b), transform(a, b, base, false));
  return [aThenB, bThenA];
}

// ---------------------------------------------------------------------------------------------

describe('parseDiff', () => {
  it('accepts every operation and returns a detached copy', () => {
    const input = {
      title: { o: 'd', v: '=6\t+big \t=5' },
      count: { o: 'I', v: -2.5 },
      gone: { o: '-' },
      goneWithValue: { o: '-', v: [1] },
      added: { o: '+', v: { nested: [1, 'x', null] } },
      replaced: { o: 'r', v: false },
      nested: { o: 'O', v: { inner: { o: 'r', v: 1 } } },
      list: { o: 'L', v: { '0': { o: '+', v: 'x' }, '12': { o: 'O', v: {} } } },
    };
    const parsed = parseDiff(JSON.parse(JSON.stringify(input)), 8);
    expect(parsed).toEqual(input);
    expect(parsed.added).not.toBe(input.added);
  });

  it('keeps a "__proto__" key as data', () => {
    const parsed = parseDiff(JSON.parse('{"__proto__": {"o": "r", "v": 1}}'), 4);
    expect(Object.keys(parsed)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
  });

  const malformed: Array<[string, unknown]> = [
    ['null', null],
    ['an array', []],
    ['a string', 'diff'],
    ['an op that is not an object', { a: 1 }],
    ['an op that is an array', { a: [] }],
    ['an unknown op', { a: { o: 'x', v: 1 } }],
    ['a missing op', { a: { v: 1 } }],
    ['an extra field', { a: { o: 'r', v: 1, w: 2 } }],
    ['+ without v', { a: { o: '+' } }],
    ['r without v', { a: { o: 'r' } }],
    ['r with undefined', { a: { o: 'r', v: undefined } }],
    ['r with NaN', { a: { o: 'r', v: Number.NaN } }],
    ['r with a function', { a: { o: 'r', v: () => 1 } }],
    ['r with a Date', { a: { o: 'r', v: new Date(0) } }],
    ['I with a string', { a: { o: 'I', v: '1' } }],
    ['I with Infinity', { a: { o: 'I', v: Number.POSITIVE_INFINITY } }],
    ['d with a number', { a: { o: 'd', v: 3 } }],
    ['d with a malformed delta', { a: { o: 'd', v: '*3' } }],
    ['O with an array', { a: { o: 'O', v: [] } }],
    ['O with a malformed inner op', { a: { o: 'O', v: { b: { o: 'I', v: 'x' } } } }],
    ['L with a non-canonical index', { a: { o: 'L', v: { '01': { o: '-' } } } }],
    ['L with a negative index', { a: { o: 'L', v: { '-1': { o: '-' } } } }],
    ['L with a fractional index', { a: { o: 'L', v: { '1.5': { o: '-' } } } }],
    ['L with a word index', { a: { o: 'L', v: { x: { o: '-' } } } }],
    ['L with a malformed element op', { a: { o: 'L', v: { '0': { o: '+' } } } }],
    ['nesting deeper than the limit', { a: { o: 'O', v: { b: { o: 'O', v: { c: { o: 'O', v: {} } } } } } }],
    ['a value deeper than the limit', { a: { o: 'O', v: { b: { o: '+', v: [[1]] } } } }],
  ];
  it.each(malformed)('rejects %s with INVALID_INPUT', (_name, input) => {
    expect(codeOf(() => parseDiff(input, 3))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('accepts everything diffObjects produces (property)', () => {
    fc.assert(
      fc.property(objectArb, objectArb, (a, b) => {
        const diff = diffObjects(a, b);
        expect(parseDiff(JSON.parse(JSON.stringify(diff)), 16)).toEqual(JSON.parse(JSON.stringify(diff)));
      }),
      { numRuns: 200 },
    );
  });
});

describe('diffObjects', () => {
  it('uses Simperium defaults', () => {
    const a = { same: 1, text: 'hello world', short: 'ab', n: 1, t: true, obj: { x: 1 }, gone: 1, kind: 'str' };
    const b = { same: 1, text: 'hello big world', short: 'xy', n: 2, t: false, obj: { x: 2 }, added: [1], kind: 5 };
    expect(diffObjects(a, b)).toEqual({
      text: { o: 'd', v: '=6\t+big \t=5' },
      short: { o: 'r', v: 'xy' },
      n: { o: 'r', v: 2 },
      t: { o: 'r', v: false },
      obj: { o: 'O', v: { x: { o: 'r', v: 2 } } },
      gone: { o: '-' },
      added: { o: '+', v: [1] },
      kind: { o: 'r', v: 5 },
    });
    expect(diffObjects({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toEqual({});
  });

  it('diffs lists after trimming the common prefix and suffix', () => {
    expect(diffObjects({ l: [1, 2, 3] }, { l: [1, 9, 2, 3] })).toEqual({ l: { o: 'L', v: { 1: { o: '+', v: 9 } } } });
    expect(diffObjects({ l: [1, 2, 3, 4] }, { l: [1, 4] })).toEqual({ l: { o: 'L', v: { 1: { o: '-' }, 2: { o: '-' } } } });
    expect(diffObjects({ l: [1, 2, 3] }, { l: [1, 5, 6, 7, 3] })).toEqual({
      l: { o: 'L', v: { 1: { o: 'r', v: 5 }, 2: { o: '+', v: 6 }, 3: { o: '+', v: 7 } } },
    });
  });

  it('round-trips: applyDiff(a, diffObjects(a, b)) equals b (property)', () => {
    const related = objectArb.chain((a) => fc.tuple(fc.constant(a), mutateObject(a)));
    const anyJson = fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
    fc.assert(
      fc.property(fc.oneof(related, fc.tuple(objectArb, objectArb), fc.tuple(anyJson, anyJson)), ([a, b]) => {
        deepFreeze(a);
        deepFreeze(b);
        expectJsonEqual(applyDiff(a as JsonObject, diffObjects(a as JsonObject, b as JsonObject)), b as JsonObject);
      }),
      { numRuns: 400 },
    );
  });

  it('replaces a string containing a lone surrogate instead of diffing it', () => {
    const diff = diffObjects({ s: 'abcdefgh' }, { s: 'abcdefgh\ud800' });
    expect(diff).toEqual({ s: { o: 'r', v: 'abcdefgh\ud800' } });
  });
});

describe('applyDiff', () => {
  it('follows the list index convention: edits and deletes at original indices, inserts at result indices', () => {
    const base = { l: ['a', 'b', 'c', 'd'] };
    expect(applyDiff(base, { l: { o: 'L', v: { 1: { o: '-' }, 3: { o: 'r', v: 'D' } } } })).toEqual({ l: ['a', 'c', 'D'] });
    expect(applyDiff({ l: ['a', 'b'] }, { l: { o: 'L', v: { 1: { o: '+', v: 'x' }, 3: { o: '+', v: 'y' } } } })).toEqual({
      l: ['a', 'x', 'b', 'y'],
    });
  });

  it('applies I, nested O and L, and d', () => {
    const base = { n: 1, o: { s: 'hello world', l: [{ k: 1 }] } };
    const diff: ObjectDiff = {
      n: { o: 'I', v: 2 },
      o: { o: 'O', v: { s: { o: 'd', v: '=6\t+big \t=5' }, l: { o: 'L', v: { 0: { o: 'O', v: { k: { o: 'I', v: 1 } } } } } } },
    };
    expect(applyDiff(base, diff)).toEqual({ n: 3, o: { s: 'hello big world', l: [{ k: 2 }] } });
  });

  it('shares no objects with its inputs', () => {
    const base = { keep: { deep: [1] }, set: 0 };
    const diff: ObjectDiff = { set: { o: 'r', v: { x: [1] } } };
    const out = applyDiff(base, diff);
    expect(out.keep).not.toBe(base.keep);
    expect(out.set).not.toBe((diff.set as { v: JsonValue }).v);
  });

  const misfits: Array<[string, JsonObject, ObjectDiff]> = [
    ['+ of an existing key', { a: 1 }, { a: { o: '+', v: 2 } }],
    ['- of a missing key', {}, { a: { o: '-' } }],
    ['r of a missing key', {}, { a: { o: 'r', v: 1 } }],
    ['I of a missing key', {}, { a: { o: 'I', v: 1 } }],
    ['O of a missing key', {}, { a: { o: 'O', v: {} } }],
    ['L of a missing key', {}, { a: { o: 'L', v: {} } }],
    ['d of a missing key', {}, { a: { o: 'd', v: '' } }],
    ['I on a string', { a: 'x' }, { a: { o: 'I', v: 1 } }],
    ['I overflowing', { a: Number.MAX_VALUE }, { a: { o: 'I', v: Number.MAX_VALUE } }],
    ['O on an array', { a: [] }, { a: { o: 'O', v: {} } }],
    ['O on null', { a: null }, { a: { o: 'O', v: {} } }],
    ['L on an object', { a: {} }, { a: { o: 'L', v: {} } }],
    ['L edit past the end', { a: [1] }, { a: { o: 'L', v: { 1: { o: 'r', v: 2 } } } }],
    ['L delete past the end', { a: [1] }, { a: { o: 'L', v: { 5: { o: '-' } } } }],
    ['L insert past the end', { a: [1] }, { a: { o: 'L', v: { 2: { o: '+', v: 2 } } } }],
    ['L with a malformed index', { a: [1] }, { a: { o: 'L', v: { x: { o: '-' } } } }],
    ['d on a number', { a: 1 }, { a: { o: 'd', v: '=1' } }],
    ['d that does not fit', { a: 'abc' }, { a: { o: 'd', v: '=5' } }],
    ['nested misfit', { a: { b: 1 } }, { a: { o: 'O', v: { c: { o: '-' } } } }],
  ];
  it.each(misfits)('throws DiffApplyError (INVALID_INPUT) for %s', (_name, base, diff) => {
    let caught: unknown;
    try {
      applyDiff(base, diff);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DiffApplyError);
    expect((caught as DiffApplyError).code).toBe(ErrorCode.INVALID_INPUT);
  });
});

describe('applyDiffLenient', () => {
  const cases: Array<[string, JsonObject, ObjectDiff, JsonObject]> = [
    ['+ on an existing key sets it', { a: 1 }, { a: { o: '+', v: 2 } }, { a: 2 }],
    ['r on a missing key sets it', {}, { a: { o: 'r', v: 2 } }, { a: 2 }],
    ['- on a missing key is a no-op', { b: 1 }, { a: { o: '-' } }, { b: 1 }],
    ['I adds to a number', { a: 1 }, { a: { o: 'I', v: 2 } }, { a: 3 }],
    ['I on a missing key sets v', {}, { a: { o: 'I', v: 2 } }, { a: 2 }],
    ['I on a string sets v', { a: 'x' }, { a: { o: 'I', v: 2 } }, { a: 2 }],
    ['I overflowing keeps the number', { a: Number.MAX_VALUE }, { a: { o: 'I', v: Number.MAX_VALUE } }, { a: Number.MAX_VALUE }],
    ['O on a non-object starts from {}', { a: 5 }, { a: { o: 'O', v: { x: { o: 'I', v: 1 } } } }, { a: { x: 1 } }],
    ['O on a missing key starts from {}', {}, { a: { o: 'O', v: { x: { o: '-' } } } }, { a: {} }],
    ['L on a non-array starts from []', { a: 'x' }, { a: { o: 'L', v: { 3: { o: '+', v: 1 } } } }, { a: [1] }],
    [
      'L clamps inserts, appends replacements past the end, ignores the rest',
      { a: [1, 2] },
      { a: { o: 'L', v: { 0: { o: '-' }, 4: { o: 'I', v: 1 }, 5: { o: '+', v: 'x' }, 7: { o: 'r', v: 'y' } } } },
      { a: [2, 'x', 'y'] },
    ],
    ['d that fits applies', { a: 'hello world' }, { a: { o: 'd', v: '=6\t+big \t=5' } }, { a: 'hello big world' }],
    ['d that does not fit leaves the string', { a: 'hello' }, { a: { o: 'd', v: '=6\t+big \t=5' } }, { a: 'hello' }],
    ['d on a non-string leaves it', { a: 5 }, { a: { o: 'd', v: '=1' } }, { a: 5 }],
    ['d on a missing key leaves it missing', {}, { a: { o: 'd', v: '+x' } }, {}],
  ];
  it.each(cases)('%s', (_name, base, diff, expected) => {
    expect(applyDiffLenient(base, diff)).toEqual(expected);
  });

  it('agrees with applyDiff whenever the diff fits (property)', () => {
    fc.assert(
      fc.property(
        objectArb.chain((a) => fc.tuple(fc.constant(a), mutateObject(a))),
        ([a, b]) => {
          const diff = diffObjects(a, b);
          expectJsonEqual(applyDiffLenient(a, diff), applyDiff(a, diff));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('never throws on content (property)', () => {
    fc.assert(
      fc.property(objectArb, objectArb, objectArb, (a, b, other) => {
        applyDiffLenient(other, diffObjects(a, b));
      }),
      { numRuns: 200 },
    );
  });
});

describe('transform', () => {
  it('converges: both orders of application give the same document (property)', () => {
    fc.assert(
      fc.property(scenarioArb, ({ base, editedA, editedB, flagsA, flagsB }) => {
        const a = deepFreeze(withIncrements(base, diffObjects(base, editedA), flagsA));
        const b = deepFreeze(withIncrements(base, diffObjects(base, editedB), flagsB));
        deepFreeze(base);
        const bOverA = transform(b, a, base, true);
        const aOverB = transform(a, b, base, false);
        // Both must apply strictly (applyDiff throws otherwise) and be well-formed on the wire.
        const [aThenB, bThenA] = [applyDiff(applyDiff(base, a), bOverA), applyDiff(applyDiff(base, b), aOverB)];
        expectJsonEqual(aThenB, bThenA);
        parseDiff(JSON.parse(JSON.stringify(bOverA)), 16);
        parseDiff(JSON.parse(JSON.stringify(aOverB)), 16);
      }),
      { numRuns: 600 },
    );
  });

  it('converges for list diffs that mix inserts and deletes (property)', () => {
    const listArb = fc.array(valueArb(1), { maxLength: 6 });
    const scenario = fc
      .tuple(listArb, listArb)
      .chain(([l, m]) =>
        fc.tuple(fc.constant({ l, m }), rawListDiffArb(l), rawListDiffArb(l), rawListDiffArb(m), rawListDiffArb(m)),
      );
    fc.assert(
      fc.property(scenario, ([base, la, lb, ma, mb]) => {
        const a: ObjectDiff = { l: { o: 'L', v: la }, m: { o: 'L', v: ma } };
        const b: ObjectDiff = { l: { o: 'L', v: lb }, m: { o: 'L', v: mb } };
        const [aThenB, bThenA] = bothOrders(base, a, b);
        expectJsonEqual(aThenB, bThenA);
      }),
      { numRuns: 400 },
    );
  });

  it('keeps both sides when they touch different keys (property)', () => {
    fc.assert(
      fc.property(scenarioArb, ({ base, editedA, editedB }) => {
        const a = diffObjects(base, editedA);
        const b = diffObjects(base, editedB);
        const touchedByA = new Set(Object.keys(a));
        fc.pre(Object.keys(b).every((key) => !touchedByA.has(key)));
        expect(transform(b, a, base, true)).toEqual(b);
        expect(transform(a, b, base, false)).toEqual(a);
        const [merged] = bothOrders(base, a, b);
        for (const key of Object.keys(a)) expect(own(merged, key)).toEqual(own(editedA, key));
        for (const key of Object.keys(b)) expect(own(merged, key)).toEqual(own(editedB, key));
      }),
      { numRuns: 200 },
    );
  });

  it('is the identity against an empty remote, and empty for an empty local', () => {
    const base = { a: 1, t: 'x' };
    const local: ObjectDiff = { a: { o: 'I', v: 1 }, t: { o: 'd', v: '=1\t+y' } };
    expect(transform(local, {}, base, true)).toEqual(local);
    expect(isEmptyDiff(transform({}, local, base, true))).toBe(true);
  });

  it('merges every key both sides edited, not only the first', () => {
    const base = { title: 'hello world', body: 'the quick fox', note: 'first line', kept: 1 };
    const a = diffObjects(base, { title: 'hello big world', body: 'the quick brown fox', note: 'first line', kept: 1, fromA: 'a' });
    const b = diffObjects(base, { title: 'hello world!', body: 'the quick fox jumps', note: 'first line, second', kept: 1, fromB: 'b' });
    const [aThenB, bThenA] = bothOrders(base, a, b);
    expect(aThenB).toEqual({
      title: 'hello big world!',
      body: 'the quick brown fox jumps',
      note: 'first line, second',
      kept: 1,
      fromA: 'a',
      fromB: 'b',
    });
    expect(bThenA).toEqual(aThenB);
  });

  it('merges text with the winner as the later side', () => {
    const base = { s: 'abc' };
    const a: ObjectDiff = { s: { o: 'd', v: '=3\t+A' } };
    const b: ObjectDiff = { s: { o: 'd', v: '=3\t+B' } };
    const [aThenB, bThenA] = bothOrders(base, a, b);
    expect(aThenB).toEqual(bThenA);
    expect(aThenB.s).toMatch(/^abc(AB|BA)$/);
  });

  it('adds concurrent increments', () => {
    const base = { n: 10, o: { m: 1 } };
    const a: ObjectDiff = { n: { o: 'I', v: 5 }, o: { o: 'O', v: { m: { o: 'I', v: 1 } } } };
    const b: ObjectDiff = { n: { o: 'I', v: -3 }, o: { o: 'O', v: { m: { o: 'I', v: 2 } } } };
    expect(transform(b, a, base, true)).toEqual(b);
    const [aThenB, bThenA] = bothOrders(base, a, b);
    expect(aThenB).toEqual({ n: 12, o: { m: 4 } });
    expect(bThenA).toEqual(aThenB);
  });

  it('reads a number replaced against a concurrent increment as an increment, both ways', () => {
    const base = { n: 10 };
    const set: ObjectDiff = { n: { o: 'r', v: 15 } };
    const inc: ObjectDiff = { n: { o: 'I', v: 7 } };
    for (const [a, b] of [
      [set, inc],
      [inc, set],
    ] as const) {
      const [aThenB, bThenA] = bothOrders(base, a, b);
      expect(aThenB).toEqual({ n: 22 });
      expect(bThenA).toEqual(aThenB);
    }
  });

  it('adds fractional increments in one canonical order', () => {
    // (0.3 + 0.6) + 0.1 !== (0.3 + 0.1) + 0.6 in floating point: the loser's I would miss.
    const base = { n: 0.3 };
    const a: ObjectDiff = { n: { o: 'I', v: 0.6 } };
    const b: ObjectDiff = { n: { o: 'I', v: 0.1 } };
    expect(transform(a, b, base, false)).toEqual({ n: { o: 'r', v: 0.3 + 0.6 + 0.1 } });
    const [aThenB, bThenA] = bothOrders(base, a, b);
    expect(aThenB).toEqual({ n: 0.3 + 0.6 + 0.1 });
    expect(bThenA).toEqual(aThenB);
  });

  it('keeps the winner increment alone when the sum overflows', () => {
    const base = { n: 0 };
    const a: ObjectDiff = { n: { o: 'I', v: Number.MAX_VALUE * 0.6 } };
    const b: ObjectDiff = { n: { o: 'I', v: Number.MAX_VALUE * 0.7 } };
    expect(bothOrders(base, a, b)).toEqual([{ n: Number.MAX_VALUE * 0.7 }, { n: Number.MAX_VALUE * 0.7 }]);
  });

  it('lets the winner decide between a delete and a nested edit', () => {
    const base = { o: { x: 1, y: 1 } };
    const remove: ObjectDiff = { o: { o: '-' } };
    const edit: ObjectDiff = { o: { o: 'O', v: { x: { o: 'r', v: 2 } } } };
    // The editor wins: the key comes back with the edit applied to the base value.
    expect(transform(edit, remove, base, true)).toEqual({ o: { o: '+', v: { x: 2, y: 1 } } });
    expect(bothOrders(base, remove, edit)).toEqual([{ o: { x: 2, y: 1 } }, { o: { x: 2, y: 1 } }]);
    // The deleter wins: the edit is dropped.
    expect(transform(edit, remove, base, false)).toEqual({});
    expect(bothOrders(base, edit, remove)).toEqual([{}, {}]);
  });

  it('drops identical inserts and double deletes', () => {
    const base = { gone: 1 };
    const same: ObjectDiff = { gone: { o: '-' }, added: { o: '+', v: [1, 2] } };
    expect(transform(same, same, base, true)).toEqual({});
    expect(transform(same, same, base, false)).toEqual({});
  });

  it('lets the winner replace when ops are of different kinds', () => {
    const base = { v: 'some text' };
    const a: ObjectDiff = { v: { o: 'd', v: '=9\t+ more' } };
    const b: ObjectDiff = { v: { o: 'r', v: 42 } };
    expect(bothOrders(base, a, b)).toEqual([{ v: 42 }, { v: 42 }]);
    expect(bothOrders(base, b, a)).toEqual([{ v: 'some text more' }, { v: 'some text more' }]);
  });

  describe('lists', () => {
    it('keeps both elements inserted at the same index, the winner first', () => {
      const base = { l: [1, 2, 3] };
      const a = diffObjects(base, { l: [1, 'a', 2, 3] });
      const b = diffObjects(base, { l: [1, 'b', 2, 3] });
      expect(bothOrders(base, a, b)).toEqual([{ l: [1, 'b', 'a', 2, 3] }, { l: [1, 'b', 'a', 2, 3] }]);
    });

    it("shifts local's indices by remote's inserts and deletes", () => {
      const base = { l: ['a', 'b', 'c', 'd', 'e'] };
      const remote: ObjectDiff = { l: { o: 'L', v: { 0: { o: '+', v: 'X' } } } };
      const local: ObjectDiff = { l: { o: 'L', v: { 3: { o: 'r', v: 'D' }, 5: { o: '+', v: 'Y' } } } };
      expect(transform(local, remote, base, true)).toEqual({ l: { o: 'L', v: { 4: { o: 'r', v: 'D' }, 6: { o: '+', v: 'Y' } } } });
      const removeFirst: ObjectDiff = { l: { o: 'L', v: { 0: { o: '-' } } } };
      expect(transform(local, removeFirst, base, true)).toEqual({ l: { o: 'L', v: { 2: { o: 'r', v: 'D' }, 4: { o: '+', v: 'Y' } } } });
    });

    it('keeps separate inserts as inserts', () => {
      const base = { l: ['a', 'b', 'c'] };
      const remote: ObjectDiff = { l: { o: 'L', v: { 3: { o: '+', v: 'end' } } } };
      const local: ObjectDiff = { l: { o: 'L', v: { 0: { o: '+', v: 'y' }, 3: { o: '+', v: 'z' } } } };
      const [aThenB, bThenA] = bothOrders(base, remote, local);
      expect(aThenB).toEqual({ l: ['y', 'a', 'b', 'z', 'c', 'end'] });
      expect(bThenA).toEqual(aThenB);
      expect(transform(local, remote, base, true)).toEqual(local);
    });

    it('falls back to a trimmed diff when the re-indexed ops would share an index', () => {
      const base = { l: ['a', 'b', 'c'] };
      const local = diffObjects(base, { l: ['x', 'a'] }); // {0: r x, 1: r a, 2: -}
      const remote = diffObjects(base, { l: ['b', 'c'] }); // {0: -}
      // Re-indexed, local' would need a '+' of x at 0 and an edit of b at 0.
      expect(transform(local, remote, base, true)).toEqual({ l: { o: 'L', v: { 0: { o: 'r', v: 'x' }, 1: { o: 'r', v: 'a' } } } });
      expect(bothOrders(base, remote, local)).toEqual([{ l: ['x', 'a'] }, { l: ['x', 'a'] }]);
    });

    it('merges elements both sides edited', () => {
      const base = { l: [{ n: 1, s: 'x' }, 'keep'] };
      const a = diffObjects(base, { l: [{ n: 2, s: 'x' }, 'keep', 'tailA'] });
      const b = diffObjects(base, { l: [{ n: 1, s: 'x', t: true }, 'keep'] });
      expect(bothOrders(base, a, b)).toEqual([
        { l: [{ n: 2, s: 'x', t: true }, 'keep', 'tailA'] },
        { l: [{ n: 2, s: 'x', t: true }, 'keep', 'tailA'] },
      ]);
    });

    it('lets the winner decide between deleting and editing one element', () => {
      const base = { l: [{ x: 1 }, { x: 2 }] };
      const remove: ObjectDiff = { l: { o: 'L', v: { 0: { o: '-' } } } };
      const edit: ObjectDiff = { l: { o: 'L', v: { 0: { o: 'O', v: { x: { o: 'I', v: 10 } } } } } };
      expect(bothOrders(base, remove, edit)).toEqual([{ l: [{ x: 11 }, { x: 2 }] }, { l: [{ x: 11 }, { x: 2 }] }]);
      expect(bothOrders(base, edit, remove)).toEqual([{ l: [{ x: 2 }] }, { l: [{ x: 2 }] }]);
    });
  });

  it('throws DiffApplyError when a diff does not fit the base', () => {
    const base = { a: 1 };
    expect(() => transform({ a: { o: 'r', v: 2 } }, { a: { o: 'O', v: {} } }, base, true)).toThrow(DiffApplyError);
  });
});
