import type { QueryResolvers } from '../generated/graphql.js';
import { Capability, scopeFor } from './scope.js';

const READ = Capability.READ;
const read = async (ctx: Parameters<typeof scopeFor>[0], bucket: string, key?: string) => (await scopeFor(ctx, bucket, READ, key)).partition;

export const Query: QueryResolvers = {
  entity: async (_, { bucket, key, version }, ctx) => (await read(ctx, bucket, key)).entity(key, version ?? null),
  entities: async (_, { bucket, first, after, includeDeleted }, ctx) =>
    (await read(ctx, bucket)).entities(first ?? null, after ?? null, includeDeleted === true),
  versions: async (_, { bucket, key }, ctx) => (await read(ctx, bucket, key)).versions(key),
  changes: async (_, { bucket, since, limit }, ctx) => (await read(ctx, bucket)).changes(since ?? null, limit ?? null),
  events: async (_, { bucket, since, limit }, ctx) => (await read(ctx, bucket)).events(since ?? null, limit ?? null),
  bucket: async (_, { name }, ctx) => ({ partition: await read(ctx, name) }),
};
