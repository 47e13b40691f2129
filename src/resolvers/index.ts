import type { Resolvers } from '../generated/graphql.js';
import { AuthMutation, AuthQuery } from './auth.js';
import { Bucket } from './bucket.js';
import { ClusterMutation, ClusterQuery } from './cluster.js';
import { Mutation } from './mutation.js';
import { Query } from './query.js';
import { CursorScalar, JSONScalar } from './scalars.js';
import { Subscription } from './subscription.js';

export const resolvers: Resolvers = {
  JSON: JSONScalar,
  Cursor: CursorScalar,
  Query: { ...Query, ...AuthQuery, ...ClusterQuery },
  Mutation: { ...Mutation, ...AuthMutation, ...ClusterMutation },
  Subscription,
  Bucket,
};
