/**
 * Black-box: the admin CLI (`syncgraph app|key|user|acl|bucket ...`), on a stopped node's data
 * directory and against a running node, checked through the node's GraphQL API.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { gql } from '../support/client.js';
import { cleanupNodes, startNodeProcess, tempDataDir } from '../support/node-process.js';
import { Authorize, Viewer } from '../support/operations.js';

const BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));

afterAll(cleanupNodes);

function cli(args: string[], input?: string): { status: number | null; json: unknown; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8', env: { ...process.env, SYNCGRAPH_ADMIN_KEY: '' } });
  let json: unknown;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    json = undefined;
  }
  return { status: result.status, json, stderr: result.stderr };
}

describe('on a stopped node', () => {
  it('creates apps, users, rules and shared buckets that the node then serves', async () => {
    const data = tempDataDir();
    const created = cli(['app', 'create', 'Notes', '--data', data]);
    expect(created.status).toBe(0);
    const keys = created.json as { app: string; adminKey: string; defaultKey: string; readonlyKey: string };
    expect(keys.app).toBe('notes');
    expect(cli(['user', 'create', 'notes', 'alice', '--password-stdin', '--data', data], 'alice password\n').status).toBe(0);
    expect((cli(['acl', 'grant', 'notes', '*', 'board*', 'read', '--data', data]).json as unknown[]).length).toBe(1);
    expect(cli(['bucket', 'share', 'notes', 'board', '--data', data]).json).toEqual(['board']);
    const listed = cli(['key', 'list', 'notes', '--data', data]).json as Array<{ level: string }>;
    expect(listed.map((k) => k.level).sort()).toEqual(['admin', 'default', 'readonly']);
    expect(JSON.stringify(listed)).not.toContain('sgk_');

    const node = await startNodeProcess({ dataDir: data });
    const viewer = await gql(node, Viewer, {}, { token: keys.adminKey });
    expect(viewer.data?.viewer).toMatchObject({ app: 'notes', level: 'ADMIN' });
    const signIn = await gql(node, Authorize, { username: 'alice', password: 'alice password' }, { token: keys.defaultKey });
    expect(signIn.data?.authorize.username).toBe('alice');

    // While it runs, the data directory is the node's: the CLI says to use --url.
    const locked = cli(['app', 'list', '--data', data]);
    expect(locked.status).toBe(1);
    expect(locked.stderr).toContain('--url');
  });

  it('fails clearly, exit code 1, on bad input', () => {
    const data = tempDataDir();
    expect(cli(['app', 'create', 'no/slash', '--data', data])).toMatchObject({ status: 1 });
    const missing = cli(['key', 'create', 'ghost', '--data', data]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('ghost');
    expect(cli(['user', 'create', 'ghost', 'bob', '--data', data]).stderr).toContain('password');
  });
});

describe('on a running node', () => {
  it('manages apps, keys, users and rules with the admin key', async () => {
    const node = await startNodeProcess();
    const target = ['--url', node.url, '--admin-key', node.adminKey];
    const created = cli(['app', 'create', 'live', ...target]).json as { adminKey: string; defaultKey: string };
    expect(created.adminKey).toMatch(/^sgk_/);
    const key = cli(['key', 'create', 'live', '--level', 'readonly', ...target]).json as { id: string; key: string; level: string };
    expect(key.level).toBe('readonly');
    expect((await gql(node, Viewer, {}, { token: key.key })).data?.viewer.level).toBe('READONLY');
    expect(cli(['key', 'revoke', 'live', key.id, ...target]).status).toBe(0);
    expect((await gql(node, Viewer, {}, { token: key.key })).status).toBe(401);

    expect(cli(['user', 'create', 'live', 'bob', '--password-stdin', ...target], 'bob password').status).toBe(0);
    const token = (await gql(node, Authorize, { username: 'bob', password: 'bob password' }, { token: created.defaultKey })).data!.authorize.token;
    expect(cli(['user', 'reset', 'live', 'bob', ...target]).status).toBe(0);
    expect((await gql(node, Viewer, {}, { token })).status).toBe(401);

    cli(['acl', 'grant', 'live', 'bob', 'notes*', 'write', ...target]);
    cli(['acl', 'grant', 'live', 'bob', 'notes/secret', 'write', '--deny', ...target]);
    expect(cli(['acl', 'list', 'live', ...target]).json).toEqual([
      { user: 'bob', item: 'notes*', action: 'write', type: 'allow' },
      { user: 'bob', item: 'notes/secret', action: 'write', type: 'deny' },
    ]);
    expect(cli(['acl', 'revoke', 'live', 'bob', 'notes*', 'write', ...target]).json).toEqual([
      { user: 'bob', item: 'notes/secret', action: 'write', type: 'deny' },
    ]);
    expect(cli(['user', 'delete', 'live', 'bob', ...target]).status).toBe(0);
    expect(cli(['user', 'delete', 'live', 'bob', ...target]).status).toBe(1);

    const wrong = cli(['app', 'list', '--url', node.url, '--admin-key', 'not-the-key']);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('UNAUTHENTICATED');
  });
});
