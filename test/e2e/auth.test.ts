/**
 * Black-box: apps, API keys, users and access tokens against a real node process (issue 3, in
 * progress). Who may do what, that a user's buckets are their own, that nothing crosses apps,
 * that revocation ends live sessions, and that guessing passwords gets slowed down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, deferred, gql, gqlData, rawPost, wsClient } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import {
  ApiKeys,
  Authorize,
  ChangesPage,
  ChangesSubscription,
  ConfigureBucket,
  CreateApiKey,
  CreateApp,
  CreateUser,
  DeleteUser,
  GetEntity,
  GrantAcl,
  ShareBucket,
  PushEvents,
  ResetUser,
  RevokeApiKey,
  SubmitChanges,
  Viewer,
} from '../support/operations.js';

let node: NodeProcess;
let n = 0;
const fresh = (prefix: string) => `${prefix}${++n}-${Date.now().toString(36)}`;
const hex = () => Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0') + (++n).toString(16);

beforeAll(async () => {
  node = await startNodeProcess();
});
afterAll(cleanupNodes);

/** A new app with its three keys, and a user signed in with the default key. */
async function appWithUser(username = 'alice@example.com', password = 'correct horse') {
  const created = (await gqlData(node, CreateApp, { id: fresh('app') })).createApp;
  const as = (token: string, headers?: Record<string, string>) => ({ token, ...(headers ? { headers } : {}) });
  const user = await gql(node, CreateUser, { username, password }, as(created.readonlyKey));
  expect(user.errors).toBeUndefined();
  const signIn = await gql(node, Authorize, { username, password }, as(created.defaultKey));
  expect(signIn.errors).toBeUndefined();
  return { ...created, token: signIn.data!.authorize.token, tokenId: signIn.data!.authorize.id, as };
}

async function writeAs(token: string, bucket: string, key: string, data: Record<string, unknown>) {
  return gql(node, SubmitChanges, { bucket, changes: [{ ccid: hex(), key, op: 'MODIFY', data }] }, { token });
}

describe('apps and keys', () => {
  it('are created by the node admin key only, with a key of each level bound to the app', async () => {
    const created = (await gqlData(node, CreateApp, { id: fresh('App') })).createApp;
    expect(created.adminKey).toMatch(/^sgk_/);
    for (const [key, level] of [
      [created.adminKey, 'ADMIN'],
      [created.defaultKey, 'DEFAULT'],
      [created.readonlyKey, 'READONLY'],
    ] as const) {
      const viewer = await gql(node, Viewer, {}, { token: key });
      expect(viewer.data?.viewer).toEqual({ app: created.app.id, level, user: null, operator: false });
    }
    const refused = await gql(node, CreateApp, { id: fresh('other') }, { token: created.adminKey });
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('are listed without secrets, and stop working once revoked (admin only)', async () => {
    const { adminKey, defaultKey } = await appWithUser();
    const made = (await gql(node, CreateApiKey, { level: 'DEFAULT' }, { token: adminKey })).data!.createApiKey;
    const listed = (await gql(node, ApiKeys, {}, { token: adminKey })).data!.apiKeys;
    expect(listed.map((k) => k.id)).toContain(made.info.id);
    expect(JSON.stringify(listed)).not.toContain('sgk_');
    expect((await gql(node, ApiKeys, {}, { token: defaultKey })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    await gql(node, RevokeApiKey, { id: made.info.id }, { token: adminKey });
    const after = await gql(node, Viewer, {}, { token: made.key });
    expect(after.status).toBe(401);
    expect(after.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('refuse a header naming another app, and unknown credentials', async () => {
    const a = await appWithUser();
    const b = await appWithUser();
    const crossed = await gql(node, Viewer, {}, { token: a.adminKey, headers: { 'x-syncgraph-app': b.app.id } });
    expect(crossed.status).toBe(403);
    expect(crossed.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const tokenCrossed = await gql(node, Viewer, {}, { token: a.token, headers: { 'x-syncgraph-app': b.app.id } });
    expect(tokenCrossed.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    for (const token of ['sgk_' + 'A'.repeat(43), 'sgt_' + 'A'.repeat(43), 'nonsense']) {
      const result = await gql(node, Viewer, {}, { token });
      expect(result.status).toBe(401);
      expect(result.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });
});

describe("a user's buckets", () => {
  it('are their own: the same bucket and key hold different data for alice and bob', async () => {
    const app = await appWithUser('alice');
    await gql(node, CreateUser, { username: 'bob', password: 'bob password' }, { token: app.defaultKey });
    const bob = (await gql(node, Authorize, { username: 'bob', password: 'bob password' }, { token: app.defaultKey })).data!.authorize.token;
    expect((await writeAs(app.token, 'notes', 'k', { owner: 'alice' })).errors).toBeUndefined();
    expect((await writeAs(bob, 'notes', 'k', { owner: 'bob' })).errors).toBeUndefined();
    const read = async (token: string) => (await gql(node, GetEntity, { bucket: 'notes', key: 'k' }, { token })).data?.entity?.data;
    expect(await read(app.token)).toEqual({ owner: 'alice' });
    expect(await read(bob)).toEqual({ owner: 'bob' });
    // An admin key acting as alice sees alice's; on its own, the app's instance (empty).
    const asAlice = await gql(node, GetEntity, { bucket: 'notes', key: 'k' }, { token: app.adminKey, headers: { 'x-syncgraph-user': 'alice' } });
    expect(asAlice.data?.entity?.data).toEqual({ owner: 'alice' });
    expect((await gql(node, GetEntity, { bucket: 'notes', key: 'k' }, { token: app.adminKey })).data?.entity).toBeNull();
  });

  it("cannot be paged with another user's cursor", async () => {
    const app = await appWithUser('carol');
    await gql(node, CreateUser, { username: 'dave', password: 'dave password' }, { token: app.defaultKey });
    const dave = (await gql(node, Authorize, { username: 'dave', password: 'dave password' }, { token: app.defaultKey })).data!.authorize.token;
    await writeAs(app.token, 'notes', 'secret', { text: "carol's" });
    const carolPage = (await gql(node, ChangesPage, { bucket: 'notes', limit: 10 }, { token: app.token })).data!.changes;
    const forged = await gql(node, ChangesPage, { bucket: 'notes', since: carolPage.cursor, limit: 10 }, { token: dave });
    expect(forged.errors?.[0]?.extensions?.code).toBe('INVALID_CURSOR');
    const davePage = (await gql(node, ChangesPage, { bucket: 'notes', limit: 10 }, { token: dave })).data!.changes;
    expect(davePage.changes).toEqual([]);
    // Nor subscribed to with it.
    const client = wsClient(node, dave);
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'notes', since: carolPage.cursor });
      await sub.done.catch(() => undefined);
      expect(JSON.stringify(sub.errors)).toContain('INVALID_CURSOR');
      expect(sub.items).toEqual([]);
    } finally {
      await client.dispose();
    }
  });

  it("cannot be reached with another app's cursor, even for the same bucket and user name", async () => {
    const a = await appWithUser('same');
    const b = await appWithUser('same');
    await writeAs(a.token, 'notes', 'k', { app: 'a' });
    const cursor = (await gql(node, ChangesPage, { bucket: 'notes', limit: 10 }, { token: a.token })).data!.changes.cursor;
    const crossed = await gql(node, ChangesPage, { bucket: 'notes', since: cursor, limit: 10 }, { token: b.token });
    expect(crossed.errors?.[0]?.extensions?.code).toBe('INVALID_CURSOR');
    expect((await gql(node, GetEntity, { bucket: 'notes', key: 'k' }, { token: b.token })).data?.entity).toBeNull();
  });

  it('are out of reach of default and read-only keys without a user, and of acting-as from non-admin keys', async () => {
    const app = await appWithUser('erin');
    for (const token of [app.defaultKey, app.readonlyKey]) {
      expect((await writeAs(token, 'notes', 'k', {})).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const actAs = await gql(node, Viewer, {}, { token, headers: { 'x-syncgraph-user': 'erin' } });
      expect(actAs.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
  });
});

describe('levels', () => {
  it('a token has the level of the key it was issued with', async () => {
    const app = await appWithUser('frank', 'frank password');
    const readonly = (await gql(node, Authorize, { username: 'frank', password: 'frank password' }, { token: app.readonlyKey })).data!.authorize;
    expect(readonly.level).toBe('READONLY');
    expect((await gql(node, Viewer, {}, { token: readonly.token })).data?.viewer).toEqual({ app: app.app.id, level: 'READONLY', user: 'frank', operator: false });
    const refused = await writeAs(readonly.token, 'notes', 'k', { x: 1 });
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const page = await gql(node, ChangesPage, { bucket: 'notes', limit: 10 }, { token: app.token });
    expect(page.data?.changes.changes).toEqual([]); // nothing was written
  });

  it('a default token may write but not DROP, configure, reset or delete users', async () => {
    const app = await appWithUser('gina');
    expect((await writeAs(app.token, 'notes', 'k', { a: 1 })).errors).toBeUndefined();
    const drop = await gql(node, SubmitChanges, { bucket: 'notes', changes: [{ ccid: hex(), op: 'DROP' }] }, { token: app.token });
    expect(drop.data?.submitChanges[0]?.error?.code).toBe('INVALID_PERMISSION');
    const configure = await gql(node, ConfigureBucket, { name: 'notes', config: { versionMax: 5 } }, { token: app.token });
    expect(configure.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gql(node, ResetUser, { username: 'gina' }, { token: app.token })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gql(node, DeleteUser, { username: 'gina' }, { token: app.defaultKey })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it("a user pushes events only under their own name (Simple Sync), unless admin", async () => {
    const app = await appWithUser('hank');
    const event = (user: string) => {
      const uuid = '01890a5d-ac96-774b-bcce-b302099a8057';
      return { uuid, timestamp: String(0x01890a5dac96), user, item: 'doc', action: 'edit', payload: '{}' };
    };
    const pushed = await gql(node, PushEvents, { bucket: 'log', events: [event('someone-else')] }, { token: app.token });
    expect(pushed.data?.pushEvents.rejected[0]?.code).toBe('INVALID_PERMISSION');
    const own = await gql(node, PushEvents, { bucket: 'log', events: [event('hank')] }, { token: app.token });
    expect(own.data?.pushEvents.accepted).toHaveLength(1);
  });
});

describe('sessions', () => {
  it("resetting a user ends their live subscription and their token", async () => {
    const app = await appWithUser('ivy');
    const closed = deferred<number>();
    const client = wsClient(node, app.token, { onClosed: (code) => closed.resolve(code) });
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'notes', since: null });
      await writeAs(app.token, 'notes', 'k', { a: 1 });
      await sub.until(1);
      expect((await gql(node, ResetUser, { username: 'ivy' }, { token: app.adminKey })).data?.resetUser).toBe(true);
      expect(await closed.promise).toBe(4403);
      expect((await gql(node, Viewer, {}, { token: app.token })).status).toBe(401);
    } finally {
      await client.dispose();
    }
  });

  it('a socket that does not authenticate is refused', async () => {
    const closed = deferred<number>();
    const client = wsClient(node, 'sgt_' + 'B'.repeat(43), { onClosed: (code) => closed.resolve(code) });
    expect(await closed.promise).toBe(4403);
    await client.dispose();
  });
});

describe('passwords', () => {
  it('repeated wrong guesses lock the user out, even for the right password', async () => {
    const app = await appWithUser('jack', 'the right one');
    // Other users from the same address are not locked out by jack's (only 50 failures are).
    const other = await appWithUser('lena', 'lena password');
    for (let i = 0; i < 6; i++) {
      const wrong = await gql(node, Authorize, { username: 'jack', password: `wrong guess ${i}` }, { token: app.defaultKey });
      expect(wrong.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    const locked = await gql(node, Authorize, { username: 'jack', password: 'the right one' }, { token: app.defaultKey });
    expect(locked.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    const unaffected = await gql(node, Authorize, { username: 'lena', password: 'lena password' }, { token: other.defaultKey });
    expect(unaffected.data?.authorize.username).toBe('lena');
  });

  it('an unknown user and a wrong password get the same error', async () => {
    const app = await appWithUser('kate', 'kate password');
    const wrong = await gql(node, Authorize, { username: 'kate', password: 'not it at all' }, { token: app.defaultKey });
    const unknown = await gql(node, Authorize, { username: 'nobody', password: 'not it at all' }, { token: app.defaultKey });
    expect(wrong.errors?.[0]).toEqual(unknown.errors?.[0]);
  });
});

describe('shared buckets', () => {
  async function team() {
    const app = await appWithUser('alice');
    const signUp = async (name: string) => {
      await gql(node, CreateUser, { username: name, password: `${name} password` }, { token: app.defaultKey });
      return (await gql(node, Authorize, { username: name, password: `${name} password` }, { token: app.defaultKey })).data!.authorize.token;
    };
    const [bob, carol] = [await signUp('bob'), await signUp('carol')];
    const admin = { token: app.adminKey };
    expect((await gql(node, ShareBucket, { name: 'board', shared: true }, admin)).data?.shareBucket).toEqual(['board']);
    for (const rule of [
      { user: '*', item: 'board*', action: 'read', type: 'ALLOW' as const },
      { user: 'alice', item: 'board/*', action: 'write', type: 'ALLOW' as const },
      { user: 'bob', item: 'board/bob-*', action: 'write', type: 'ALLOW' as const },
      { user: 'carol', item: 'board*', action: '*', type: 'DENY' as const },
    ]) {
      expect((await gql(node, GrantAcl, { rule }, admin)).errors).toBeUndefined();
    }
    return { app, alice: app.token, bob, carol };
  }

  it('are one instance for all users, where the ACL decides who reads and writes what', async () => {
    const { alice, bob, carol } = await team();
    expect((await writeAs(alice, 'board', 'plan', { by: 'alice' })).data?.submitChanges[0]?.error).toBeNull();
    // bob reads alice's entity in the shared bucket, may write only his own keys.
    expect((await gql(node, GetEntity, { bucket: 'board', key: 'plan' }, { token: bob })).data?.entity?.data).toEqual({ by: 'alice' });
    expect((await writeAs(bob, 'board', 'plan', { by: 'bob' })).data?.submitChanges[0]?.error?.code).toBe('INVALID_PERMISSION');
    expect((await writeAs(bob, 'board', 'bob-1', { by: 'bob' })).data?.submitChanges[0]?.error).toBeNull();
    // carol is denied everything on the board, reading included.
    expect((await gql(node, GetEntity, { bucket: 'board', key: 'plan' }, { token: carol })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gql(node, ChangesPage, { bucket: 'board', limit: 10 }, { token: carol })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // EMPTY needs `admin` on the bucket, which nobody was granted.
    const empty = await gql(node, SubmitChanges, { bucket: 'board', changes: [{ ccid: hex(), op: 'EMPTY' }] }, { token: alice });
    expect(empty.data?.submitChanges[0]?.error?.code).toBe('INVALID_PERMISSION');
    // What was refused was not written: the board holds alice's plan and bob's note only.
    const page = (await gql(node, ChangesPage, { bucket: 'board', limit: 10 }, { token: alice })).data!.changes.changes;
    expect(page.map((c) => [c.key, c.data])).toEqual([
      ['plan', { by: 'alice' }],
      ['bob-1', { by: 'bob' }],
    ]);
    // Private buckets stay private beside the shared one.
    await writeAs(alice, 'notes', 'k', { mine: true });
    expect((await gql(node, GetEntity, { bucket: 'notes', key: 'k' }, { token: bob })).data?.entity).toBeNull();
  });

  it('leave an entity the ACL hides out of pages, streams and subscriptions', async () => {
    const { app, alice, bob } = await team();
    await gql(node, GrantAcl, { rule: { user: 'bob', item: 'board/secret', action: 'read', type: 'DENY' } }, { token: app.adminKey });
    const client = wsClient(node, bob);
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'board', since: null });
      await writeAs(alice, 'board', 'plan', { v: 1 });
      await writeAs(alice, 'board', 'secret', { v: 'hidden' });
      await writeAs(alice, 'board', 'after', { v: 2 });
      const seen = await sub.until(2);
      expect(seen.map((item) => item.changes.key)).toEqual(['plan', 'after']);
      sub.stop();
    } finally {
      await client.dispose();
    }
    const page = (await gql(node, ChangesPage, { bucket: 'board', limit: 10 }, { token: bob })).data!.changes;
    expect(page.changes.map((c) => c.key)).toEqual(['plan', 'after']);
    expect((await gql(node, GetEntity, { bucket: 'board', key: 'secret' }, { token: bob })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const entities = await rawPost(node, { query: '{ entities(bucket: "board") { key } }' }, { token: bob });
    expect(entities.data).toEqual({ entities: [{ key: 'after' }, { key: 'plan' }] });
    // alice still sees everything.
    const hers = (await gql(node, ChangesPage, { bucket: 'board', limit: 10 }, { token: alice })).data!.changes;
    expect(hers.changes.map((c) => c.key)).toEqual(['plan', 'secret', 'after']);
  });

  it('apply to live subscriptions as soon as the rules change', async () => {
    const { app, alice, bob } = await team();
    const client = wsClient(node, bob);
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'board', since: null });
      await writeAs(alice, 'board', 'one', { v: 1 });
      await sub.until(1);
      // bob loses sight of `two` while subscribed, then of the whole board.
      await gql(node, GrantAcl, { rule: { user: 'bob', item: 'board/two', action: 'read', type: 'DENY' } }, { token: app.adminKey });
      await writeAs(alice, 'board', 'two', { v: 2 });
      await writeAs(alice, 'board', 'three', { v: 3 });
      await sub.until(2);
      // (`board*`, not `board`: the prefix outranks the bare name, so only it can override `* board* read`.)
      await gql(node, GrantAcl, { rule: { user: 'bob', item: 'board*', action: 'read', type: 'DENY' } }, { token: app.adminKey });
      await writeAs(alice, 'board', 'four', { v: 4 });
      await writeAs(alice, 'board', 'five', { v: 5 });
      // alice's own stream is the witness that `four` and `five` were published.
      const witness = (await gql(node, ChangesPage, { bucket: 'board', limit: 10 }, { token: alice })).data!.changes.changes;
      expect(witness.map((c) => c.key)).toEqual(['one', 'two', 'three', 'four', 'five']);
      const late = collect(client, ChangesSubscription, { bucket: 'board', since: null });
      await Promise.race([late.done.catch(() => undefined), new Promise((_, reject) => setTimeout(() => reject(new Error('not refused')), 5000))]); // refused outright
      expect(JSON.stringify(late.errors)).toContain('FORBIDDEN');
      expect(sub.items.map((item) => item.changes.key)).toEqual(['one', 'three']);
      sub.stop();
    } finally {
      await client.dispose();
    }
  });

  it("check each pushed event's own item and action", async () => {
    const { app, alice } = await team();
    await gql(node, ShareBucket, { name: 'log', shared: true }, { token: app.adminKey });
    await gql(node, GrantAcl, { rule: { user: 'alice', item: 'doc.*', action: 'edit', type: 'ALLOW' } }, { token: app.adminKey });
    const refused = await gql(node, PushEvents, { bucket: 'log', events: [] }, { token: alice });
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN'); // a push answers with the history: it takes read
    await gql(node, GrantAcl, { rule: { user: '*', item: 'log', action: 'read', type: 'ALLOW' } }, { token: app.adminKey });
    const event = (uuid: string, item: string) => ({ uuid, timestamp: String(0x01890a5dac96), user: 'alice', item, action: 'edit', payload: '{}' });
    const pushed = await gql(
      node,
      PushEvents,
      { bucket: 'log', events: [event('01890a5d-ac96-774b-bcce-b302099a8057', 'doc.1'), event('01890a5d-ac96-774b-bcce-b302099a8058', 'secret.1')] },
      { token: alice },
    );
    expect(pushed.data?.pushEvents.accepted.map((e) => e.item)).toEqual(['doc.1']);
    expect(pushed.data?.pushEvents.rejected.map((r) => [r.uuid, r.code])).toEqual([['01890a5d-ac96-774b-bcce-b302099a8058', 'INVALID_PERMISSION']]);
  });
});

describe('expiry and revocation of credentials', () => {
  it('an expired token is refused', async () => {
    const short = await startNodeProcess({ args: ['--limit', 'tokenTtlSeconds=1'] });
    const created = (await gqlData(short, CreateApp, { id: fresh('ttl') })).createApp;
    await gql(short, CreateUser, { username: 'u', password: 'a long password' }, { token: created.defaultKey });
    const signIn = (await gql(short, Authorize, { username: 'u', password: 'a long password' }, { token: created.defaultKey })).data!.authorize;
    expect((await gql(short, Viewer, {}, { token: signIn.token })).status).toBe(200);
    const expiresIn = new Date(signIn.expiresAt).getTime() - Date.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresIn) + 50));
    const expired = await gql(short, Viewer, {}, { token: signIn.token });
    expect(expired.status).toBe(401);
    expect(expired.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it("a token's expiry ends its live subscriptions", async () => {
    const short = await startNodeProcess({ args: ['--limit', 'tokenTtlSeconds=2'] });
    const created = (await gqlData(short, CreateApp, { id: fresh('ttl') })).createApp;
    await gql(short, CreateUser, { username: 'u', password: 'a long password' }, { token: created.defaultKey });
    const signIn = (await gql(short, Authorize, { username: 'u', password: 'a long password' }, { token: created.defaultKey })).data!.authorize;
    const closed = deferred<number>();
    const client = wsClient(short, signIn.token, { onClosed: (code) => closed.resolve(code) });
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'notes', since: null });
      await gql(short, SubmitChanges, { bucket: 'notes', changes: [{ ccid: hex(), key: 'k', op: 'MODIFY', data: {} }] }, { token: signIn.token });
      await sub.until(1);
      expect(await closed.promise).toBe(4403);
      expect(Date.now()).toBeGreaterThanOrEqual(new Date(signIn.expiresAt).getTime() - 50);
    } finally {
      await client.dispose();
    }
  });

  it('revoking a key ends the sockets that authenticated with it', async () => {
    const app = await appWithUser('mike');
    const made = (await gql(node, CreateApiKey, { level: 'ADMIN' }, { token: app.adminKey })).data!.createApiKey;
    const closed = deferred<number>();
    const client = wsClient(node, made.key, { onClosed: (code) => closed.resolve(code) });
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'k', since: null });
      await gql(node, SubmitChanges, { bucket: 'k', changes: [{ ccid: hex(), key: 'x', op: 'MODIFY', data: {} }] }, { token: made.key });
      await sub.until(1);
      await gql(node, RevokeApiKey, { id: made.info.id }, { token: app.adminKey });
      expect(await closed.promise).toBe(4403);
    } finally {
      await client.dispose();
    }
  });

  it('a socket that never sends connection_init is closed (4408)', async () => {
    const socket = new (await import('ws')).default(node.wsUrl, 'graphql-transport-ws');
    const code = await new Promise<number>((resolve) => socket.once('close', (c: number) => resolve(c)));
    expect(code).toBe(4408);
  });
});

describe('buckets and user deletion', () => {
  it("lists the app's buckets and a user's; deleting a user deletes their private data", async () => {
    const app = await appWithUser('nina');
    await gql(node, CreateUser, { username: 'oscar', password: 'oscar password' }, { token: app.defaultKey });
    const oscar = (await gql(node, Authorize, { username: 'oscar', password: 'oscar password' }, { token: app.defaultKey })).data!.authorize.token;
    await writeAs(app.token, 'notes', 'n1', { by: 'nina' });
    await writeAs(app.token, 'todo', 't1', { by: 'nina' });
    await writeAs(oscar, 'notes', 'o1', { by: 'oscar' });
    const list = async (user?: string) =>
      (await rawPost(node, { query: 'query($u: String) { buckets(user: $u) }', variables: { u: user ?? null } }, { token: app.adminKey })).data as unknown as {
        buckets: string[];
      };
    expect((await list()).buckets).toEqual(['notes', 'todo']);
    expect((await list('nina')).buckets).toEqual(['notes', 'todo']);
    expect((await list('oscar')).buckets).toEqual(['notes']);
    const refused = await rawPost(node, { query: '{ buckets }' }, { token: app.token });
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    expect((await gql(node, DeleteUser, { username: 'nina' }, { token: app.adminKey })).data?.deleteUser).toBe(true);
    expect((await list('nina')).buckets).toEqual([]);
    expect((await list()).buckets).toEqual(['notes']); // oscar's
    const asNina = { token: app.adminKey, headers: { 'x-syncgraph-user': 'nina' } };
    expect((await gql(node, GetEntity, { bucket: 'notes', key: 'n1' }, asNina)).data?.entity).toBeNull();
    expect((await gql(node, GetEntity, { bucket: 'notes', key: 'o1' }, { token: oscar })).data?.entity?.data).toEqual({ by: 'oscar' });
    expect((await gql(node, Viewer, {}, { token: app.token })).status).toBe(401);
  });
});

describe('changes across users', () => {
  it('pages every instance of a bucket for an admin, each change with its owner', async () => {
    const app = await appWithUser('pia');
    await gql(node, CreateUser, { username: 'quinn', password: 'quinn password' }, { token: app.defaultKey });
    const quinn = (await gql(node, Authorize, { username: 'quinn', password: 'quinn password' }, { token: app.defaultKey })).data!.authorize.token;
    await writeAs(app.token, 'notes', 'p1', { by: 'pia' });
    await writeAs(app.token, 'notes', 'p2', { by: 'pia' });
    await writeAs(quinn, 'notes', 'q1', { by: 'quinn' });
    await writeAs(app.adminKey, 'notes', 'a1', { by: 'admin' });
    const query = 'query($s: String) { changesAcrossUsers(bucket: "notes", since: $s, limit: 1) { changes { user change { key } } cursor hasMore } }';
    const seen: Array<[string | null, string]> = [];
    let since: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const answer = await rawPost(node, { query, variables: { s: since } }, { token: app.adminKey });
      const page = (answer.data as unknown as { changesAcrossUsers: { changes: Array<{ user: string | null; change: { key: string } }>; cursor: string; hasMore: boolean } })
        .changesAcrossUsers;
      for (const c of page.changes) seen.push([c.user, c.change.key]);
      since = page.cursor;
      if (!page.hasMore) break;
    }
    expect(seen).toEqual([
      [null, 'a1'],
      ['pia', 'p1'],
      ['pia', 'p2'],
      ['quinn', 'q1'],
    ]);
    // Caught up: a new change is the only one of the next page.
    await writeAs(quinn, 'notes', 'q2', { by: 'quinn' });
    const next = await rawPost(node, { query, variables: { s: since } }, { token: app.adminKey });
    expect(JSON.stringify(next.data)).toContain('q2');
    expect((await rawPost(node, { query, variables: { s: 'x1.garbage' } }, { token: app.adminKey })).errors?.[0]?.extensions?.code).toBe('INVALID_CURSOR');
    expect((await rawPost(node, { query, variables: { s: null } }, { token: app.token })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('deleting a user', () => {
  it("leaves nothing of their private data on disk (logs, indexes, entities, versions, events)", async () => {
    const own = await startNodeProcess();
    const created = (await gqlData(own, CreateApp, { id: fresh('gdpr') })).createApp;
    await gql(own, CreateUser, { username: 'rosa', password: 'rosa password' }, { token: created.defaultKey });
    const rosa = (await gql(own, Authorize, { username: 'rosa', password: 'rosa password' }, { token: created.defaultKey })).data!.authorize.token;
    const marker = 'rosa-private-marker-7f3a';
    for (let i = 0; i < 3; i++) {
      const written = await gql(own, SubmitChanges, { bucket: 'diary', changes: [{ ccid: hex(), key: `d${i}`, op: 'MODIFY', data: { text: `${marker} ${i}` } }] }, { token: rosa });
      expect(written.data?.submitChanges[0]?.error).toBeNull();
    }
    const uuid = '01890a5d-ac96-774b-bcce-b302099a8057';
    const event = { uuid, timestamp: String(0x01890a5dac96), user: 'rosa', item: 'diary', action: 'note', payload: JSON.stringify({ marker }) };
    expect((await gql(own, PushEvents, { bucket: 'journal', events: [event] }, { token: rosa })).data?.pushEvents.accepted).toHaveLength(1);
    expect((await gql(own, DeleteUser, { username: 'rosa' }, { token: created.adminKey })).data?.deleteUser).toBe(true);
    await own.stop();
    const { ClassicLevel } = await import('classic-level');
    const db = new ClassicLevel<string, string>(`${own.dataDir}/db`);
    const found: string[] = [];
    for await (const [key, value] of db.iterator()) if (value.includes(marker) || key.includes('rosa')) found.push(key);
    await db.close();
    expect(found).toEqual([]);
    // (The purge also compacts the range, so the values leave LevelDB's files; that is not
    // checked here: snappy-compressed tables do not show a marker as plain bytes either way.)
  });
});
