/**
 * JSON values as they travel through syncgraph: `inspectJson` is the gate every client value
 * passes (plain JSON only, depth-limited before anything recursive runs, sized in UTF-8 bytes);
 * `jsonEqual` is structural equality with key order ignored. `inspectJson` reports a problem as a
 * string; the tests check that there is one, never what it says.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cloneJson, inspectJson, jsonEqual, type JsonValue } from '../../src/model/json.js';

const isProblem = (result: ReturnType<typeof inspectJson>) => typeof result === 'string';

/** `levels` arrays or objects nested in one another around a primitive. */
function nested(levels: number, kind: 'array' | 'object' = 'array'): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = kind === 'array' ? [value] : { k: value };
  return value;
}

/** JSON.stringify with sorted keys: two values are equal JSON exactly when these match. */
function canonical(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k] as JsonValue)}`).join(',')}}`;
}

/** Plain JSON, as a parser would produce it (own `__proto__` keys included). */
const jsonArb = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.parse(JSON.stringify(v)) as JsonValue);

describe('inspectJson: depth', () => {
  it.each([
    ['a primitive', 'x', 0],
    ['null', null, 0],
    ['an empty object', {}, 1],
    ['an empty array', [], 1],
    ['an array of primitives', [1, 'a', true, null], 1],
    ['an object holding an array', { a: [1] }, 2],
    ['the deepest branch', { a: 1, b: { c: [[]] }, d: [] }, 4],
  ])('measures %s', (_what, value, depth) => {
    expect(inspectJson(value, 64)).toMatchObject({ depth });
  });

  it('accepts nesting up to depthMax and refuses one level more', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.constantFrom('array' as const, 'object' as const), (levels, depthMax, kind) => {
        const result = inspectJson(nested(levels, kind), depthMax);
        if (levels <= depthMax) expect(result).toMatchObject({ depth: levels });
        else expect(isProblem(result)).toBe(true);
      }),
    );
  });

  it('refuses hostile nesting without overflowing the stack', () => {
    const deep = nested(200_000);
    expect(isProblem(inspectJson(deep, 64))).toBe(true);
  });

  it('refuses a cycle (it is infinitely deep)', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    expect(isProblem(inspectJson(cycle, 32))).toBe(true);
    const list: unknown[] = [];
    list.push(list);
    expect(isProblem(inspectJson(list, 32))).toBe(true);
  });
});

describe('inspectJson: plain JSON only', () => {
  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['NaN in an array', [1, NaN]],
    ['Infinity in an object', { a: { b: Infinity } }],
  ])('refuses the non-finite number %s', (_what, value) => expect(isProblem(inspectJson(value, 64))).toBe(true));

  class Point {
    x = 1;
  }
  it.each([
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a Set', new Set([1])],
    ['a RegExp', /a/],
    ['a class instance', new Point()],
    ['a boxed number', Object(1)],
    ['a typed array', new Uint8Array(2)],
    ['a Buffer', Buffer.from('a')],
    ['an Error', new Error('x')],
    ['a nested Date', { when: [new Date(0)] }],
    ['an object with a custom prototype', Object.create({ inherited: 1 })],
  ])('refuses %s', (_what, value) => expect(isProblem(inspectJson(value, 64))).toBe(true));

  it.each([
    ['undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a bigint', 1n],
    ['an undefined property', { a: undefined }],
    ['an undefined element', [undefined]],
    ['an array hole', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a method (toJSON would rewrite the value)', { toJSON: () => 'x' }],
  ])('refuses %s', (_what, value) => expect(isProblem(inspectJson(value, 64))).toBe(true));

  it('accepts an object without a prototype', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.a = 1;
    expect(inspectJson(bare, 64)).toEqual({ depth: 1, bytes: 7 });
  });

  it('accepts every JSON value', () => {
    fc.assert(fc.property(jsonArb, (value) => !isProblem(inspectJson(value, 64))));
  });
});

describe('inspectJson: size in UTF-8 bytes of the JSON encoding', () => {
  it.each([
    ['an empty object', {}, 2],
    ['ASCII', { a: 'b' }, 9],
    ['a 3-byte character', { a: '€' }, 11],
    ['a 4-byte character', ['😀'], 8],
    ['an escaped quote', ['"'], 6],
    ['a control character (escaped as \\u0001)', ['\u0001'], 10],
    ['a lone surrogate (escaped as \\ud800)', ['\ud800'], 10],
  ])('counts %s', (_what, value, bytes) => {
    expect(inspectJson(value, 64)).toMatchObject({ bytes });
  });

  it('equals the byte length of JSON.stringify for every JSON value', () => {
    fc.assert(
      fc.property(jsonArb, (value) => {
        expect(inspectJson(value, 64)).toMatchObject({ bytes: Buffer.byteLength(JSON.stringify(value), 'utf8') });
      }),
    );
  });
});

describe('jsonEqual', () => {
  it('is reflexive, and sees a value equal to its JSON round trip', () => {
    fc.assert(fc.property(jsonArb, (v) => jsonEqual(v, v) && jsonEqual(v, JSON.parse(JSON.stringify(v)) as JsonValue)));
  });

  it('ignores key order', () => {
    const reorder = (v: JsonValue): JsonValue => {
      if (v === null || typeof v !== 'object') return v;
      if (Array.isArray(v)) return v.map(reorder);
      return JSON.parse(`{${Object.keys(v).reverse().map((k) => `${JSON.stringify(k)}:${JSON.stringify(reorder(v[k] as JsonValue))}`).join(',')}}`) as JsonValue;
    };
    fc.assert(fc.property(jsonArb, (v) => jsonEqual(v, reorder(v)) && jsonEqual(reorder(v), v)));
  });

  it('agrees with comparing canonical encodings, both ways', () => {
    // Small values, so that equal pairs are common.
    const small = fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.parse(JSON.stringify(v)) as JsonValue);
    const pair = fc.oneof(
      fc.tuple(small, small),
      small.map((v) => [v, JSON.parse(JSON.stringify(v)) as JsonValue] as const),
    );
    fc.assert(
      fc.property(pair, ([a, b]) => {
        expect(jsonEqual(a, b)).toBe(canonical(a) === canonical(b));
        expect(jsonEqual(b, a)).toBe(jsonEqual(a, b));
      }),
    );
  });

  it.each<[string, JsonValue, JsonValue]>([
    ['an array and an object', [], {}],
    ['an object and an array', {}, []],
    ['null and an object', null, {}],
    ['an object and null', {}, null],
    ['a number and its string', 1, '1'],
    ['0 and false', 0, false],
    ['arrays in another order', [1, 2], [2, 1]],
    ['an array and its prefix', [1, 2], [1]],
    ['objects with an extra key', { a: 1 }, { a: 1, b: 2 }],
    ['objects with the same count of other keys', { a: 1, b: 2 }, { a: 1, c: 2 }],
    ['an own __proto__ key and none', JSON.parse('{"__proto__":1}') as JsonValue, {}],
    ['objects differing deep down', { a: [{ b: 1 }] }, { a: [{ b: 2 }] }],
  ])('tells apart %s', (_what, a, b) => {
    expect(jsonEqual(a, b)).toBe(false);
  });

  it('treats -0 as 0, as JSON does', () => {
    expect(jsonEqual(-0, 0)).toBe(true);
  });

  it('compares own __proto__ keys as data', () => {
    expect(jsonEqual(JSON.parse('{"__proto__":{"a":1}}') as JsonValue, JSON.parse('{"__proto__":{"a":1}}') as JsonValue)).toBe(true);
    expect(jsonEqual(JSON.parse('{"__proto__":{"a":1}}') as JsonValue, JSON.parse('{"__proto__":{"a":2}}') as JsonValue)).toBe(false);
  });
});

describe('cloneJson', () => {
  it('makes an equal copy that shares nothing', () => {
    const original = { a: [1, { b: 'c' }], d: null };
    const copy = cloneJson(original);
    expect(jsonEqual(copy, original)).toBe(true);
    expect(copy).not.toBe(original);
    expect(copy.a).not.toBe(original.a);
    expect(copy.a[1]).not.toBe(original.a[1]);
  });

  it('copies every JSON value', () => {
    fc.assert(fc.property(jsonArb, (v) => jsonEqual(cloneJson(v), v)));
  });

  // Assigning `out['__proto__'] = ...` would set the copy's prototype instead of storing the key:
  // the key would be lost and the copy would inherit the value's members.
  it('copies an own __proto__ key as data', () => {
    const value = JSON.parse('{"__proto__":{"admin":true}}') as JsonValue;
    const copy = cloneJson(value);
    expect(Object.keys(copy as object)).toEqual(['__proto__']);
    expect(jsonEqual(copy, value)).toBe(true);
    expect((copy as Record<string, unknown>).admin).toBeUndefined();
  });
});
