/**
 * Which partition a bucket name means for a caller, and whether the caller may do what it asks
 * there. A user's buckets are their own (Simperium: alice's `notes` are not bob's `notes`): the
 * partition is the user's private instance. A request acting as no user reaches the app's own
 * instance, which takes an admin credential. Shared buckets and their ACL come next (issue 3).
 */
import { requireCapability, type Access } from '../auth/access.js';
import type { Caller, Partition } from '../engine/partition.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { Capability, Level } from '../model/permissions.js';
import type { ResolverContext } from './context.js';

export async function partitionFor(ctx: ResolverContext, bucket: string, capability: Capability): Promise<Partition> {
  const { access } = ctx;
  requireCapability(access, capability);
  if (access.user === null && access.level !== Level.ADMIN) {
    throw new SyncError(ErrorCode.FORBIDDEN, `a ${access.level} key reaches data only through a user's token (see authorize)`);
  }
  return ctx.engine.partition(access.app, bucket, access.user);
}

/** What a partition needs to know of the caller. */
export function callerOf(access: Access): Caller {
  return { admin: access.level === Level.ADMIN };
}

export { Capability };
