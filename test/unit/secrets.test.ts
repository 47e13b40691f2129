/**
 * Secrets (src/auth/secrets.ts): keys and tokens are random and indexed by hash; passwords are
 * scrypt-hashed with a salt and checked in constant time. Cheap scrypt parameters keep the suite
 * fast, except where the defaults themselves are under test.
 */
import { describe, expect, it } from 'vitest';
import { defaultPasswordParams, hashPassword, newSecret, secretHash, secretKind, verifyPassword } from '../../src/auth/secrets.js';
import { ErrorCode, SyncError } from '../../src/model/errors.js';

const cheap = { N: 1024, r: 8, p: 1 };

describe('keys and tokens', () => {
  it('are 256 random bits behind a prefix that tells their kind', () => {
    const key = newSecret('key');
    const token = newSecret('token');
    expect(key).toMatch(/^sgk_[A-Za-z0-9_-]{43}$/);
    expect(token).toMatch(/^sgt_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key.slice(4), 'base64url')).toHaveLength(32);
    expect(secretKind(key)).toBe('key');
    expect(secretKind(token)).toBe('token');
    expect(new Set(Array.from({ length: 1000 }, () => newSecret('token'))).size).toBe(1000);
  });

  it('refuses what is not one of ours', () => {
    for (const other of ['', 'sgk_', 'sgx_' + 'a'.repeat(43), 'sgk_' + 'a'.repeat(42), 'sgk_' + 'a'.repeat(44), 'sgk_' + '!'.repeat(43)]) {
      expect(secretKind(other)).toBeUndefined();
    }
  });

  it('are indexed by their SHA-256, never stored as they are', () => {
    const token = newSecret('token');
    expect(secretHash(token)).toMatch(/^[0-9a-f]{64}$/);
    expect(secretHash(token)).toBe(secretHash(token));
    expect(secretHash(token)).not.toContain(token.slice(4));
    expect(secretHash(newSecret('token'))).not.toBe(secretHash(token));
  });
});

describe('passwords', () => {
  it('verify against their own hash only', async () => {
    const stored = await hashPassword('correct horse battery', cheap);
    expect(stored.startsWith('scrypt$1024$8$1$')).toBe(true);
    expect(stored).not.toContain('correct');
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('are salted: one password hashes differently each time', async () => {
    const [a, b] = await Promise.all([hashPassword('same password', cheap), hashPassword('same password', cheap)]);
    expect(a).not.toBe(b);
    expect(await verifyPassword('same password', a)).toBe(true);
    expect(await verifyPassword('same password', b)).toBe(true);
  });

  it('compare unicode by its normal form', async () => {
    const stored = await hashPassword('caf\u00e9 au lait', cheap);
    expect(await verifyPassword('cafe\u0301 au lait', stored)).toBe(true);
  });

  it('use the default cost unless told otherwise', async () => {
    const stored = await hashPassword('a default password');
    expect(stored.split('$').slice(1, 4).map(Number)).toEqual([defaultPasswordParams.N, defaultPasswordParams.r, defaultPasswordParams.p]);
    expect(await verifyPassword('a default password', stored)).toBe(true);
  });

  it('refuse too short or too long with INVALID_INPUT', async () => {
    for (const bad of ['short', 'x'.repeat(1025), 'bad \ud800 surrogate']) {
      const error = await hashPassword(bad, cheap).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SyncError);
      expect((error as SyncError).code).toBe(ErrorCode.INVALID_INPUT);
    }
  });

  it('never verify against a malformed or hostile stored form (no throw, no huge scrypt)', async () => {
    const good = await hashPassword('a fine password', cheap);
    const parts = good.split('$');
    const variants = [
      '',
      'bcrypt$' + parts.slice(1).join('$'),
      parts.slice(0, 5).join('$'),
      [...parts.slice(0, 1), '1000', ...parts.slice(2)].join('$'), // N not a power of two
      [...parts.slice(0, 1), String(2 ** 30), ...parts.slice(2)].join('$'), // absurd cost
      [...parts.slice(0, 5), 'AAAA'].join('$'), // truncated hash
    ];
    for (const stored of variants) expect(await verifyPassword('a fine password', stored)).toBe(false);
  });
});
