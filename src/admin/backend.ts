/**
 * What the admin CLI does, against either a stopped node's data directory (the directory in its
 * LevelDB, opened directly) or a running node (GraphQL over HTTP with the node's admin key), like
 * Plasmid's `plasmidctl`. Both answer the same plain objects, printed as JSON by the CLI.
 */
import { join } from 'node:path';
import { Directory } from '../auth/directory.js';
import type { AclRule } from '../model/acl.js';
import { Level } from '../model/permissions.js';
import { LevelStore } from '../storage/level-store.js';

export interface RuleInput {
  user: string;
  item: string;
  action: string;
  type: 'allow' | 'deny';
}

export interface AdminBackend {
  createApp(id: string): Promise<{ app: string; adminKey: string; defaultKey: string; readonlyKey: string }>;
  listApps(): Promise<Array<{ id: string; createdAt: string }>>;
  createKey(app: string, level: Level): Promise<{ id: string; level: Level; key: string }>;
  listKeys(app: string): Promise<Array<{ id: string; level: Level; createdAt: string; revokedAt: string | null }>>;
  revokeKey(app: string, id: string): Promise<{ id: string; revokedAt: string | null }>;
  createUser(app: string, username: string, password: string): Promise<{ username: string }>;
  deleteUser(app: string, username: string): Promise<void>;
  resetUser(app: string, username: string): Promise<void>;
  grant(app: string, rule: RuleInput): Promise<AclRule[]>;
  revokeRule(app: string, rule: RuleInput): Promise<AclRule[]>;
  listRules(app: string): Promise<AclRule[]>;
  share(app: string, bucket: string, shared: boolean): Promise<string[]>;
  close(): Promise<void>;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The data directory of a stopped node. */
export async function openDataDir(dataDir: string): Promise<AdminBackend> {
  let store: LevelStore;
  try {
    store = await LevelStore.open(join(dataDir, 'db'));
  } catch (error) {
    const cause = error instanceof Error && 'cause' in error ? String((error as { cause: unknown }).cause) : String(error);
    throw new Error(`cannot open ${dataDir}/db (${cause}): if its node is running, use --url and --admin-key instead`);
  }
  const directory = new Directory(store, { now: () => Date.now() });
  return {
    async createApp(id) {
      const { app, keys } = await directory.createApp(id);
      return { app: app.id, adminKey: keys.admin, defaultKey: keys.default, readonlyKey: keys.readonly };
    },
    async listApps() {
      return (await directory.listApps()).map((app) => ({ id: app.id, createdAt: iso(app.createdAt)! }));
    },
    async createKey(app, level) {
      const { key, info } = await directory.createKey(app, level);
      return { id: info.id, level: info.level, key };
    },
    async listKeys(app) {
      return (await directory.listKeys(app)).map((k) => ({ id: k.id, level: k.level, createdAt: iso(k.createdAt)!, revokedAt: iso(k.revokedAt) }));
    },
    async revokeKey(app, id) {
      const info = await directory.revokeKey(app, id);
      return { id: info.id, revokedAt: iso(info.revokedAt) };
    },
    async createUser(app, username, password) {
      return { username: (await directory.createUser(app, username, password)).username };
    },
    deleteUser: (app, username) => directory.deleteUser(app, username),
    resetUser: (app, username) => directory.resetUser(app, username),
    async grant(app, rule) {
      return [...(await directory.grant(app, rule))];
    },
    async revokeRule(app, rule) {
      return [...(await directory.revokeRule(app, rule))];
    },
    async listRules(app) {
      return [...(await directory.aclRules(app))];
    },
    async share(app, bucket, shared) {
      return [...(await directory.setShared(app, bucket, shared))].sort();
    },
    close: () => store.close(),
  };
}

const LEVEL_OUT: Record<Level, string> = { admin: 'ADMIN', default: 'DEFAULT', readonly: 'READONLY' };
const LEVEL_IN: Record<string, Level> = { ADMIN: Level.ADMIN, DEFAULT: Level.DEFAULT, READONLY: Level.READONLY };
const RULE_FIELDS = 'user item action type';
const ruleIn = (rule: RuleInput) => ({ ...rule, type: rule.type === 'allow' ? 'ALLOW' : 'DENY' });
const rulesOut = (rules: Array<{ user: string; item: string; action: string; type: string }>): AclRule[] =>
  rules.map((r) => ({ user: r.user, item: r.item, action: r.action, type: r.type === 'ALLOW' ? 'allow' : 'deny' }));

/** A running node, through its GraphQL API and admin key. */
export function connect(url: string, adminKey: string): AdminBackend {
  const graphqlUrl = url.replace(/\/+$/, '').replace(/(\/graphql)?$/, '/graphql');
  async function call<T>(app: string | null, query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` };
    if (app !== null) headers['x-syncgraph-app'] = app;
    const response = await fetch(graphqlUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
    const body = (await response.json()) as { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    if (body.errors?.length) {
      const [first] = body.errors;
      throw new Error(`${first!.extensions?.code ?? 'ERROR'}: ${first!.message}`);
    }
    return body.data as T;
  }
  return {
    async createApp(id) {
      const { createApp } = await call<{ createApp: { app: { id: string }; adminKey: string; defaultKey: string; readonlyKey: string } }>(
        null,
        'mutation($id: ID!) { createApp(id: $id) { app { id } adminKey defaultKey readonlyKey } }',
        { id },
      );
      return { app: createApp.app.id, adminKey: createApp.adminKey, defaultKey: createApp.defaultKey, readonlyKey: createApp.readonlyKey };
    },
    async listApps() {
      return (await call<{ apps: Array<{ id: string; createdAt: string }> }>(null, '{ apps { id createdAt } }')).apps;
    },
    async createKey(app, level) {
      const { createApiKey } = await call<{ createApiKey: { key: string; info: { id: string; level: string } } }>(
        app,
        'mutation($level: KeyLevel!) { createApiKey(level: $level) { key info { id level } } }',
        { level: LEVEL_OUT[level] },
      );
      return { id: createApiKey.info.id, level: LEVEL_IN[createApiKey.info.level]!, key: createApiKey.key };
    },
    async listKeys(app) {
      const { apiKeys } = await call<{ apiKeys: Array<{ id: string; level: string; createdAt: string; revokedAt: string | null }> }>(
        app,
        '{ apiKeys { id level createdAt revokedAt } }',
      );
      return apiKeys.map((k) => ({ ...k, level: LEVEL_IN[k.level]! }));
    },
    async revokeKey(app, id) {
      return (await call<{ revokeApiKey: { id: string; revokedAt: string | null } }>(app, 'mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }', { id }))
        .revokeApiKey;
    },
    async createUser(app, username, password) {
      const { createUser } = await call<{ createUser: { username: string } }>(
        app,
        'mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { username } }',
        { u: username, p: password },
      );
      return createUser;
    },
    async deleteUser(app, username) {
      await call(app, 'mutation($u: String!) { deleteUser(username: $u) }', { u: username });
    },
    async resetUser(app, username) {
      await call(app, 'mutation($u: String!) { resetUser(username: $u) }', { u: username });
    },
    async grant(app, rule) {
      const { grantAcl } = await call<{ grantAcl: Array<{ user: string; item: string; action: string; type: string }> }>(
        app,
        `mutation($r: AclRuleInput!) { grantAcl(rule: $r) { ${RULE_FIELDS} } }`,
        { r: ruleIn(rule) },
      );
      return rulesOut(grantAcl);
    },
    async revokeRule(app, rule) {
      const { revokeAcl } = await call<{ revokeAcl: Array<{ user: string; item: string; action: string; type: string }> }>(
        app,
        `mutation($r: AclRuleInput!) { revokeAcl(rule: $r) { ${RULE_FIELDS} } }`,
        { r: ruleIn(rule) },
      );
      return rulesOut(revokeAcl);
    },
    async listRules(app) {
      return rulesOut((await call<{ aclRules: Array<{ user: string; item: string; action: string; type: string }> }>(app, `{ aclRules { ${RULE_FIELDS} } }`)).aclRules);
    },
    async share(app, bucket, shared) {
      return (await call<{ shareBucket: string[] }>(app, 'mutation($b: String!, $s: Boolean!) { shareBucket(name: $b, shared: $s) }', { b: bucket, s: shared }))
        .shareBucket;
    },
    close: async () => undefined,
  };
}
