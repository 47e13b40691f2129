import type { QueryResolvers } from '../generated/graphql.js';
import { Capability, keyFilter, scopeFor } from './scope.js';

const READ = Capability.READ;
type Ctx = Parameters<typeof scopeFor>[0];
const read = async (ctx: Ctx, bucket: string, key?: string) => scopeFor(ctx, bucket, READ, key);

export const Query: QueryResolvers = {
  entity: async (_, { bucket, key, version }, ctx) => (await read(ctx, bucket, key)).partition.entity(key, version ?? null),
  // Entities the ACL hides are left out: a page may then hold fewer than asked (`after` the last
  // key of the page still continues it).
  entities: async (_, { bucket, first, after, includeDeleted, keyPrefix }, ctx) => {
    const { partition, mayRead } = await read(ctx, bucket);
    const entities = await partition.entities(first ?? null, after ?? null, includeDeleted === true, keyPrefix ?? '');
    return mayRead === undefined ? entities : entities.filter((entity) => mayRead(entity.key));
  },
  versions: async (_, { bucket, key }, ctx) => (await read(ctx, bucket, key)).partition.versions(key),
  changes: async (_, { bucket, since, limit, keyPrefix }, ctx) => {
    const { partition, mayRead } = await read(ctx, bucket);
    const keep = keyFilter(keyPrefix, mayRead);
    return partition.changes(since ?? null, limit ?? null, keep && ((change) => keep(change.key)));
  },
  events: async (_, { bucket, since, limit }, ctx) => (await read(ctx, bucket)).partition.events(since ?? null, limit ?? null),
  bucket: async (_, { name }, ctx) => ({ partition: (await read(ctx, name)).partition }),
};
