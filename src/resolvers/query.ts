import type { QueryResolvers } from '../generated/graphql.js';
import { Capability, partitionFor } from './scope.js';

const READ = Capability.READ;

export const Query: QueryResolvers = {
  entity: async (_, { bucket, key, version }, ctx) => (await partitionFor(ctx, bucket, READ)).entity(key, version ?? null),
  entities: async (_, { bucket, first, after, includeDeleted }, ctx) =>
    (await partitionFor(ctx, bucket, READ)).entities(first ?? null, after ?? null, includeDeleted === true),
  versions: async (_, { bucket, key }, ctx) => (await partitionFor(ctx, bucket, READ)).versions(key),
  changes: async (_, { bucket, since, limit }, ctx) => (await partitionFor(ctx, bucket, READ)).changes(since ?? null, limit ?? null),
  events: async (_, { bucket, since, limit }, ctx) => (await partitionFor(ctx, bucket, READ)).events(since ?? null, limit ?? null),
  bucket: async (_, { name }, ctx) => ({ partition: await partitionFor(ctx, name, READ) }),
};
