/**
 * Which partition a bucket name means for a caller, and what the caller may do there.
 *
 * A user's buckets are their own (Simperium: alice's `notes` are not bob's `notes`): the
 * partition is the user's private instance, where the user may do whatever their level allows.
 * A bucket the app declared shared has one instance for all its users, and there the ACL decides
 * (model/acl.ts, rules kept by auth/directory.ts): reading needs `read` on the bucket's item
 * (`notes`; `notes/k1` for one entity), changing an entity `write` on `notes/k1`, EMPTY `admin` on
 * `notes`, and each pushed event its own item and action. A request acting as no user reaches the
 * app's own instance, which takes an admin credential. Admin credentials pass every ACL.
 */
import { requireCapability } from '../auth/access.js';
import type { Caller, Partition } from '../engine/partition.js';
import type { EventInput } from '../model/event.js';
import { decide } from '../model/acl.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { validateKeyPrefix } from '../model/names.js';
import { Capability, Level } from '../model/permissions.js';
import type { ResolverContext } from './context.js';

export interface Scope {
  partition: Partition;
  caller: Caller;
  /** The user every pushed event must name (Simple Sync), or null (admin). */
  author: string | null;
  /** The ACL's word on a pushed event, in a shared bucket. */
  mayPush?: (event: EventInput) => boolean;
  /** Whether the caller may read the whole bucket (a push answers with the bucket's history). */
  mayReadBucket: boolean;
  /** Entities the ACL hides from the caller, in a shared bucket (absent: none). */
  mayRead?: (key: string) => boolean;
}

/**
 * The caller's view of `bucket` for `capability`; with `key`, a read of that one entity (its own
 * item in the ACL).
 */
export async function scopeFor(ctx: ResolverContext, bucket: string, capability: Capability, key?: string): Promise<Scope> {
  const { access, directory, engine } = ctx;
  requireCapability(access, capability);
  if (access.user === null && access.level !== Level.ADMIN) {
    throw new SyncError(ErrorCode.FORBIDDEN, `a ${access.level} key reaches data only through a user's token (see authorize)`);
  }
  const admin = access.level === Level.ADMIN;
  const shared = (await directory.sharedBuckets(access.app)).has(bucket);
  const partition = await engine.partition(access.app, bucket, shared ? null : access.user);
  // In a cluster, this node's copy is made current first (a replica that just restarted, or a
  // copy held here for readers).
  if (capability === Capability.READ) await ctx.router.beforeRead(partition);
  const user = access.user;
  if (!shared || admin || user === null) return { partition, caller: { admin }, author: admin ? null : user, mayReadBucket: true };
  await directory.aclRules(access.app);
  // The rules in force at each question, not at subscription time: a live stream follows them.
  const allowed = (item: string, action: string) => decide(directory.currentRules(access.app), { user, item, action }).allowed;
  if (capability === Capability.READ) {
    const item = key === undefined ? bucket : `${bucket}/${key}`;
    if (!allowed(item, 'read')) throw new SyncError(ErrorCode.FORBIDDEN, `${user} may not read ${item}`);
  }
  return {
    partition,
    caller: { admin, mayChange: (changed) => (changed === null ? allowed(bucket, 'admin') : allowed(`${bucket}/${changed}`, 'write')) },
    author: user,
    mayPush: (event) => allowed(event.item, event.action),
    mayReadBucket: allowed(bucket, 'read'),
    // A live stream asks for every record: losing `read` on the bucket stops it at once too.
    mayRead: (key) => allowed(bucket, 'read') && allowed(`${bucket}/${key}`, 'read'),
  };
}

/**
 * Which keys' changes a reader gets: those under its `keyPrefix` (selective sync) that the ACL
 * lets it read. EMPTY and DROP (no key) clear every key: every reader gets them. Undefined when
 * nothing is left out.
 */
export function keyFilter(keyPrefix: string | null | undefined, mayRead: Scope['mayRead']): ((key: string | null) => boolean) | undefined {
  const prefix = keyPrefix ?? '';
  if (prefix !== '') validateKeyPrefix(prefix);
  if (prefix === '' && mayRead === undefined) return undefined;
  return (key) => key === null || (key.startsWith(prefix) && (mayRead === undefined || mayRead(key)));
}

export { Capability };
