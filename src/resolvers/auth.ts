/**
 * Apps, API keys, users and access tokens (auth/directory.ts), each guarded by the capability
 * docs/SECURITY.md gives it. Everything happens in the caller's app: no argument names another.
 */
import { requireCapability, type Access } from '../auth/access.js';
import type { KeyInfo } from '../auth/directory.js';
import type { AclRule as AclRuleOut, AclType, ApiKey, KeyLevel, MutationResolvers, QueryResolvers } from '../generated/graphql.js';
import type { ChangeView } from '../engine/records.js';
import type { AclRule } from '../model/acl.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { normaliseUsername, validateBucketName } from '../model/names.js';
import { Capability, Level } from '../model/permissions.js';

const toLevel: Record<KeyLevel, Level> = { ADMIN: Level.ADMIN, DEFAULT: Level.DEFAULT, READONLY: Level.READONLY };
const fromLevel: Record<Level, KeyLevel> = { admin: 'ADMIN', default: 'DEFAULT', readonly: 'READONLY' };
const iso = (ms: number) => new Date(ms).toISOString();

function apiKey(info: KeyInfo): ApiKey {
  return { id: info.id, level: fromLevel[info.level], createdAt: iso(info.createdAt), revokedAt: info.revokedAt === null ? null : iso(info.revokedAt) };
}

const aclOut = (rule: AclRule): AclRuleOut => ({ user: rule.user, item: rule.item, action: rule.action, type: rule.type === 'allow' ? 'ALLOW' : 'DENY' });
const aclIn = (rule: { user: string; item: string; action: string; type: AclType }) => ({ ...rule, type: rule.type === 'ALLOW' ? 'allow' : 'deny' });

function requireOperator(access: Access): void {
  if (!access.operator) throw new SyncError(ErrorCode.FORBIDDEN, "only the node's admin key manages apps");
}

/** Whether the caller is `username` itself (a token, or a key acting as the user). */
function isSelf(access: Access, username: string): boolean {
  return access.user !== null && access.user === normaliseUsername(username);
}

const CROSS_PREFIX = 'x1.';

/** The cursor of a cross-user page: each instance's own cursor, by owner ('' for the app's). */
function decodeCross(since: string | null | undefined): Record<string, string> {
  if (since === null || since === undefined) return {};
  try {
    if (!since.startsWith(CROSS_PREFIX)) throw new Error('prefix');
    const positions = JSON.parse(Buffer.from(since.slice(CROSS_PREFIX.length), 'base64url').toString('utf8')) as unknown;
    if (typeof positions !== 'object' || positions === null || Array.isArray(positions)) throw new Error('shape');
    if (!Object.values(positions).every((v) => typeof v === 'string')) throw new Error('values');
    return positions as Record<string, string>;
  } catch {
    throw new SyncError(ErrorCode.INVALID_CURSOR, 'not a cursor of changesAcrossUsers');
  }
}

function encodeCross(positions: Record<string, string>): string {
  return CROSS_PREFIX + Buffer.from(JSON.stringify(positions)).toString('base64url');
}

export const AuthQuery: Pick<QueryResolvers, 'viewer' | 'apps' | 'apiKeys' | 'user' | 'aclRules' | 'sharedBuckets' | 'buckets' | 'changesAcrossUsers'> = {
  changesAcrossUsers: async (_, { bucket, since, limit }, { access, engine, limits, router }) => {
    requireCapability(access, Capability.LIST_CHANGES_ACROSS_USERS);
    const positions = decodeCross(since);
    if (limit !== null && limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > limits.pageSizeMax)) {
      throw new SyncError(ErrorCode.INVALID_INPUT, `limit must be 1 to ${limits.pageSizeMax}`);
    }
    const max = limit ?? limits.pageSizeDefault;
    const changes: Array<{ user: string | null; change: ChangeView }> = [];
    let hasMore = false;
    validateBucketName(bucket);
    // Every member's instances, in a cluster (a node holds copies of only some), each read as any read is.
    const owners = (await router.instances(access.app)).filter((i) => i.bucket === bucket).map((i) => i.owner);
    for (const owner of owners) {
      const key = owner ?? '';
      const partition = await engine.partition(access.app, bucket, owner);
      await router.beforeRead(partition);
      const room = max - changes.length;
      if (room === 0) {
        // Out of room: is anything left here?
        if ((await partition.changes(positions[key] ?? null, 1)).changes.length > 0) hasMore = true;
        continue;
      }
      const page = await partition.changes(positions[key] ?? null, room);
      for (const change of page.changes) changes.push({ user: owner, change });
      positions[key] = page.cursor;
      if (page.hasMore) hasMore = true;
    }
    return { changes, cursor: encodeCross(positions), hasMore };
  },
  buckets: async (_, { user }, { access, router }) => {
    requireCapability(access, Capability.LIST_BUCKETS);
    return [...new Set((await router.instances(access.app, user ?? undefined)).map((i) => i.bucket))].sort();
  },
  aclRules: async (_, __, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    return (await directory.aclRules(access.app)).map(aclOut);
  },
  sharedBuckets: async (_, __, { access, directory }) => [...(await directory.sharedBuckets(access.app))].sort(),
  viewer: (_, __, { access }) => ({ app: access.app, level: fromLevel[access.level], user: access.user, operator: access.operator }),
  apps: async (_, __, { access, directory }) => {
    requireOperator(access);
    return (await directory.listApps()).map((app) => ({ id: app.id, createdAt: iso(app.createdAt) }));
  },
  apiKeys: async (_, __, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    return (await directory.listKeys(access.app)).map(apiKey);
  },
  user: async (_, { username }, { access, directory }) => {
    if (!isSelf(access, username)) requireCapability(access, Capability.MANAGE_APP);
    const user = await directory.user(access.app, username);
    return user === undefined ? null : { username: user.username, createdAt: iso(user.createdAt) };
  },
};

export const AuthMutation: Pick<
  MutationResolvers,
  'createApp' | 'createApiKey' | 'revokeApiKey' | 'createUser' | 'authorize' | 'changePassword' | 'resetUser' | 'deleteUser' | 'grantAcl' | 'revokeAcl' | 'shareBucket'
> = {
  grantAcl: async (_, { rule }, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    return (await directory.grant(access.app, aclIn(rule))).map(aclOut);
  },
  revokeAcl: async (_, { rule }, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    return (await directory.revokeRule(access.app, aclIn(rule))).map(aclOut);
  },
  shareBucket: async (_, { name, shared }, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    return [...(await directory.setShared(access.app, name, shared))].sort();
  },
  createApp: async (_, { id }, { access, directory }) => {
    requireOperator(access);
    const { app, keys } = await directory.createApp(id);
    return { app: { id: app.id, createdAt: iso(app.createdAt) }, adminKey: keys.admin, defaultKey: keys.default, readonlyKey: keys.readonly };
  },
  createApiKey: async (_, { level }, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    const { key, info } = await directory.createKey(access.app, toLevel[level]);
    return { key, info: apiKey(info) };
  },
  revokeApiKey: async (_, { id }, { access, directory }) => {
    requireCapability(access, Capability.MANAGE_APP);
    return apiKey(await directory.revokeKey(access.app, id));
  },
  createUser: async (_, { username, password }, { access, directory }) => {
    requireCapability(access, Capability.CREATE_USER);
    const user = await directory.createUser(access.app, username, password);
    return { username: user.username, createdAt: iso(user.createdAt) };
  },
  authorize: async (_, { username, password, ttlSeconds }, { access, directory, source }) => {
    requireCapability(access, Capability.AUTHORIZE);
    const ttlMs = ttlSeconds === null || ttlSeconds === undefined ? undefined : ttlSeconds * 1000;
    const { token, record } = await directory.authorize(access.app, username, password, access.level, source, ttlMs);
    return { token, id: record.id, username: record.user, level: fromLevel[record.level], expiresAt: iso(record.expiresAt) };
  },
  changePassword: async (_, { username, password }, { access, directory }) => {
    if (!isSelf(access, username)) requireCapability(access, Capability.MANAGE_APP);
    else requireCapability(access, Capability.CHANGE_PASSWORD);
    await directory.changePassword(access.app, username, password, access.tokenId ?? undefined);
    return true;
  },
  resetUser: async (_, { username }, { access, directory }) => {
    requireCapability(access, Capability.RESET_USER);
    await directory.resetUser(access.app, username);
    return true;
  },
  deleteUser: async (_, { username }, { access, directory, router }) => {
    requireCapability(access, Capability.DELETE_USER);
    // Tokens first (nothing more gets written), then every copy of each private bucket (on every
    // member, in a cluster), then the account: interrupted anywhere, deleting again finishes the job.
    await directory.resetUser(access.app, username);
    await router.purgeOwner(access.app, username);
    await directory.deleteUser(access.app, username);
    return true;
  },
};
