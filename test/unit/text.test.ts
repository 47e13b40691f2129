import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/model/errors.js';
import { applyTextDelta, isTextDelta, mergeText, patchText, textDelta } from '../../src/model/text.js';
import { codeOf } from '../support/codes.js';

/** Few distinct characters, so that texts overlap; emoji that share a high surrogate on purpose. */
const smallText = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', '\t', '%', 'é', '😀', '😃'), maxLength: 40 });
const anyText = fc.string({ unit: 'grapheme', maxLength: 40 });


describe('textDelta / applyTextDelta', () => {
  it('round-trips (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.tuple(smallText, smallText), fc.tuple(anyText, anyText)), ([from, to]) => {
        expect(applyTextDelta(from, textDelta(from, to))).toBe(to);
      }),
      { numRuns: 500 },
    );
  });

  it('is deterministic and compact', () => {
    expect(textDelta('', '')).toBe('');
    expect(textDelta('abc', 'abc')).toBe('=3');
    expect(textDelta('hello world', 'hello big world')).toBe('=6\t+big \t=5');
    expect(textDelta('hello world', 'hello big world')).toBe(textDelta('hello world', 'hello big world'));
  });

  it('bounds its work on large unrelated texts, deterministically and still exactly', () => {
    // Unbounded, dmp's bisection on 2 × 100k characters with nothing in common takes minutes.
    const from = 'ab'.repeat(50_000);
    const to = 'xyz'.repeat(33_333);
    const delta = textDelta(from, to);
    expect(applyTextDelta(from, delta)).toBe(to);
    expect(textDelta(from, to)).toBe(delta);
  }, 10_000);

  it('keeps small edits of a large text small', () => {
    const from = 'lorem ipsum dolor sit amet '.repeat(4_000);
    const to = `X${from.slice(1, -1)}Y`;
    expect(textDelta(from, to)).toBe(`-1\t+X\t=${from.length - 2}\t-1\t+Y`);
  });

  it('never splits a surrogate pair (emoji sharing a high surrogate)', () => {
    const delta = textDelta('a😀b', 'a😃b');
    expect(isTextDelta(delta)).toBe(true);
    expect(applyTextDelta('a😀b', delta)).toBe('a😃b');
  });

  it('throws INVALID_INPUT when the delta does not fit or is malformed', () => {
    expect(codeOf(() => applyTextDelta('abc', '=5'))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => applyTextDelta('abc', '=1'))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => applyTextDelta('abc', '*3'))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => applyTextDelta('abc', '=3abc'))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => applyTextDelta('abc', '=3\t+%E0%A4%A'))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => applyTextDelta('abc', '=1\t\t=2'))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('throws INVALID_INPUT when asked to insert a lone surrogate', () => {
    expect(codeOf(() => textDelta('a', 'a\ud800'))).toBe(ErrorCode.INVALID_INPUT);
  });
});

describe('isTextDelta', () => {
  it.each([[''], ['=3'], ['-2\t+x'], ['+%F0%9F%98%80\t=1'], ['+']])('accepts %j', (delta) => {
    expect(isTextDelta(delta)).toBe(true);
  });
  it.each([['x'], ['=a'], ['=-1'], ['=1\t'], ['+%zz'], ['=1234567890123456']])('rejects %j', (delta) => {
    expect(isTextDelta(delta)).toBe(false);
  });
});

describe('patchText', () => {
  it('applies a delta to a text that drifted from its base', () => {
    const base = 'The quick brown fox jumps over the lazy dog.';
    const delta = textDelta(base, 'The quick red fox jumps over the lazy dog.');
    const drifted = 'Yesterday, the quick brown fox jumps over the lazy dog!';
    expect(patchText(drifted, base, delta)).toBe('Yesterday, the quick red fox jumps over the lazy dog!');
  });

  it('drops hunks that no longer find their place', () => {
    const base = 'alpha beta gamma';
    const delta = textDelta(base, 'alpha BETA gamma');
    expect(patchText('something else entirely', base, delta)).toBe('something else entirely');
  });

  it('equals strict application on the base itself (property)', () => {
    fc.assert(
      fc.property(smallText, smallText, (from, to) => {
        expect(patchText(from, from, textDelta(from, to))).toBe(to);
      }),
      { numRuns: 200 },
    );
  });

  it('throws INVALID_INPUT only when the delta does not fit its base', () => {
    expect(codeOf(() => patchText('anything', 'abc', '=5'))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => patchText('anything', 'abc', 'bad'))).toBe(ErrorCode.INVALID_INPUT);
  });
});

describe('mergeText', () => {
  it('returns the other side when one side did not change', () => {
    expect(mergeText('abc', 'abc', 'abX')).toBe('abX');
    expect(mergeText('abc', 'Xbc', 'abc')).toBe('Xbc');
    expect(mergeText('abc', 'same', 'same')).toBe('same');
  });

  it('keeps both edits when they touch disjoint regions (property)', () => {
    // Left and right regions use disjoint alphabets around a unique separator, so every patch
    // of one side has exactly one place to go in the other side's text.
    const left = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' '), maxLength: 8 });
    const right = fc.string({ unit: fc.constantFrom('x', 'y', 'z', ' '), maxLength: 8 });
    const separator = '|0123456789|';
    fc.assert(
      fc.property(left, left, left, right, right, right, fc.boolean(), (p, x, x2, y, y2, s, leftIsLater) => {
        const base = p + x + separator + y + s;
        const leftEdit = p + x2 + separator + y + s;
        const rightEdit = p + x + separator + y2 + s;
        const expected = p + x2 + separator + y2 + s;
        const merged = leftIsLater ? mergeText(base, rightEdit, leftEdit) : mergeText(base, leftEdit, rightEdit);
        expect(merged).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps nearby edits of both sides', () => {
    expect(mergeText('The color is red today', 'The colour is red today', 'The color is green today')).toBe(
      'The colour is green today',
    );
  });

  it('keeps two insertions at one place whole, side by side (never interleaved)', () => {
    const s = 'The shopping list for the weekend, as agreed:';
    expect(mergeText(`${s} mmquqji`, `${s} jjmcguz mmquqji`, `${s} vvcxwdi mmquqji`)).toBe(`${s} jjmcguz vvcxwdi mmquqji`);
    expect(mergeText('bread', 'eggs, bread', 'milk, bread')).toBe('eggs, milk, bread');
    expect(mergeText('bread', 'bread and milk', 'eggs, bread')).toBe('eggs, bread and milk');
  });

  it('lets the later side win where both rewrote the same text, and keeps the rest of both', () => {
    expect(mergeText('a red car and a cat', 'a blue car and a cat', 'a green car and a dog')).toBe('a green car and a dog');
    expect(mergeText('one two three four', 'one three four', 'one two three fourth')).toBe('one three fourth');
    expect(mergeText('same', 'changed', 'changed')).toBe('changed');
  });

  it('keeps every inserted word whole and every base word in order (property)', () => {
    const word = fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'd'), minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 8 }), fc.nat(), fc.nat(), (words, i, j) => {
        const at = (n: number, inserted: string) => {
          const k = n % (words.length + 1);
          return [...words.slice(0, k), inserted, ...words.slice(k)].join(' ');
        };
        const base = words.join(' ');
        const merged = mergeText(base, at(i, 'XXXX'), at(j, 'YYYY'));
        expect(merged.split(' ').filter((w) => w !== 'XXXX' && w !== 'YYYY')).toEqual(words);
        expect(merged.split(' ').filter((w) => w === 'XXXX' || w === 'YYYY').sort()).toEqual(['XXXX', 'YYYY']);
      }),
      { numRuns: 500 },
    );
  });

  it('is a deterministic function of its arguments, even for clashing edits', () => {
    // Replicas only need to agree, which holds as long as they pass the same (base, earlier, later).
    const once = mergeText('color: red', 'color: blue', 'color: green');
    expect(mergeText('color: red', 'color: blue', 'color: green')).toBe(once);
  });
});
