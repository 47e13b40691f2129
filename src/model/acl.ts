/**
 * Access control rules, Simple Sync's model (../shared/seeds/simple-sync-acl.md): allow or deny
 * on (user, item, action) patterns; the most specific matching rule wins; nothing matching means
 * deny. Pure: the caller loads the rules and asks.
 *
 * A pattern is `*` (anything), a prefix ending in one `*`, or an exact string. Its specificity is
 * its length, less one half when it ends in `*`, so an exact name always beats a prefix of the
 * same length and `*` alone scores 0.5. Among matching rules the most specific item wins, then the
 * most specific user, then action, then the newest rule.
 *
 * Items name what is protected: an event's own item, or for entities the bucket (`notes`) and an
 * entity in it (`notes/k1`), so a rule on `notes*` also covers `notes/k1` (and `notes2`: write
 * `notes/*` for the entities of `notes` alone).
 */
import { invalidInput } from './errors.js';

export type RuleType = 'allow' | 'deny';

export interface AclRule {
  user: string;
  item: string;
  action: string;
  type: RuleType;
}

export interface AclRequest {
  user: string;
  item: string;
  action: string;
}

export interface AclDecision {
  allowed: boolean;
  /** The rule that decided, or null when none matched (denied). */
  rule: AclRule | null;
}

/** Simple Sync's name characters, plus the `%` and `@` of entity keys, the `+` of usernames, and `*` last. */
const PATTERN = /^[A-Za-z0-9._/:%@+-]{0,256}\*?$/;
const FIELDS = ['user', 'item', 'action'] as const;

/** A valid rule from untrusted input, or INVALID_INPUT naming the field. */
export function validateRule(input: { user: string; item: string; action: string; type: string }, field = 'rule'): AclRule {
  for (const name of FIELDS) {
    const pattern = input[name];
    if (pattern.length === 0 || pattern.length > 256 || !PATTERN.test(pattern)) {
      throw invalidInput(
        `${field}.${name} must be 1 to 256 of a-z A-Z 0-9 . _ / : - % @ +, with at most one *, at the end`,
      );
    }
  }
  if (input.type !== 'allow' && input.type !== 'deny') throw invalidInput(`${field}.type must be allow or deny`);
  return { user: input.user, item: input.item, action: input.action, type: input.type };
}

export function matches(pattern: string, value: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;
}

export function specificity(pattern: string): number {
  return pattern.endsWith('*') ? pattern.length - 0.5 : pattern.length;
}

/**
 * The decision for `request` under `rules`, given oldest first (a later rule wins a tie).
 */
export function decide(rules: readonly AclRule[], request: AclRequest): AclDecision {
  let best: AclRule | null = null;
  for (const rule of rules) {
    if (!matches(rule.user, request.user) || !matches(rule.item, request.item) || !matches(rule.action, request.action)) continue;
    if (best === null || !outranks(best, rule)) best = rule;
  }
  return { allowed: best?.type === 'allow', rule: best };
}

/** Whether `a` (older) beats `b` (newer): strictly more specific item, then user, then action. */
function outranks(a: AclRule, b: AclRule): boolean {
  for (const name of ['item', 'user', 'action'] as const) {
    const difference = specificity(a[name]) - specificity(b[name]);
    if (difference !== 0) return difference > 0;
  }
  return false;
}
