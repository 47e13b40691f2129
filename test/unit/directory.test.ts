/**
 * The directory of apps and API keys (src/auth/directory.ts): keys are shown once, stored only as
 * hashes, listed without secrets, revocable by id within their app, and resolve to exactly one
 * app and level.
 */
import { describe, expect, it } from 'vitest';
import { Directory } from '../../src/auth/directory.js';
import { newSecret } from '../../src/auth/secrets.js';
import type { Revocation } from '../../src/auth/directory.js';
import { ErrorCode, SyncError } from '../../src/model/errors.js';
import { Level } from '../../src/model/permissions.js';
import { MemoryStore } from './memory-store.js';

function setup(options: { tokenTtlMs?: number } = {}) {
  const store = new MemoryStore();
  const time = { now: 1_700_000_000_000 };
  const directory = new Directory(store, { now: () => time.now, passwordParams: { N: 1024, r: 8, p: 1 }, ...options });
  return { store, directory, time };
}

async function codeOfAsync(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    if (error instanceof SyncError) return error.code;
    throw error;
  }
  return undefined;
}

describe('apps', () => {
  it('are created with one key of each level, each resolving to the app and its level', async () => {
    const { directory } = setup();
    const { app, keys } = await directory.createApp('Notes-App');
    expect(app.id).toBe('notes-app');
    for (const level of [Level.ADMIN, Level.DEFAULT, Level.READONLY]) {
      const record = await directory.resolveKey(keys[level]);
      expect(record).toMatchObject({ app: 'notes-app', level, revokedAt: null });
    }
    expect(await directory.app('NOTES-APP')).toEqual(app); // ids are case-insensitive
    expect((await directory.listApps()).map((a) => a.id)).toEqual(['notes-app']);
  });

  it('refuses a second app of the same id (in any case) and an invalid id, writing nothing', async () => {
    const { store, directory } = setup();
    await directory.createApp('notes');
    const batches = store.batches.length;
    expect(await codeOfAsync(() => directory.createApp('NOTES'))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.createApp('no/slash'))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.createApp(''))).toBe(ErrorCode.INVALID_INPUT);
    expect(store.batches.length).toBe(batches);
  });
});

describe('keys', () => {
  it('are stored only as hashes: no stored value or key contains a secret', async () => {
    const { store, directory } = setup();
    const { keys } = await directory.createApp('notes');
    const extra = await directory.createKey('notes', Level.DEFAULT);
    const written = store.batches.flat().map((op) => (op.type === 'put' ? op.key + op.value : op.key)).join('\n');
    for (const secret of [...Object.values(keys), extra.key]) {
      expect(written).not.toContain(secret);
      expect(written).not.toContain(secret.slice(4));
    }
  });

  it('are listed with their id, level and dates, never their secret', async () => {
    const { directory } = setup();
    const { keys } = await directory.createApp('notes');
    const created = await directory.createKey('notes', Level.READONLY);
    const listed = await directory.listKeys('notes');
    expect(listed).toHaveLength(4);
    expect(listed).toContainEqual(created.info);
    expect(JSON.stringify(listed)).not.toContain('sgk_');
    for (const secret of Object.values(keys)) expect(JSON.stringify(listed)).not.toContain(secret.slice(4, 20));
  });

  it('stop resolving once revoked; revoking again keeps the first date', async () => {
    const { directory } = setup();
    const { keys } = await directory.createApp('notes');
    const admin = (await directory.resolveKey(keys.admin))!;
    const revoked = await directory.revokeKey('notes', admin.id);
    expect(revoked.revokedAt).not.toBeNull();
    expect(await directory.resolveKey(keys.admin)).toBeUndefined();
    expect((await directory.revokeKey('notes', admin.id)).revokedAt).toBe(revoked.revokedAt);
    expect((await directory.listKeys('notes')).find((k) => k.id === admin.id)?.revokedAt).toBe(revoked.revokedAt);
    expect(await directory.resolveKey(keys.default)).toBeDefined(); // the others still work
  });

  it('cannot be revoked, listed or created through another app', async () => {
    const { directory } = setup();
    const a = await directory.createApp('app-a');
    await directory.createApp('app-b');
    const keyA = (await directory.resolveKey(a.keys.admin))!;
    expect(await codeOfAsync(() => directory.revokeKey('app-b', keyA.id))).toBe(ErrorCode.NOT_FOUND);
    expect(await directory.resolveKey(a.keys.admin)).toMatchObject({ app: 'app-a' });
    expect((await directory.listKeys('app-b')).map((k) => k.id)).not.toContain(keyA.id);
    expect(await codeOfAsync(() => directory.createKey('app-c', Level.ADMIN))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOfAsync(() => directory.listKeys('app-c'))).toBe(ErrorCode.NOT_FOUND);
  });

  it('resolve nothing for unknown keys, tokens, or anything else presented', async () => {
    const { directory } = setup();
    await directory.createApp('notes');
    for (const presented of [newSecret('key'), newSecret('token'), '', 'Bearer x', 'sgk_short', '\u0000'.repeat(50)]) {
      expect(await directory.resolveKey(presented)).toBeUndefined();
    }
  });
});

describe('users and tokens', () => {
  async function withUser() {
    const context = setup({ tokenTtlMs: 60_000 });
    await context.directory.createApp('notes');
    await context.directory.createUser('notes', 'Alice@Example.com', 'correct horse');
    return context;
  }

  it('sign up once per (case-insensitive) name; the password is never stored as given', async () => {
    const { store, directory } = await withUser();
    expect(await directory.user('notes', 'alice@example.com')).toMatchObject({ app: 'notes', username: 'alice@example.com' });
    expect(await codeOfAsync(() => directory.createUser('notes', 'ALICE@example.com', 'another one'))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.createUser('notes', 'bob', 'short'))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.createUser('notes', 'no spaces', 'long enough'))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.createUser('other', 'bob', 'long enough'))).toBe(ErrorCode.NOT_FOUND);
    expect(JSON.stringify(store.batches)).not.toContain('correct horse');
  });

  it('refuses concurrent sign-ups of one name but one', async () => {
    const { directory } = setup();
    await directory.createApp('notes');
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => directory.createUser('notes', 'carol', 'same password')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('authorize with the right password: a token of the caller\'s level, acting as the user, expiring', async () => {
    const { directory, time } = await withUser();
    const { token, record } = await directory.authorize('notes', 'ALICE@example.com', 'correct horse', Level.DEFAULT, '10.0.0.1');
    expect(token).toMatch(/^sgt_/);
    expect(record).toMatchObject({ app: 'notes', user: 'alice@example.com', level: Level.DEFAULT, expiresAt: time.now + 60_000 });
    expect(await directory.resolveToken(token)).toEqual(record);
    expect(await directory.resolveKey(token)).toBeUndefined(); // a token is not a key
    time.now += 60_000;
    expect(await directory.resolveToken(token)).toBeUndefined();
  });

  it('gives a wrong password and an unknown user the same answer', async () => {
    const { directory } = await withUser();
    expect(await codeOfAsync(() => directory.authorize('notes', 'alice@example.com', 'wrong horse', Level.DEFAULT, 'a'))).toBe(ErrorCode.UNAUTHENTICATED);
    expect(await codeOfAsync(() => directory.authorize('notes', 'mallory', 'wrong horse', Level.DEFAULT, 'b'))).toBe(ErrorCode.UNAUTHENTICATED);
    const messages = await Promise.all([
      directory.authorize('notes', 'alice@example.com', 'wrong horse', Level.DEFAULT, 'c').catch((e: Error) => e.message),
      directory.authorize('notes', 'mallory', 'wrong horse', Level.DEFAULT, 'd').catch((e: Error) => e.message),
    ]);
    expect(messages[0]).toBe(messages[1]);
  });

  it('locks a user out after repeated failures, even for the right password, until the lock-out ends', async () => {
    const { directory, time } = await withUser();
    for (let i = 0; i < 6; i++) {
      expect(await codeOfAsync(() => directory.authorize('notes', 'alice@example.com', `guess ${i}!`, Level.DEFAULT, `addr${i}`))).toBe(ErrorCode.UNAUTHENTICATED);
    }
    expect(await codeOfAsync(() => directory.authorize('notes', 'alice@example.com', 'correct horse', Level.DEFAULT, 'home'))).toBe(ErrorCode.LIMIT_EXCEEDED);
    time.now += 1000;
    expect((await directory.authorize('notes', 'alice@example.com', 'correct horse', Level.DEFAULT, 'home')).token).toMatch(/^sgt_/);
  });

  it('revokes tokens on reset, delete, password change (keeping the asking session) and one by one, telling listeners', async () => {
    const { directory } = await withUser();
    const revocations: Revocation[] = [];
    directory.onRevocation((r) => revocations.push(r));
    const issue = () => directory.authorize('notes', 'alice@example.com', 'correct horse', Level.DEFAULT, 'x');
    const [a, b, c] = [await issue(), await issue(), await issue()];
    await directory.revokeToken('notes', 'alice@example.com', a.record.id);
    expect(await directory.resolveToken(a.token)).toBeUndefined();
    expect(await directory.resolveToken(b.token)).toBeDefined();
    await directory.changePassword('notes', 'alice@example.com', 'new battery staple', c.record.id);
    expect(await directory.resolveToken(b.token)).toBeUndefined();
    expect(await directory.resolveToken(c.token)).toBeDefined();
    expect(await codeOfAsync(() => directory.authorize('notes', 'alice@example.com', 'correct horse', Level.DEFAULT, 'x'))).toBe(ErrorCode.UNAUTHENTICATED);
    await directory.resetUser('notes', 'alice@example.com');
    expect(await directory.resolveToken(c.token)).toBeUndefined();
    expect(await directory.user('notes', 'alice@example.com')).toBeDefined();
    const d = await directory.authorize('notes', 'alice@example.com', 'new battery staple', Level.READONLY, 'x');
    await directory.deleteUser('notes', 'alice@example.com');
    expect(await directory.resolveToken(d.token)).toBeUndefined();
    expect(await directory.user('notes', 'alice@example.com')).toBeUndefined();
    expect(revocations.map((r) => r.tokenIds)).toEqual([[a.record.id], [b.record.id], [c.record.id], [d.record.id]]);
    expect(await codeOfAsync(() => directory.deleteUser('notes', 'alice@example.com'))).toBe(ErrorCode.NOT_FOUND);
  });
});

describe('shared buckets and ACL rules', () => {
  it('are kept, in order, and survive a restart (a new directory on the same store)', async () => {
    const { store, directory } = setup();
    await directory.createApp('notes');
    await directory.setShared('notes', 'board', true);
    await directory.setShared('notes', 'wiki', true);
    await directory.setShared('notes', 'wiki', false);
    await directory.grant('notes', { user: '*', item: 'board*', action: 'read', type: 'allow' });
    await directory.grant('notes', { user: 'bob', item: 'board*', action: '*', type: 'deny' });
    await directory.grant('notes', { user: 'alice', item: 'board/*', action: 'write', type: 'allow' });
    const rules = await directory.revokeRule('notes', { user: 'bob', item: 'board*', action: '*', type: 'deny' });
    expect(rules.map((r) => r.user)).toEqual(['*', 'alice']);
    const reopened = new Directory(store, { now: () => 0 });
    expect([...(await reopened.sharedBuckets('notes'))]).toEqual(['board']);
    expect(await reopened.aclRules('notes')).toEqual(rules);
    await reopened.grant('notes', { user: 'carol', item: 'board', action: 'read', type: 'deny' });
    expect((await reopened.aclRules('notes')).map((r) => r.user)).toEqual(['*', 'alice', 'carol']);
  });

  it('refuse invalid rules, unknown rules and unknown apps, writing nothing', async () => {
    const { store, directory } = setup();
    await directory.createApp('notes');
    const batches = store.batches.length;
    expect(await codeOfAsync(() => directory.grant('notes', { user: '', item: 'x', action: 'read', type: 'allow' }))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.grant('notes', { user: '*', item: 'x', action: 'read', type: 'perhaps' }))).toBe(ErrorCode.INVALID_INPUT);
    expect(await codeOfAsync(() => directory.revokeRule('notes', { user: '*', item: 'x', action: 'read', type: 'allow' }))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOfAsync(() => directory.grant('other', { user: '*', item: 'x', action: 'read', type: 'allow' }))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOfAsync(() => directory.setShared('notes', 'bad/name', true))).toBe(ErrorCode.INVALID_INPUT);
    expect(store.batches.length).toBe(batches);
  });

  it('keep every rule of concurrent grants', async () => {
    const { directory } = setup();
    await directory.createApp('notes');
    await Promise.all(Array.from({ length: 20 }, (_, i) => directory.grant('notes', { user: `u${i}`, item: 'x', action: 'read', type: 'allow' })));
    const reopened = new Directory((directory as unknown as { store: MemoryStore }).store, { now: () => 0 });
    expect((await reopened.aclRules('notes')).map((r) => r.user).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `u${i}`).sort());
  });
});
