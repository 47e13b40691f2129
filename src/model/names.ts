/**
 * Name rules, from Simperium's TYPES.md (../shared/seeds/simperium-types.txt). Each validator
 * returns nothing or throws INVALID_INPUT naming the field, so callers can validate a whole
 * change before touching storage (bad input changes nothing).
 */
import { invalidInput } from './errors.js';

const BUCKET = /^[A-Za-z0-9._%-]{1,64}$/;
const ENTITY_KEY = /^[A-Za-z0-9._%@-]{1,256}$/;
const CCID_HEX = /^[A-Fa-f0-9]{1,256}$/;
// Most clients send a random UUID with dashes; Simperium's own libraries send it without.
const CCID_UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const APP_ID = /^[A-Za-z0-9._-]{1,64}$/;
// Usernames are usually email addresses; they also appear in ACL rules and storage keys, so no
// `!`, `*`, `/` or spaces.
const USERNAME = /^[A-Za-z0-9._%+@-]{1,256}$/;
// Simperium sets only a length for client ids; we also refuse control characters so that ids
// can be logged and displayed safely (C0 and C1 controls: line breaks, terminal escapes).
const CLIENT_ID = /^[^\u0000-\u001f\u007f-\u009f]{1,256}$/u;

export function validateBucketName(value: string, field = 'bucket'): void {
  if (!BUCKET.test(value)) throw invalidInput(`${field} must be 1 to 64 of a-z A-Z 0-9 . _ - %`);
}

export function validateEntityKey(value: string, field = 'key'): void {
  if (!ENTITY_KEY.test(value)) throw invalidInput(`${field} must be 1 to 256 of a-z A-Z 0-9 . _ - % @`);
}

/** A prefix of entity keys (selective sync): empty, or what could start a valid key. */
export function validateKeyPrefix(value: string, field = 'keyPrefix'): void {
  if (value !== '') validateEntityKey(value, field);
}

export function validateCcid(value: string, field = 'ccid'): void {
  if (!CCID_HEX.test(value) && !CCID_UUID.test(value)) {
    throw invalidInput(`${field} must be 1 to 256 hex digits or a dashed UUID`);
  }
}

export function validateClientId(value: string, field = 'clientId'): void {
  if (!CLIENT_ID.test(value) || !value.isWellFormed()) throw invalidInput(`${field} must be 1 to 256 characters without control characters`);
}

/** App ids are case-insensitive: callers compare the normalised form. */
export function normaliseAppId(value: string, field = 'app'): string {
  if (!APP_ID.test(value)) throw invalidInput(`${field} must be 1 to 64 of a-z A-Z 0-9 . _ -`);
  return value.toLowerCase();
}

/** Usernames are case-insensitive (they are mostly email addresses): callers use this form. */
export function normaliseUsername(value: string, field = 'username'): string {
  if (!USERNAME.test(value)) throw invalidInput(`${field} must be 1 to 256 of a-z A-Z 0-9 . _ % + @ -`);
  return value.toLowerCase();
}

/** Canonical form of a ccid, so that `ABC` and `abc` (or a UUID in either case) are one change. */
export function normaliseCcid(value: string): string {
  return value.toLowerCase();
}
