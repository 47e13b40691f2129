/**
 * The cluster's admin operations: what this node knows of the ring and its members, the state of
 * a bucket's replicas, and joining or removing nodes. A node running alone answers as a cluster
 * of one.
 */
import type { ClusterInfo, MutationResolvers, QueryResolvers, ReplicaStatus } from '../generated/graphql.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { normaliseUsername } from '../model/names.js';
import type { ResolverContext } from './context.js';

const VNODES = 64;

function requireOperator(ctx: ResolverContext): void {
  if (!ctx.access.operator) throw new SyncError(ErrorCode.FORBIDDEN, "only the node's admin key manages the cluster");
}

function info(ctx: ResolverContext): ClusterInfo {
  const { cluster } = ctx;
  if (cluster === null) return { nodeId: null, nodes: [], replicas: 1, writeQuorum: 1, vnodes: VNODES, handoff: { pending: 0, moved: 0 } };
  return {
    nodeId: cluster.nodeId,
    nodes: cluster.nodes().map((node) => ({ ...node, status: node.status === 'active' ? 'ACTIVE' : 'LEFT' })),
    replicas: cluster.replicaCount,
    writeQuorum: cluster.writeQuorum,
    vnodes: VNODES,
    handoff: cluster.handoffProgress(),
  };
}

export const ClusterQuery: Pick<QueryResolvers, 'cluster' | 'replicaStatus'> = {
  cluster: (_, __, ctx) => {
    requireOperator(ctx);
    return info(ctx);
  },
  replicaStatus: async (_, { bucket, user }, ctx) => {
    if (!ctx.access.operator && ctx.access.level !== 'admin') throw new SyncError(ErrorCode.FORBIDDEN, 'replica status needs an admin credential');
    const owner = user === null || user === undefined ? null : normaliseUsername(user, 'user');
    const partition = await ctx.engine.partition(ctx.access.app, bucket, owner);
    if (ctx.cluster === null) {
      const { digest, entities } = await partition.digest();
      const single: ReplicaStatus = {
        nodeId: ctx.engine.nodeId,
        up: true,
        changes: partition.vectorOf('changes'),
        events: partition.vectorOf('events'),
        digest,
        entities,
        lag: 0,
      };
      return [single];
    }
    return ctx.cluster.replicaStatus(partition);
  },
};

export const ClusterMutation: Pick<MutationResolvers, 'clusterJoin' | 'clusterLeave'> = {
  clusterJoin: (_, { address }, ctx) => {
    requireOperator(ctx);
    if (ctx.cluster === null) throw new SyncError(ErrorCode.BAD_REQUEST, 'this node runs alone: start it with --node-id, --peers and --cluster-key');
    if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$/.test(address)) throw new SyncError(ErrorCode.BAD_USER_INPUT, 'address must be host:port');
    ctx.cluster.join(address);
    return info(ctx);
  },
  clusterLeave: (_, { nodeId }, ctx) => {
    requireOperator(ctx);
    if (ctx.cluster === null) throw new SyncError(ErrorCode.BAD_REQUEST, 'this node runs alone');
    if (ctx.cluster.membership.info(nodeId) === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `no member ${nodeId}`);
    ctx.cluster.setMemberStatus(nodeId, 'left');
    return info(ctx);
  },
};
