import type { MutationResolvers } from '../generated/graphql.js';
import { callerOf, Capability, partitionFor } from './scope.js';

export const Mutation: MutationResolvers = {
  submitChanges: async (_, { bucket, clientId, changes }, ctx) =>
    (await partitionFor(ctx, bucket, Capability.WRITE)).submitChanges(changes, clientId ?? null, callerOf(ctx.access)),
  pushEvents: async (_, { bucket, events, since }, ctx) => {
    const partition = await partitionFor(ctx, bucket, Capability.WRITE);
    // Simple Sync: an event's user is the authenticated user, unless the caller is admin.
    const author = callerOf(ctx.access).admin ? null : ctx.access.user;
    return partition.pushEvents(events, since ?? null, author);
  },
  configureBucket: async (_, { name, config }, ctx) => {
    const partition = await partitionFor(ctx, name, Capability.CONFIGURE_BUCKET);
    const patch = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== null && v !== undefined));
    await partition.configure(patch, callerOf(ctx.access));
    return { partition };
  },
};
