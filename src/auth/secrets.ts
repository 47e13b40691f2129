/**
 * Secrets: API keys and access tokens (random, stored only as a hash), and passwords (scrypt).
 *
 * A key or token is 256 random bits, so a plain SHA-256 of it is a safe index: nothing can be
 * guessed from the hash that a brute force over 2^256 would not find. Passwords are low-entropy,
 * so they get scrypt with a per-password salt, and are compared in constant time. The stored
 * form of a password carries its parameters, so they can be raised later without breaking old
 * passwords.
 */
import { createHash, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { invalidInput } from '../model/errors.js';

/** What a secret is for, readable at a glance (and by secret scanners) from its prefix. */
export type SecretKind = 'key' | 'token';
const PREFIX: Record<SecretKind, string> = { key: 'sgk_', token: 'sgt_' };

/** A new secret: its prefix, then 256 random bits in base64url (43 characters). */
export function newSecret(kind: SecretKind): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** The kind of a presented secret, or undefined when it is not one of ours. */
export function secretKind(secret: string): SecretKind | undefined {
  if (!/^sg[kt]_[A-Za-z0-9_-]{43}$/.test(secret)) return undefined;
  return secret.startsWith(PREFIX.key) ? 'key' : 'token';
}

/** The index of a secret in storage: hex SHA-256. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export interface PasswordParams {
  /** scrypt cost (a power of two). @default 32768 */
  N: number;
  r: number;
  p: number;
}

/** About 100 ms and 32 MiB per hash on this class of machine. */
export const defaultPasswordParams: PasswordParams = { N: 2 ** 15, r: 8, p: 1 };

const KEY_BYTES = 32;
const SALT_BYTES = 16;
export const passwordLengthMin = 8;
export const passwordLengthMax = 1024;

function scrypt(password: string, salt: Buffer, params: PasswordParams): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCallback(password.normalize('NFC'), salt, KEY_BYTES, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

export function validatePassword(password: string, field = 'password'): void {
  if (password.length < passwordLengthMin || password.length > passwordLengthMax || !password.isWellFormed()) {
    throw invalidInput(`${field} must be ${passwordLengthMin} to ${passwordLengthMax} characters`);
  }
}

/** The stored form of a password: `scrypt$N$r$p$salt$hash` (base64url). */
export async function hashPassword(password: string, params: PasswordParams = defaultPasswordParams): Promise<string> {
  validatePassword(password);
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Whether `password` is the one `stored` was made from; false for anything malformed. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0) || (N & (N - 1)) !== 0 || N > 2 ** 20 || r > 32 || p > 16) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (expected.length !== KEY_BYTES || password.length > passwordLengthMax) return false;
  const key = await scrypt(password, salt, { N, r, p });
  return timingSafeEqual(key, expected);
}
