/**
 * Cursors are opaque to clients but strict on the way back in: one position, one cursor. Anything
 * a client could send that we did not issue (tampered, reordered, padded, too long) is refused
 * with INVALID_CURSOR, never with another code and never with a system error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cursorLengthMax, decodeCursor, encodeCursor, type StreamPosition } from '../../src/model/cursor.js';
import { ErrorCode } from '../../src/model/errors.js';
import { codeOf } from '../support/codes.js';


/** A cursor with a hand-written body, as a client forging one would build it. */
const forged = (prefix: string, body: string) => prefix + Buffer.from(body, 'utf8').toString('base64url');

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const partitionArb = fc.string({ unit: fc.constantFrom(...(ALNUM + '._%/-')), minLength: 1, maxLength: 200 });
const originArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(...(ALNUM + '._-')), minLength: 1, maxLength: 64 }),
  fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty'), // names, not members
);
const vectorArb = fc.dictionary(originArb, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { maxKeys: 6 });
const positionArb: fc.Arbitrary<StreamPosition> = fc.record({
  stream: fc.constantFrom('changes' as const, 'events' as const),
  partition: partitionArb,
  vector: vectorArb,
});

describe('encode and decode', () => {
  it('decode(encode(p)) is p for every position', () => {
    fc.assert(
      fc.property(positionArb, (position) => {
        expect(decodeCursor(encodeCursor(position))).toEqual(position);
      }),
    );
  });

  it('a decoded cursor re-encodes to itself', () => {
    fc.assert(
      fc.property(positionArb, (position) => {
        const cursor = encodeCursor(position);
        expect(encodeCursor(decodeCursor(cursor))).toBe(cursor);
      }),
    );
  });

  it('does not depend on the order of the vector entries', () => {
    fc.assert(
      fc.property(positionArb, (position) => {
        const reversed = Object.fromEntries(Object.entries(position.vector).reverse());
        expect(encodeCursor({ ...position, vector: reversed })).toBe(encodeCursor(position));
      }),
    );
  });

  it('leaves out origins at seq 0: they add nothing to a position', () => {
    const base: StreamPosition = { stream: 'changes', partition: 'app/notes', vector: { n1: 4 } };
    expect(encodeCursor({ ...base, vector: { n0: 0, n1: 4 } })).toBe(encodeCursor(base));
    expect(decodeCursor(encodeCursor({ ...base, vector: { n0: 0 } })).vector).toEqual({});
  });

  it('names its stream: a changes cursor is not an events cursor', () => {
    const position = { partition: 'p', vector: { n1: 1 } };
    const changes = encodeCursor({ stream: 'changes', ...position });
    const events = encodeCursor({ stream: 'events', ...position });
    expect(changes.startsWith('c1.')).toBe(true);
    expect(events.startsWith('e1.')).toBe(true);
    expect(decodeCursor(events).stream).toBe('events');
  });

  it('accepts the empty vector (the position before the first record)', () => {
    const cursor = encodeCursor({ stream: 'events', partition: 'p', vector: {} });
    expect(decodeCursor(cursor)).toEqual({ stream: 'events', partition: 'p', vector: {} });
  });

  // An origin is any 1..64 of [A-Za-z0-9._-], so "constructor" and "__proto__" are origins too:
  // decoding must not confuse them with Object.prototype's members.
  it.each([['constructor'], ['toString'], ['__proto__']])('round-trips the origin %j', (origin) => {
    const position: StreamPosition = { stream: 'changes', partition: 'p', vector: { [origin]: 3 } };
    expect(decodeCursor(encodeCursor(position))).toEqual(position);
  });
});

describe('decoding refuses what we did not issue', () => {
  const valid = encodeCursor({ stream: 'changes', partition: 'app/notes', vector: { a1: 5, b2: 7 } });

  it.each([
    ['empty', ''],
    ['no prefix', valid.slice(3)],
    ['unknown prefix', 'x1.' + valid.slice(3)],
    ['future version', 'c2.' + valid.slice(3)],
    ['prefix in upper case', 'C1.' + valid.slice(3)],
    ['prefix only', 'c1.'],
  ])('wrong prefix: %s', (_why, cursor) => expect(codeOf(() => decodeCursor(cursor))).toBe(ErrorCode.INVALID_CURSOR));

  it.each([
    ['base64 padding', valid + '='],
    ['standard base64 alphabet', 'c1.' + Buffer.from('p|a:1', 'utf8').toString('base64')],
    ['trailing garbage', valid + '!'],
    ['embedded whitespace', valid.slice(0, 6) + ' ' + valid.slice(6)],
    ['origins out of order', forged('c1.', 'p|b2:7,a1:5')],
    ['an origin at seq 0', forged('c1.', 'p|a1:0')],
    ['trailing comma', forged('c1.', 'p|a1:5,')],
    ['empty entry', forged('c1.', 'p|a1:5,,b2:7')],
  ])('non-canonical: %s', (_why, cursor) => expect(codeOf(() => decodeCursor(cursor))).toBe(ErrorCode.INVALID_CURSOR));

  it.each([
    ['leading zero', '05'],
    ['negative', '-1'],
    ['plus sign', '+1'],
    ['fraction', '1.5'],
    ['exponent', '1e3'],
    ['hex', '0x10'],
    ['empty', ''],
    ['space', ' 1'],
    ['17 digits', '1'.repeat(17)],
    ['beyond 2^53 (not representable)', '9007199254740993'],
  ])('bad seq: %s', (_why, seq) => expect(codeOf(() => decodeCursor(forged('c1.', `p|a1:${seq}`)))).toBe(ErrorCode.INVALID_CURSOR));

  it.each([
    ['no separator', 'p'],
    ['empty partition', '|a1:1'],
    ['partition with a space', 'my notes|a1:1'],
    ['second separator', 'p|q|a1:1'],
    ['entry without colon', 'p|a1'],
    ['empty origin', 'p|:1'],
    ['origin with a slash', 'p|a/b:1'],
    ['origin of 65 characters', `p|${'o'.repeat(65)}:1`],
    ['partition of 201 characters', `${'p'.repeat(201)}|`],
  ])('malformed body: %s', (_why, body) => expect(codeOf(() => decodeCursor(forged('c1.', body)))).toBe(ErrorCode.INVALID_CURSOR));

  it('refuses a duplicate origin', () => {
    expect(codeOf(() => decodeCursor(forged('c1.', 'p|a1:5,a1:5')))).toBe(ErrorCode.INVALID_CURSOR);
    expect(codeOf(() => decodeCursor(forged('c1.', 'p|a1:5,a1:6')))).toBe(ErrorCode.INVALID_CURSOR);
  });

  it('refuses bytes that are not UTF-8', () => {
    const cursor = 'c1.' + Buffer.from([0x70, 0x7c, 0xff, 0x3a, 0x31]).toString('base64url');
    expect(codeOf(() => decodeCursor(cursor))).toBe(ErrorCode.INVALID_CURSOR);
  });

  it(`refuses anything longer than ${cursorLengthMax} characters, even a canonical encoding`, () => {
    const vector: Record<string, number> = {};
    for (let i = 0; i < 200; i++) vector[`origin-${i}`] = Number.MAX_SAFE_INTEGER;
    const long = encodeCursor({ stream: 'changes', partition: 'p', vector });
    expect(long.length).toBeGreaterThan(cursorLengthMax);
    expect(codeOf(() => decodeCursor(long))).toBe(ErrorCode.INVALID_CURSOR);
    expect(codeOf(() => decodeCursor('c1.' + 'A'.repeat(cursorLengthMax)))).toBe(ErrorCode.INVALID_CURSOR);
  });

  it('accepts the longest canonical cursor within the limit and refuses one byte more', () => {
    // Grow the last origin one character at a time until the cursor would pass the limit.
    const vector: Record<string, number> = {};
    for (let i = 0; i < 335; i++) vector[`o${String(i).padStart(5, '0')}`] = 1;
    const cursorWith = (tail: number) =>
      encodeCursor({ stream: 'changes', partition: 'p', vector: { ...vector, ['z'.repeat(tail)]: 1 } });
    let tail = 1;
    while (cursorWith(tail + 1).length <= cursorLengthMax) tail++;
    expect(tail).toBeLessThanOrEqual(64);
    expect(cursorWith(tail).length).toBeGreaterThan(cursorLengthMax - 4);
    expect(codeOf(() => decodeCursor(cursorWith(tail)))).toBeUndefined();
    expect(codeOf(() => decodeCursor(cursorWith(tail + 1)))).toBe(ErrorCode.INVALID_CURSOR);
  });

  it('either refuses a tampered cursor with INVALID_CURSOR or reads a position that encodes to it', () => {
    fc.assert(
      fc.property(positionArb, fc.nat(), fc.constantFrom(...(ALNUM + '-_=+/.')), (position, at, replacement) => {
        const cursor = encodeCursor(position);
        const i = at % cursor.length;
        const tampered = cursor.slice(0, i) + replacement + cursor.slice(i + 1);
        const code = codeOf(() => decodeCursor(tampered));
        if (code === undefined) expect(encodeCursor(decodeCursor(tampered))).toBe(tampered);
        else expect(code).toBe(ErrorCode.INVALID_CURSOR);
      }),
    );
  });

  it('never fails other than with INVALID_CURSOR on arbitrary input', () => {
    const anyBody = fc.string({ unit: 'binary', maxLength: 120 });
    const input = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.tuple(fc.constantFrom('c1.', 'e1.'), fc.string({ unit: fc.constantFrom(...(ALNUM + '-_=')), maxLength: 200 })).map(([p, b]) => p + b),
      fc.tuple(fc.constantFrom('c1.', 'e1.'), anyBody).map(([p, b]) => forged(p, b)),
    );
    fc.assert(
      fc.property(input, (cursor) => {
        const code = codeOf(() => decodeCursor(cursor));
        if (code === undefined) expect(encodeCursor(decodeCursor(cursor))).toBe(cursor);
        else expect(code).toBe(ErrorCode.INVALID_CURSOR);
      }),
    );
  });
});
