/**
 * The directory of apps and API keys (src/auth/directory.ts): keys are shown once, stored only as
 * hashes, listed without secrets, revocable by id within their app, and resolve to exactly one
 * app and level.
 */
import { describe, expect, it } from 'vitest';
import { Directory } from '../../src/auth/directory.js';
import { newSecret } from '../../src/auth/secrets.js';
import { ErrorCode, SyncError } from '../../src/model/errors.js';
import { Level } from '../../src/model/permissions.js';
import { MemoryStore } from './memory-store.js';

function setup() {
  const store = new MemoryStore();
  let clock = 1_700_000_000_000;
  const directory = new Directory(store, { now: () => clock++ });
  return { store, directory };
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
