/**
 * Name rules of Simperium's TYPES.md (shared/seeds/simperium-types.txt): one table of accepted and
 * refused values per field, and properties over each field's alphabet. Refusals are INVALID_INPUT.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/model/errors.js';
import {
  normaliseAppId,
  normaliseCcid,
  validateBucketName,
  validateCcid,
  validateClientId,
  validateEntityKey,
} from '../../src/model/names.js';
import { codeOf } from '../support/codes.js';


const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS = '0123456789';
const HEX = '0123456789abcdefABCDEF';

/** Strings of 1..max characters drawn from `alphabet`. */
const over = (alphabet: string, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength: 1, maxLength });

/** A value from `valid` with one character from outside `alphabet` inserted somewhere. */
const withForeign = (valid: fc.Arbitrary<string>, alphabet: string) =>
  fc
    .tuple(valid, fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), fc.nat())
    .filter(([, c]) => ![...c].every((ch) => alphabet.includes(ch)))
    .map(([v, c, at]) => v.slice(0, at % (v.length + 1)) + c + v.slice(at % (v.length + 1)));

describe('bucket name: 1 to 64 of a-z A-Z 0-9 . _ - %', () => {
  const alphabet = LETTERS + DIGITS + '._-%';

  it.each([['a'], ['notes'], ['Notes_2024.v1'], ['a-b'], ['%20'], ['.'], ['_'], ['-'], ['x'.repeat(64)]])(
    'accepts %j',
    (name) => expect(codeOf(() => validateBucketName(name))).toBeUndefined(),
  );

  it.each([
    ['empty', ''],
    ['65 characters', 'x'.repeat(65)],
    ['space', 'my notes'],
    ['slash', 'a/b'],
    ['at sign (allowed in keys only)', 'a@b'],
    ['colon', 'a:b'],
    ['bang (the layout separator)', 'a!b'],
    ['non-ASCII letter', 'café'],
    ['trailing newline', 'notes\n'],
    ['NUL', 'a\u0000'],
  ])('refuses %s', (_why, name) => expect(codeOf(() => validateBucketName(name))).toBe(ErrorCode.INVALID_INPUT));

  it('accepts every string of the alphabet up to 64 characters', () => {
    fc.assert(fc.property(over(alphabet, 64), (name) => codeOf(() => validateBucketName(name)) === undefined));
  });

  it('refuses any name holding one character outside the alphabet', () => {
    fc.assert(
      fc.property(withForeign(over(alphabet, 63), alphabet), (name) => {
        expect(codeOf(() => validateBucketName(name))).toBe(ErrorCode.INVALID_INPUT);
      }),
    );
  });
});

describe('entity key: 1 to 256 of a-z A-Z 0-9 . _ - % @', () => {
  const alphabet = LETTERS + DIGITS + '._-%@';

  it.each([['k'], ['user@example.com'], ['@'], ['%41%42'], ['a.b_c-d'], ['k'.repeat(256)]])('accepts %j', (key) =>
    expect(codeOf(() => validateEntityKey(key))).toBeUndefined(),
  );

  it.each([
    ['empty', ''],
    ['257 characters', 'k'.repeat(257)],
    ['space', 'a b'],
    ['slash', 'a/b'],
    ['bang', 'a!b'],
    ['plus', 'a+b'],
    ['Cyrillic', 'ключ'],
    ['trailing newline', 'key\n'],
  ])('refuses %s', (_why, key) => expect(codeOf(() => validateEntityKey(key))).toBe(ErrorCode.INVALID_INPUT));

  it('accepts every string of the alphabet up to 256 characters', () => {
    fc.assert(fc.property(over(alphabet, 256), (key) => codeOf(() => validateEntityKey(key)) === undefined));
  });

  it('refuses any key holding one character outside the alphabet', () => {
    fc.assert(
      fc.property(withForeign(over(alphabet, 255), alphabet), (key) => {
        expect(codeOf(() => validateEntityKey(key))).toBe(ErrorCode.INVALID_INPUT);
      }),
    );
  });
});

describe('ccid: 1 to 256 hex digits, or a dashed UUID', () => {
  it.each([
    ['one digit', 'a'],
    ['mixed case hex', 'ABCDEF0123456789abcdef'],
    ['undashed UUID (Simperium libraries)', '123e4567e89b12d3a456426614174000'],
    ['dashed UUID', '123e4567-e89b-12d3-a456-426614174000'],
    ['dashed UUID, upper case', '123E4567-E89B-12D3-A456-426614174000'],
    ['256 digits', 'f'.repeat(256)],
  ])('accepts %s', (_what, ccid) => expect(codeOf(() => validateCcid(ccid))).toBeUndefined());

  it.each([
    ['empty', ''],
    ['257 digits', 'f'.repeat(257)],
    ['non-hex letter', 'abcg'],
    ['0x prefix', '0x1f'],
    ['a lone dash', '-'],
    ['dashes in the wrong places', '123e4567e-89b-12d3-a456-426614174000'],
    ['UUID missing a group', '123e4567-e89b-12d3-426614174000'],
    ['UUID in braces', '{123e4567-e89b-12d3-a456-426614174000}'],
    ['UUID with a non-hex digit', '123e4567-e89b-12d3-a456-42661417400g'],
    ['trailing newline', 'abc\n'],
  ])('refuses %s', (_why, ccid) => expect(codeOf(() => validateCcid(ccid))).toBe(ErrorCode.INVALID_INPUT));

  it('accepts every hex string up to 256 digits and every UUID', () => {
    fc.assert(fc.property(over(HEX, 256), (ccid) => codeOf(() => validateCcid(ccid)) === undefined));
    fc.assert(fc.property(fc.uuid(), (uuid) => codeOf(() => validateCcid(uuid)) === undefined));
  });

  it('refuses a hex string holding any other character except a well-placed UUID dash', () => {
    fc.assert(
      fc.property(withForeign(over(HEX, 40), HEX), (ccid) => {
        expect(codeOf(() => validateCcid(ccid))).toBe(ErrorCode.INVALID_INPUT);
      }),
    );
  });

  it('normalises to lower case, so ABC and abc are one change', () => {
    expect(normaliseCcid('ABC')).toBe(normaliseCcid('abc'));
    expect(normaliseCcid('123E4567-E89B-12D3-A456-426614174000')).toBe('123e4567-e89b-12d3-a456-426614174000');
  });
});

describe('client id: 1 to 256 characters, no control characters', () => {
  it.each([
    ['ASCII', 'ios-2.1 (iPhone 15)'],
    ['accented', 'café'],
    ['CJK', '日本語クライアント'],
    ['emoji', '📱'],
    ['256 characters', 'c'.repeat(256)],
    ['256 astral characters (counted as code points)', '📱'.repeat(256)],
  ])('accepts %s', (_what, id) => expect(codeOf(() => validateClientId(id))).toBeUndefined());

  it.each([
    ['empty', ''],
    ['257 characters', 'c'.repeat(257)],
    ['newline', 'a\nb'],
    ['tab', 'a\tb'],
    ['NUL', 'a\u0000b'],
    ['escape', '\u001b[31mred'],
    ['DEL', 'a\u007f'],
  ])('refuses %s', (_why, id) => expect(codeOf(() => validateClientId(id))).toBe(ErrorCode.INVALID_INPUT));

  it('accepts any string of 1 to 256 printable ASCII characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 256 }), (id) =>
        codeOf(() => validateClientId(id)) === undefined,
      ),
    );
  });

  // Unicode's control characters (category Cc) are U+0000-U+001F and U+007F-U+009F: the C1 range
  // holds a line break (U+0085) and a terminal escape (U+009B).
  it.each([
    ['NEL', 'a\u0085b'],
    ['CSI', '\u009b31mred'],
  ])('refuses the C1 control %s', (_why, id) => expect(codeOf(() => validateClientId(id))).toBe(ErrorCode.INVALID_INPUT));
});

describe('app id: 1 to 64 of a-z A-Z 0-9 . _ -, case-insensitive', () => {
  it.each([
    ['myapp', 'myapp'],
    ['My.App_1-2', 'my.app_1-2'],
    ['A'.repeat(64), 'a'.repeat(64)],
  ])('accepts %j as %j', (id, normal) => expect(normaliseAppId(id)).toBe(normal));

  it.each([
    ['empty', ''],
    ['65 characters', 'a'.repeat(65)],
    ['percent (allowed in buckets only)', 'a%b'],
    ['at sign', 'a@b'],
    ['space', 'my app'],
  ])('refuses %s', (_why, id) => expect(codeOf(() => normaliseAppId(id))).toBe(ErrorCode.INVALID_INPUT));

  it('is case-insensitive: ids differing only in case normalise to one', () => {
    fc.assert(
      fc.property(over(LETTERS + DIGITS + '._-', 64), (id) => {
        expect(normaliseAppId(id.toUpperCase())).toBe(normaliseAppId(id.toLowerCase()));
      }),
    );
  });
});
