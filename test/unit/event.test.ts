/**
 * Simple Sync event validation (shared/seeds/simple-sync.txt), rules 2 to 7 (rule 1, the ACL, is
 * the caller's). One describe per rule; every refusal is asserted by code. Time is passed in: the
 * tests use a fixed `now`, never the clock.
 */
import fc from 'fast-check';
import { UUID } from 'uuidv7';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/model/errors.js';
import { defaultEventLimits, uuidV7Millis, validateEvent, type EventInput } from '../../src/model/event.js';
import { codeOf } from '../support/codes.js';


const NOW = 1_750_000_000_000; // a fixed "now" (June 2025)
const DAY = 86_400_000;
const MS_MAX = 2 ** 48 - 1; // the widest time a UUIDv7 can carry

/**
 * A UUIDv7 (RFC 9562): 48 bits of unix milliseconds, version 7, 12 random bits, variant 0b10, 62
 * random bits.
 */
function uuidV7(ms: number, randA: number, randB: bigint): string {
  const hex = (n: bigint, digits: number) => n.toString(16).padStart(digits, '0');
  const time = hex(BigInt(ms), 12);
  const version = hex(0x7000n | BigInt(randA), 4);
  const variant = hex((0b10n << 62n) | randB, 16);
  return `${time.slice(0, 8)}-${time.slice(8)}-${version}-${variant.slice(0, 4)}-${variant.slice(4)}`;
}

const uuidFieldsArb = (msMax = NOW) =>
  fc.record({
    ms: fc.integer({ min: 0, max: msMax }),
    randA: fc.integer({ min: 0, max: 0xfff }),
    randB: fc.bigInt({ min: 0n, max: (1n << 62n) - 1n }),
  });

const NAME_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./:-_';
/** A user, item or action: the allowed alphabet, not starting with the reserved `.`. */
const nameArb = fc
  .string({ unit: fc.constantFrom(...NAME_ALPHABET), minLength: 1, maxLength: 40 })
  .filter((name) => !name.startsWith('.'));

const payloadArb = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }).map((o) => JSON.stringify(o));

const eventArb: fc.Arbitrary<EventInput> = fc
  .record({ fields: uuidFieldsArb(), user: nameArb, item: nameArb, action: nameArb, payload: payloadArb })
  .map(({ fields, ...rest }) => ({ uuid: uuidV7(fields.ms, fields.randA, fields.randB), timestamp: String(fields.ms), ...rest }));

/** A valid event at `ms`, with the given fields replaced. */
function event(overrides: Partial<EventInput> = {}, ms = NOW - 1000): EventInput {
  return {
    uuid: uuidV7(ms, 0x123, 0x0123456789abcdefn),
    timestamp: String(ms),
    user: 'alice',
    item: 'todo.1',
    action: 'todo:create',
    payload: '{"title":"milk"}',
    ...overrides,
  };
}

const check = (input: EventInput, limits = defaultEventLimits) => codeOf(() => validateEvent(input, NOW, limits));

describe('the test UUIDv7 builder', () => {
  it('agrees with the uuidv7 package', () => {
    fc.assert(
      fc.property(uuidFieldsArb(MS_MAX), ({ ms, randA, randB }) => {
        const reference = UUID.fromFieldsV7(ms, randA, Number(randB >> 32n), Number(randB & 0xffffffffn)).toString();
        expect(uuidV7(ms, randA, randB)).toBe(reference);
      }),
    );
  });

  it('embeds the milliseconds that uuidV7Millis reads back', () => {
    fc.assert(fc.property(uuidFieldsArb(MS_MAX), ({ ms, randA, randB }) => uuidV7Millis(uuidV7(ms, randA, randB)) === BigInt(ms)));
  });
});

describe('valid events', () => {
  it('accepts every well-formed event and returns it unchanged', () => {
    fc.assert(
      fc.property(eventArb, (input) => {
        expect(validateEvent(input, NOW)).toEqual(input);
      }),
    );
  });

  it('is idempotent: a validated event validates to itself', () => {
    fc.assert(
      fc.property(eventArb, (input) => {
        const once = validateEvent({ ...input, uuid: input.uuid.toUpperCase() }, NOW);
        expect(validateEvent(once, NOW)).toEqual(once);
      }),
    );
  });
});

describe('rule 2: the UUID must be a valid v7 UUID', () => {
  it('accepts upper case and returns the canonical lower case', () => {
    const input = event();
    expect(validateEvent({ ...input, uuid: input.uuid.toUpperCase() }, NOW).uuid).toBe(input.uuid);
  });

  const good = event().uuid;
  it.each([
    ['empty', ''],
    ['a v4 UUID', good.slice(0, 14) + '4' + good.slice(15)],
    ['a v1 UUID', good.slice(0, 14) + '1' + good.slice(15)],
    ['the nil UUID', '00000000-0000-0000-0000-000000000000'],
    ['the max UUID', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
    ['the NCS variant (0b0xxx)', good.slice(0, 19) + '7' + good.slice(20)],
    ['the Microsoft variant (0b110x)', good.slice(0, 19) + 'c' + good.slice(20)],
    ['without dashes', good.replaceAll('-', '')],
    ['in braces', `{${good}}`],
    ['as a URN', `urn:uuid:${good}`],
    ['with a trailing newline', good + '\n'],
    ['one digit short', good.slice(0, -1)],
    ['a non-hex digit', good.slice(0, -1) + 'g'],
  ])('refuses %s with INVALID_INPUT', (_why, uuid) => expect(check(event({ uuid }))).toBe(ErrorCode.INVALID_INPUT));
});

describe('rule 3: the timestamp is an unsigned 64-bit integer of milliseconds', () => {
  it.each([
    ['empty', ''],
    ['negative', '-1'],
    ['plus sign', '+1750000000000'],
    ['leading zero', '01750000000000'],
    ['fraction', '1750000000000.0'],
    ['exponent', '1.75e12'],
    ['hex', '0x1977420dc00'],
    ['spaces', ' 1750000000000 '],
    ['2^64', '18446744073709551616'],
    ['far beyond 2^64', '9'.repeat(40)],
  ])('refuses %s with INVALID_INPUT', (_why, timestamp) => expect(check(event({ timestamp }))).toBe(ErrorCode.INVALID_INPUT));

  it('accepts the epoch itself', () => {
    expect(check(event({}, 0))).toBeUndefined();
  });
});

describe("rule 4: the timestamp must equal the UUID's embedded time", () => {
  it('refuses a timestamp one millisecond off either way', () => {
    const input = event();
    const ms = Number(input.timestamp);
    expect(check({ ...input, timestamp: String(ms + 1) })).toBe(ErrorCode.INVALID_INPUT);
    expect(check({ ...input, timestamp: String(ms - 1) })).toBe(ErrorCode.INVALID_INPUT);
  });

  it('refuses any other timestamp', () => {
    fc.assert(
      fc.property(
        eventArb,
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (input, other) => {
          fc.pre(other !== BigInt(input.timestamp));
          expect(check({ ...input, timestamp: other.toString() })).toBe(ErrorCode.INVALID_INPUT);
        },
      ),
    );
  });

  it('refuses a valid uint64 beyond what a UUIDv7 can carry', () => {
    expect(check(event({ timestamp: '18446744073709551615' }))).toBe(ErrorCode.INVALID_INPUT);
  });
});

describe('timestamps in the future: at most futureMsMax ahead of now', () => {
  it('accepts exactly one day ahead and refuses one millisecond more', () => {
    expect(check(event({}, NOW + DAY))).toBeUndefined();
    expect(check(event({}, NOW + DAY + 1))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('honours a configured allowance', () => {
    const limits = { ...defaultEventLimits, futureMsMax: 0 };
    expect(check(event({}, NOW), limits)).toBeUndefined();
    expect(check(event({}, NOW + 1), limits)).toBe(ErrorCode.INVALID_INPUT);
  });

  it('accepts any past time', () => {
    fc.assert(fc.property(eventArb, (input) => check(input) === undefined));
  });
});

describe('rule 5: user, item and action use a-z A-Z 0-9 . / : - _', () => {
  const fields = ['user', 'item', 'action'] as const;

  it.each(fields)('accepts the whole alphabet in %s', (field) => {
    expect(check(event({ [field]: 'aZ09./:-_' }))).toBeUndefined();
    expect(check(event({ [field]: 'admin.123' }))).toBeUndefined();
  });

  const refused = [
    ['empty', ''],
    ['space', 'a b'],
    ['at sign', 'a@b'],
    ['hash', 'a#b'],
    ['question mark', 'a?b'],
    ['comma', 'a,b'],
    ['backslash', 'a\\b'],
    ['accented letter', 'é'],
    ['newline', 'a\n'],
  ] as const;
  for (const field of fields) {
    it.each(refused)(`refuses %s in ${field} with INVALID_INPUT`, (_why, value) => {
      expect(check(event({ [field]: value }))).toBe(ErrorCode.INVALID_INPUT);
    });
  }

  it.each(fields)('accepts nameLengthMax characters in %s and refuses one more', (field) => {
    const limits = { ...defaultEventLimits, nameLengthMax: 12 }; // the other fields are shorter
    expect(check(event({ [field]: 'x'.repeat(12) }), limits)).toBeUndefined();
    expect(check(event({ [field]: 'x'.repeat(13) }), limits)).toBe(ErrorCode.INVALID_INPUT);
    expect(check(event({ [field]: 'x'.repeat(256) }))).toBeUndefined();
    expect(check(event({ [field]: 'x'.repeat(257) }))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('refuses any name holding a character outside the alphabet', () => {
    const foreign = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }).filter((c) => ![...c].every((ch) => NAME_ALPHABET.includes(ch)));
    fc.assert(
      fc.property(eventArb, fc.constantFrom(...fields), foreign, fc.nat(), (input, field, c, at) => {
        const name = input[field];
        const i = at % (name.length + 1);
        expect(check({ ...input, [field]: name.slice(0, i) + c + name.slice(i) })).toBe(ErrorCode.INVALID_INPUT);
      }),
    );
  });
});

describe('rule 6: names starting with "." are reserved', () => {
  const fields = ['user', 'item', 'action'] as const;

  it.each(fields)('refuses a reserved %s with INVALID_PERMISSION', (field) => {
    expect(check(event({ [field]: '.admin' }))).toBe(ErrorCode.INVALID_PERMISSION);
    expect(check(event({ [field]: '.' }))).toBe(ErrorCode.INVALID_PERMISSION);
    expect(check(event({ [field]: '..' }))).toBe(ErrorCode.INVALID_PERMISSION);
  });

  it.each(fields)('accepts a dot anywhere else in %s', (field) => {
    expect(check(event({ [field]: 'admin.' }))).toBeUndefined();
    expect(check(event({ [field]: 'a.b.c' }))).toBeUndefined();
  });

  it('refuses every well-formed name once prefixed with "."', () => {
    fc.assert(
      fc.property(eventArb, fc.constantFrom(...fields), (input, field) => {
        expect(check({ ...input, [field]: '.' + input[field] })).toBe(ErrorCode.INVALID_PERMISSION);
      }),
    );
  });
});

describe('rule 7: the payload is a JSON object encoded as a string', () => {
  it.each([['{}'], ['{"a":[1,{"b":null}],"c":"d"}'], [' { "spaced" : true } '], ['{"__proto__":{"x":1}}']])('accepts %j', (payload) =>
    expect(check(event({ payload }))).toBeUndefined(),
  );

  it.each([
    ['empty', ''],
    ['null', 'null'],
    ['an array', '[]'],
    ['an array of objects', '[{}]'],
    ['a number', '1'],
    ['a string', '"{}"'],
    ['a boolean', 'true'],
    ['truncated', '{"a":1'],
    ['trailing comma', '{"a":1,}'],
    ['single quotes', "{'a':1}"],
    ['NaN', '{"a":NaN}'],
    ['a JavaScript literal', '{a:1}'],
  ])('refuses %s with INVALID_INPUT', (_why, payload) => expect(check(event({ payload }))).toBe(ErrorCode.INVALID_INPUT));

  it('measures the limit in UTF-8 bytes, not characters', () => {
    const payload = '{"a":"€"}'; // 9 characters, 11 bytes
    expect(check(event({ payload }), { ...defaultEventLimits, payloadBytesMax: 11 })).toBeUndefined();
    expect(check(event({ payload }), { ...defaultEventLimits, payloadBytesMax: 10 })).toBe(ErrorCode.INVALID_INPUT);
  });

  it('accepts the default 64 KiB exactly and refuses one byte more', () => {
    const filler = (bytes: number) => `{"a":"${'x'.repeat(bytes - 8)}"}`;
    expect(Buffer.byteLength(filler(65_536))).toBe(65_536);
    expect(check(event({ payload: filler(65_536) }))).toBeUndefined();
    expect(check(event({ payload: filler(65_537) }))).toBe(ErrorCode.INVALID_INPUT);
  });
});
