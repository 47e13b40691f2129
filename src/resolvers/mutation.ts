import type { MutationResolvers } from '../generated/graphql.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { Capability, scopeFor } from './scope.js';

export const Mutation: MutationResolvers = {
  submitChanges: async (_, { bucket, clientId, changes }, ctx) => {
    const { partition, caller } = await scopeFor(ctx, bucket, Capability.WRITE);
    const outcomes = await ctx.router.submitChanges(partition, changes, clientId ?? null, caller, ctx.requestId);
    ctx.metrics.countChanges(outcomes);
    return outcomes;
  },
  pushEvents: async (_, { bucket, events, since }, ctx) => {
    const { partition, author, mayPush, mayReadBucket } = await scopeFor(ctx, bucket, Capability.WRITE);
    // A push answers with the bucket's history: pushing takes reading too.
    if (!mayReadBucket) throw new SyncError(ErrorCode.FORBIDDEN, `${ctx.access.user} may not read ${bucket}`);
    const result = await ctx.router.pushEvents(partition, events, since ?? null, author, mayPush, ctx.requestId);
    ctx.metrics.events.inc({ result: 'accepted' }, result.accepted.length);
    ctx.metrics.events.inc({ result: 'rejected' }, result.rejected.length);
    return result;
  },
  configureBucket: async (_, { name, config }, ctx) => {
    const { partition, caller } = await scopeFor(ctx, name, Capability.CONFIGURE_BUCKET);
    const patch = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== null && v !== undefined));
    await ctx.router.configure(partition, patch, caller);
    return { partition };
  },
};
