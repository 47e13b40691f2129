/**
 * Simple Sync's ACL model (shared/seeds/simple-sync-acl.md): patterns, specificity, the order in
 * which a winner is chosen, deny by default, and rule validation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, matches, specificity, validateRule, type AclRule } from '../../src/model/acl.js';
import { ErrorCode } from '../../src/model/errors.js';
import { codeOf } from '../support/codes.js';

const allow = (user: string, item: string, action: string): AclRule => ({ user, item, action, type: 'allow' });
const deny = (user: string, item: string, action: string): AclRule => ({ user, item, action, type: 'deny' });
const ask = (user: string, item: string, action: string) => ({ user, item, action });

describe('patterns', () => {
  it('matches `*` to anything, a trailing `*` as a prefix, anything else exactly', () => {
    expect(matches('*', '')).toBe(true);
    expect(matches('*', 'alice')).toBe(true);
    expect(matches('notes*', 'notes')).toBe(true);
    expect(matches('notes*', 'notes/k1')).toBe(true);
    expect(matches('notes/*', 'notes')).toBe(false);
    expect(matches('notes', 'notes/k1')).toBe(false);
    expect(matches('notes', 'Notes')).toBe(false);
  });

  it('scores a pattern by its length, less one half for a trailing `*`', () => {
    expect(specificity('*')).toBe(0.5);
    expect(specificity('ab*')).toBe(2.5);
    expect(specificity('ab')).toBe(2);
    // The length counts the `*`: a prefix outscores its own stem, but not a name as long as itself.
    expect(specificity('abc*')).toBeGreaterThan(specificity('abc'));
    expect(specificity('abcd')).toBeGreaterThan(specificity('abc*'));
  });
});

describe('decide', () => {
  it('denies when no rule matches, and says no rule decided', () => {
    expect(decide([], ask('alice', 'notes', 'read'))).toEqual({ allowed: false, rule: null });
    expect(decide([allow('bob', '*', '*')], ask('alice', 'notes', 'read')).allowed).toBe(false);
  });

  it('lets the most specific item win over a more specific user or action', () => {
    const rules = [deny('alice', 'notes*', 'read'), allow('*', 'notes/k1', '*')];
    expect(decide(rules, ask('alice', 'notes/k1', 'read'))).toEqual({ allowed: true, rule: rules[1] });
    expect(decide(rules, ask('alice', 'notes/k2', 'read')).allowed).toBe(false);
  });

  it('breaks an item tie by the user, then by the action', () => {
    const byUser = [allow('al*', 'notes', '*'), deny('alice', 'notes', '*')];
    expect(decide(byUser, ask('alice', 'notes', 'write')).allowed).toBe(false);
    expect(decide(byUser, ask('albert', 'notes', 'write')).allowed).toBe(true);
    const byAction = [deny('*', 'notes', 'w*'), allow('*', 'notes', 'write')];
    expect(decide(byAction, ask('bob', 'notes', 'write')).allowed).toBe(true);
    expect(decide(byAction, ask('bob', 'notes', 'wipe')).allowed).toBe(false);
  });

  it('breaks a full tie in favour of the newest rule', () => {
    expect(decide([allow('*', 'x', '*'), deny('*', 'x', '*')], ask('u', 'x', 'a')).allowed).toBe(false);
    expect(decide([deny('*', 'x', '*'), allow('*', 'x', '*')], ask('u', 'x', 'a')).allowed).toBe(true);
  });

  it('lets an exact name beat a prefix of the same length', () => {
    // `notes` (5) against `note*` (4.5): both match the item `notes`.
    const rules = [allow('*', 'notes', '*'), deny('*', 'note*', '*')];
    expect(decide(rules, ask('u', 'notes', 'read')).allowed).toBe(true);
  });
});

const name = fc.stringMatching(/^[a-z0-9./:_-]{1,6}$/);
const pattern = fc.oneof(fc.constant('*'), name, name.map((n) => `${n}*`));
const ruleArb = fc.record({ user: pattern, item: pattern, action: pattern, type: fc.constantFrom('allow' as const, 'deny' as const) });
const requestArb = fc.record({ user: name, item: name, action: name });

describe('decide, for any rules', () => {
  it('is decided by a matching rule that no other matching rule outranks, or denies', () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 12 }), requestArb, (rules, request) => {
        const { allowed, rule } = decide(rules, request);
        const matching = rules.filter((r) => matches(r.user, request.user) && matches(r.item, request.item) && matches(r.action, request.action));
        if (matching.length === 0) {
          expect(rule).toBeNull();
          expect(allowed).toBe(false);
          return;
        }
        expect(matching).toContain(rule);
        expect(allowed).toBe(rule!.type === 'allow');
        const key = (r: AclRule) => [specificity(r.item), specificity(r.user), specificity(r.action)];
        const at = rules.lastIndexOf(rule!);
        for (const [i, other] of rules.entries()) {
          if (!matching.includes(other)) continue;
          const [a, b] = [key(rule!), key(other)];
          const cmp = a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
          // Nothing matching is more specific; an equally specific rule is not newer.
          expect(cmp).toBeGreaterThanOrEqual(0);
          if (cmp === 0) expect(i).toBeLessThanOrEqual(at);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('is decided by an exact rule for the request, when it is the newest and no prefix is in play', () => {
    // A prefix can outscore an exact name (`abc*` is 3.5, `abc` 3); names and `*` alone cannot.
    const plain = fc.record({ user: fc.oneof(fc.constant('*'), name), item: fc.oneof(fc.constant('*'), name), action: fc.oneof(fc.constant('*'), name), type: fc.constantFrom('allow' as const, 'deny' as const) });
    fc.assert(
      fc.property(fc.array(plain, { maxLength: 12 }), requestArb, fc.boolean(), (rules, request, allowIt) => {
        const exact: AclRule = { ...request, type: allowIt ? 'allow' : 'deny' };
        expect(decide([...rules, exact], request)).toEqual({ allowed: allowIt, rule: exact });
      }),
    );
  });
});

describe('validateRule', () => {
  it('accepts patterns of names, prefixes and `*`', () => {
    expect(validateRule({ user: '*', item: 'notes/*', action: 'read', type: 'allow' })).toEqual(allow('*', 'notes/*', 'read'));
    expect(validateRule({ user: 'alice', item: '.acl', action: '.acl.addRule', type: 'deny' }).type).toBe('deny');
    expect(validateRule({ user: 'u'.repeat(256), item: 'i'.repeat(255) + '*', action: 'a@b%c', type: 'allow' }).user).toHaveLength(256);
  });

  it.each([
    ['an empty user', { user: '', item: 'x', action: 'read', type: 'allow' }, 'rule.user'],
    ['a * inside a pattern', { user: '*', item: 'no*tes', action: 'read', type: 'allow' }, 'rule.item'],
    ['two trailing *', { user: '*', item: 'notes**', action: 'read', type: 'allow' }, 'rule.item'],
    ['a space', { user: '*', item: 'x', action: 're ad', type: 'allow' }, 'rule.action'],
    ['a pattern over 256 characters', { user: 'u'.repeat(257), item: 'x', action: 'read', type: 'allow' }, 'rule.user'],
    ['an unknown type', { user: '*', item: 'x', action: 'read', type: 'maybe' }, 'rule.type'],
  ])('refuses %s with INVALID_INPUT naming the field', (_, input, field) => {
    expect(codeOf(() => validateRule(input))).toBe(ErrorCode.INVALID_INPUT);
    expect(() => validateRule(input)).toThrow(field);
  });
});
