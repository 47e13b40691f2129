import type { QueryResolvers } from '../generated/graphql.js';

export const Query: QueryResolvers = {
  entity: async (_, { bucket, key, version }, { engine, app }) =>
    (await engine.partition(app, bucket)).entity(key, version ?? null),
  entities: async (_, { bucket, first, after, includeDeleted }, { engine, app }) =>
    (await engine.partition(app, bucket)).entities(first ?? null, after ?? null, includeDeleted === true),
  versions: async (_, { bucket, key }, { engine, app }) => (await engine.partition(app, bucket)).versions(key),
  changes: async (_, { bucket, since, limit }, { engine, app }) =>
    (await engine.partition(app, bucket)).changes(since ?? null, limit ?? null),
  events: async (_, { bucket, since, limit }, { engine, app }) =>
    (await engine.partition(app, bucket)).events(since ?? null, limit ?? null),
  bucket: async (_, { name }, { engine, app }) => ({ partition: await engine.partition(app, name) }),
};
