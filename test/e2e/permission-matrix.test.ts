/**
 * Black-box: the permission matrix. Every operation against every kind of credential, on a real
 * node: allowed exactly where the matrix says, and nothing written where refused. The matrix is
 * also the table in docs/SECURITY.md (between the operation-matrix markers): the test renders it
 * and fails if the document says otherwise.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { rawPost } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';

let node: NodeProcess;
let n = 0;
const unique = (prefix: string) => `${prefix}${++n}x${Date.now().toString(36)}`;
const hex = () => (Date.now() * 1000 + ++n).toString(16);

const COLUMNS = [
  'none',
  'expired token',
  'revoked key',
  'read-only key',
  'default key',
  'admin key',
  'token',
  'read-only token',
  "other app's token",
  'node admin key',
] as const;
type Column = (typeof COLUMNS)[number];

/** The documented answer of each operation for each credential, in COLUMNS order. */
const MATRIX: Record<string, string> = {
  'read (changes, entities, events)': 'no no no no no yes yes yes no yes',
  'write (submitChanges MODIFY)': 'no no no no no yes yes no no yes',
  'subscribe (changes)': 'no no no no no yes yes yes no yes',
  'pushEvents': 'no no no no no yes yes no no yes',
  'DROP a bucket': 'no no no no no yes no no no yes',
  'configureBucket': 'no no no no no yes no no no yes',
  'viewer': 'no no no yes yes yes yes yes no yes',
  'createUser': 'no no no yes yes yes yes yes no yes',
  'authorize': 'no no no yes yes yes yes yes no yes',
  'resetUser': 'no no no no no yes no no no yes',
  'deleteUser': 'no no no no no yes no no no yes',
  'apiKeys / createApiKey / revokeApiKey': 'no no no no no yes no no no yes',
  'aclRules / grantAcl / shareBucket': 'no no no no no yes no no no yes',
  'buckets / changesAcrossUsers': 'no no no no no yes no no no yes',
  'createApp': 'no no no no no no no no no yes',
};

interface Credential {
  headers: Record<string, string>;
  /** Who the credential acts as, to look for writes that must not have happened. */
  user: string | null;
}

const credentials = {} as Record<Column, Credential>;
let appId = '';
let adminKey = '';

async function post(cred: Credential, query: string, variables: Record<string, unknown> = {}) {
  return rawPost(node, { query, variables }, { token: null, headers: cred.headers });
}

/** The operator, acting as `user` in the app under test: sees what `user` sees. */
function operatorAs(user: string | null): Credential {
  return { headers: { authorization: `Bearer ${node.adminKey}`, 'x-syncgraph-app': appId, ...(user ? { 'x-syncgraph-user': user } : {}) }, user };
}

const ok = (result: { errors?: unknown[]; status: number }) => result.status === 200 && result.errors === undefined;

async function subscribeAllowed(cred: Credential): Promise<boolean> {
  const params: Record<string, string> = {};
  if (cred.headers['authorization']) params['authorization'] = cred.headers['authorization'];
  if (cred.headers['x-syncgraph-app']) params['app'] = cred.headers['x-syncgraph-app'];
  const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws');
  try {
    return await new Promise<boolean>((resolve) => {
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: params })));
      socket.on('close', () => resolve(false));
      socket.on('message', (raw) => {
        const message = JSON.parse(String(raw)) as { type: string };
        if (message.type === 'connection_ack') {
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { changes(bucket: "notes") { key } }' } }));
          // A refused subscription is answered at once; one that is let through stays silent.
          setTimeout(() => resolve(true), 400);
        }
        if (message.type === 'error' || message.type === 'complete') resolve(false);
      });
    });
  } finally {
    socket.terminate();
  }
}

/** Each operation: performs it with the credential, checks nothing was written if refused. */
const OPERATIONS: Record<string, (cred: Credential) => Promise<boolean>> = {
  'read (changes, entities, events)': async (cred) => {
    const results = await Promise.all([
      post(cred, '{ changes(bucket: "notes") { cursor } }'),
      post(cred, '{ entities(bucket: "notes") { key } }'),
      post(cred, '{ events(bucket: "log") { cursor } }'),
    ]);
    const allowed = results.map(ok);
    expect(new Set(allowed).size).toBe(1); // all three alike
    return allowed[0]!;
  },
  'write (submitChanges MODIFY)': async (cred) => {
    const key = unique('k');
    const result = await post(cred, 'mutation($c: [ChangeInput!]!) { submitChanges(bucket: "notes", changes: $c) { error { code } } }', {
      c: [{ ccid: hex(), key, op: 'MODIFY', data: { v: 1 } }],
    });
    const allowed = ok(result) && (result.data as unknown as { submitChanges: Array<{ error: unknown }> }).submitChanges[0]!.error === null;
    if (!allowed) {
      const seen = await post(operatorAs(cred.user), '{ entity(bucket: "notes", key: $k) { key } }'.replace('$k', JSON.stringify(key)));
      expect(seen.data).toEqual({ entity: null });
    }
    return allowed;
  },
  'subscribe (changes)': subscribeAllowed,
  pushEvents: async (cred) => {
    const uuid = `01890a5d-ac96-7${hex().slice(-3)}-bcce-${hex().slice(-12).padStart(12, '0')}`;
    const result = await post(
      cred,
      'mutation($e: [EventInput!]!) { pushEvents(bucket: "log", events: $e) { accepted { uuid } rejected { code } } }',
      { e: [{ uuid, timestamp: String(0x01890a5dac96), user: cred.user ?? 'anyone', item: 'doc', action: 'edit', payload: '{}' }] },
    );
    const allowed = ok(result) && (result.data as unknown as { pushEvents: { accepted: unknown[] } }).pushEvents.accepted.length === 1;
    if (!allowed) {
      const seen = await post(operatorAs(cred.user), '{ events(bucket: "log") { events { uuid } } }');
      expect(JSON.stringify(seen.data)).not.toContain(uuid);
    }
    return allowed;
  },
  'DROP a bucket': async (cred) => {
    const bucket = unique('drop');
    await post(operatorAs(cred.user), 'mutation($b: String!, $c: [ChangeInput!]!) { submitChanges(bucket: $b, changes: $c) { ccid } }', {
      b: bucket,
      c: [{ ccid: hex(), key: 'k', op: 'MODIFY', data: {} }],
    });
    const result = await post(cred, 'mutation($b: String!, $c: [ChangeInput!]!) { submitChanges(bucket: $b, changes: $c) { error { code } } }', {
      b: bucket,
      c: [{ ccid: hex(), op: 'DROP' }],
    });
    const allowed = ok(result) && (result.data as unknown as { submitChanges: Array<{ error: unknown }> }).submitChanges[0]!.error === null;
    if (!allowed) {
      const seen = await post(operatorAs(cred.user), '{ entity(bucket: $b, key: "k") { key } }'.replace('$b', JSON.stringify(bucket)));
      expect(seen.data).toEqual({ entity: { key: 'k' } });
    }
    return allowed;
  },
  configureBucket: async (cred) => ok(await post(cred, 'mutation { configureBucket(name: "notes", config: { versionMax: 60 }) { name } }')),
  viewer: async (cred) => ok(await post(cred, '{ viewer { app } }')),
  createUser: async (cred) => {
    const username = unique('u');
    const allowed = ok(await post(cred, 'mutation($u: String!) { createUser(username: $u, password: "a long password") { username } }', { u: username }));
    if (!allowed) expect((await post(operatorAs(null), '{ user(username: $u) { username } }'.replace('$u', JSON.stringify(username)))).data).toEqual({ user: null });
    return allowed;
  },
  authorize: async (cred) => ok(await post(cred, 'mutation { authorize(username: "signin", password: "signin password") { token } }')),
  resetUser: async (cred) => {
    const username = unique('reset');
    await post(operatorAs(null), 'mutation($u: String!) { createUser(username: $u, password: "a long password") { username } }', { u: username });
    return ok(await post(cred, 'mutation($u: String!) { resetUser(username: $u) }', { u: username }));
  },
  deleteUser: async (cred) => {
    const username = unique('del');
    await post(operatorAs(null), 'mutation($u: String!) { createUser(username: $u, password: "a long password") { username } }', { u: username });
    const allowed = ok(await post(cred, 'mutation($u: String!) { deleteUser(username: $u) }', { u: username }));
    if (!allowed) expect((await post(operatorAs(null), '{ user(username: $u) { username } }'.replace('$u', JSON.stringify(username)))).data).toEqual({ user: { username } });
    return allowed;
  },
  'apiKeys / createApiKey / revokeApiKey': async (cred) => {
    const throwaway = (await post(operatorAs(null), 'mutation { createApiKey(level: DEFAULT) { info { id } } }')).data as unknown as { createApiKey: { info: { id: string } } };
    const results = [
      ok(await post(cred, '{ apiKeys { id } }')),
      ok(await post(cred, 'mutation { createApiKey(level: READONLY) { key } }')),
      ok(await post(cred, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: throwaway.createApiKey.info.id })),
    ];
    expect(new Set(results).size).toBe(1);
    return results[0]!;
  },
  'aclRules / grantAcl / shareBucket': async (cred) => {
    const bucket = unique('shared');
    const results = [
      ok(await post(cred, '{ aclRules { user } }')),
      ok(await post(cred, 'mutation { grantAcl(rule: { user: "nobody", item: "x", action: "read", type: DENY }) { user } }')),
      ok(await post(cred, 'mutation($b: String!) { shareBucket(name: $b, shared: true) }', { b: bucket })),
    ];
    expect(new Set(results).size).toBe(1);
    if (!results[0]) expect(JSON.stringify((await post(operatorAs(null), '{ sharedBuckets }')).data)).not.toContain(bucket);
    return results[0]!;
  },
  'buckets / changesAcrossUsers': async (cred) => {
    const results = [ok(await post(cred, '{ buckets }')), ok(await post(cred, '{ changesAcrossUsers(bucket: "notes") { hasMore } }'))];
    expect(new Set(results).size).toBe(1);
    return results[0]!;
  },
  createApp: async (cred) => {
    const id = unique('app');
    const allowed = ok(await post(cred, 'mutation($id: ID!) { createApp(id: $id) { adminKey } }', { id }));
    if (!allowed) expect(JSON.stringify((await rawPost(node, { query: '{ apps { id } }' })).data)).not.toContain(id);
    return allowed;
  },
};

beforeAll(async () => {
  node = await startNodeProcess();
  const operator = { headers: { authorization: `Bearer ${node.adminKey}` }, user: null };
  appId = unique('matrix');
  const made = (await post(operator, 'mutation($id: ID!) { createApp(id: $id) { adminKey defaultKey readonlyKey } }', { id: appId })).data as unknown as {
    createApp: { adminKey: string; defaultKey: string; readonlyKey: string };
  };
  const keys = made.createApp;
  adminKey = keys.adminKey;
  const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });
  const signUp = async (key: string, username: string, node2 = node) => {
    await rawPost(node2, { query: `mutation { createUser(username: "${username}", password: "${username} password") { username } }` }, { token: key });
    const signIn = await rawPost(node2, { query: `mutation { authorize(username: "${username}", password: "${username} password") { token } }` }, { token: key });
    return (signIn.data as unknown as { authorize: { token: string } }).authorize.token;
  };
  await signUp(keys.defaultKey, 'signin');
  const alice = await signUp(keys.defaultKey, 'alice');
  const expiring = await rawPost(node, { query: 'mutation { authorize(username: "alice", password: "alice password", ttlSeconds: 1) { token expiresAt } }' }, { token: keys.defaultKey });
  const expired = (expiring.data as unknown as { authorize: { token: string; expiresAt: string } }).authorize;
  const rita = await signUp(keys.readonlyKey, 'rita');
  const revoked = (await post({ headers: bearer(adminKey), user: null }, 'mutation { createApiKey(level: ADMIN) { key info { id } } }')).data as unknown as {
    createApiKey: { key: string; info: { id: string } };
  };
  await post({ headers: bearer(adminKey), user: null }, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: revoked.createApiKey.info.id });
  const other = (await post(operator, 'mutation($id: ID!) { createApp(id: $id) { defaultKey } }', { id: unique('other') })).data as unknown as {
    createApp: { defaultKey: string };
  };
  const bob = await signUp(other.createApp.defaultKey, 'bob');
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, new Date(expired.expiresAt).getTime() - Date.now()) + 20));
  Object.assign(credentials, {
    none: { headers: {}, user: null },
    'expired token': { headers: bearer(expired.token), user: 'alice' },
    'revoked key': { headers: bearer(revoked.createApiKey.key), user: null },
    'read-only key': { headers: bearer(keys.readonlyKey), user: null },
    'default key': { headers: bearer(keys.defaultKey), user: null },
    'admin key': { headers: bearer(keys.adminKey), user: null },
    token: { headers: bearer(alice), user: 'alice' },
    'read-only token': { headers: bearer(rita), user: 'rita' },
    "other app's token": { headers: { ...bearer(bob), 'x-syncgraph-app': appId }, user: 'bob' },
    'node admin key': { headers: { ...bearer(node.adminKey), 'x-syncgraph-app': appId }, user: null },
  } satisfies Record<Column, Credential>);
});
afterAll(cleanupNodes);

describe('permission matrix', () => {
  for (const [operation, row] of Object.entries(MATRIX)) {
    it(operation, async () => {
      const expected = row.split(' ');
      const actual: string[] = [];
      for (const column of COLUMNS) actual.push((await OPERATIONS[operation]!(credentials[column])) ? 'yes' : 'no');
      expect(Object.fromEntries(COLUMNS.map((c, i) => [c, actual[i]]))).toEqual(Object.fromEntries(COLUMNS.map((c, i) => [c, expected[i]])));
    });
  }

  it('is the table in docs/SECURITY.md', () => {
    const doc = readFileSync(new URL('../../docs/SECURITY.md', import.meta.url), 'utf8');
    const table = /<!-- operation-matrix:start -->\n([\s\S]*?)<!-- operation-matrix:end -->/.exec(doc)?.[1];
    const rendered = [
      `| Operation | ${COLUMNS.join(' | ')} |`,
      `| --- |${COLUMNS.map(() => ' --- |').join('')}`,
      ...Object.entries(MATRIX).map(([operation, row]) => `| ${operation} | ${row.split(' ').join(' | ')} |`),
    ].join('\n');
    expect(table?.trim(), `docs/SECURITY.md should hold, between the operation-matrix markers:\n${rendered}`).toBe(rendered);
  });
});
