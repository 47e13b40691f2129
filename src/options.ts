/**
 * Options of a syncgraph node, typed once, each with its default, applied in one place
 * (`resolveNodeOptions`). The CLI and tests build a `NodeOptions`; everything below reads the
 * resolved form.
 */
import { defaultRetention, type RetentionPolicy } from './model/retention.js';
import { defaultEventLimits, type EventLimits } from './model/event.js';

export interface Limits extends EventLimits {
  /** Largest HTTP request body or WebSocket message, in bytes. @default 10 MiB */
  requestBytesMax: number;
  /** Most changes in one submitChanges. @default 1000 */
  changesPerRequestMax: number;
  /** Most events in one pushEvents. @default 1000 */
  eventsPerRequestMax: number;
  /** Largest entity (its JSON encoding), and largest diff, in bytes. @default 1 MiB */
  entityBytesMax: number;
  /** Deepest nesting of entity data or of a diff. @default 32 */
  depthMax: number;
  /** Default page size of changes, events and entities. @default 100 */
  pageSizeDefault: number;
  /** Largest page a client may ask for. @default 1000 */
  pageSizeMax: number;
  /** Records a live subscriber may fall behind before it is ended with SLOW_CONSUMER. @default 10_000 */
  subscriberQueueMax: number;
  /** Live subscriptions per node. @default 100_000 */
  subscriptionsMax: number;
  /** Deepest selection of an operation (introspection aside). @default 12 */
  queryDepthMax: number;
  /** Most aliases in an operation. @default 30 */
  queryAliasesMax: number;
  /** Highest cost of an operation (graphql-armor's: objects 2, scalars 1, times depth). @default 5000 */
  queryCostMax: number;
  /** Most tokens in an operation's text (variables are not counted: send data as variables). @default 20_000 */
  queryTokensMax: number;
  /** Requests (HTTP requests, graphql-ws operations) per second of one token or non-admin key. @default 200 */
  requestsPerSecondMax: number;
  /** Live subscriptions of one token or non-admin key. @default 100 */
  subscriptionsPerCredentialMax: number;
  /** Open connections (HTTP and WebSocket) from one address. @default 10_000 */
  connectionsPerAddressMax: number;
  /** Lifetime of an access token, in seconds. @default 2_592_000 (30 days) */
  tokenTtlSeconds: number;
}

export const defaultLimits: Limits = {
  ...defaultEventLimits,
  requestBytesMax: 10 * 1024 * 1024,
  changesPerRequestMax: 1000,
  eventsPerRequestMax: 1000,
  entityBytesMax: 1024 * 1024,
  depthMax: 32,
  pageSizeDefault: 100,
  pageSizeMax: 1000,
  subscriberQueueMax: 10_000,
  subscriptionsMax: 100_000,
  queryDepthMax: 12,
  queryAliasesMax: 30,
  queryCostMax: 5000,
  queryTokensMax: 20_000,
  requestsPerSecondMax: 200,
  subscriptionsPerCredentialMax: 100,
  connectionsPerAddressMax: 10_000,
  tokenTtlSeconds: 30 * 86_400,
};

/** A node's place in a peer cluster (issue 4). Without it, the node runs alone. */
export interface ClusterConfig {
  /** This node's id in the ring: the same on every restart (`--node-id`). */
  nodeId: string;
  /** host:port of peers to connect to; may include this node's own address. */
  peers: string[];
  /** Secret shared by the cluster's nodes: node-to-node links prove they know it. */
  clusterKey: string;
  /** Replicas per partition (N). @default 3 (at most the cluster's size) */
  replicas?: number;
  /** Copies durable before a write is acknowledged (W). @default a majority of N */
  writeQuorum?: number;
  /** host:port peers reach this node at. @default host:port (the bound port) */
  advertise?: string;
  heartbeatMs?: number;
  suspectAfterMs?: number;
  antiEntropyMs?: number;
  requestTimeoutMs?: number;
  writeTimeoutMs?: number;
}

export interface NodeOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port to listen on; 0 picks a free one. @default 4000 */
  port?: number;
  /** Data directory (LevelDB lives in `{dataDir}/db`). @default './data' */
  dataDir?: string;
  /** The admin key. @default read from `{dataDir}/admin-key`, generated on first start */
  adminKey?: string;
  /** Overrides of individual limits. */
  limits?: Partial<Limits>;
  /** Default version retention of buckets. */
  retention?: Partial<RetentionPolicy>;
  /** Read cache budget in bytes. @default 64 MiB */
  cacheBytesMax?: number;
  /** Log level of pino. @default 'info' */
  logLevel?: string;
  /**
   * Point reads on LevelDB's thread pool instead of the event loop (see storage/level-store.ts):
   * for data sets much larger than memory on slow disks. @default false
   */
  asyncReads?: boolean;
  /** PEM files of a certificate and its key: the port then serves https and wss only. */
  tls?: { certFile: string; keyFile: string };
  /** Origins whose browser pages may call the node (CORS). @default none: same origin only */
  corsOrigins?: string[];
  /** Schema introspection; switch off in production if the schema is not public. @default true */
  introspection?: boolean;
  /** GraphiQL on GET /graphql in a browser. @default true */
  graphiql?: boolean;
  /** Run as a member of a peer cluster. */
  cluster?: ClusterConfig;
  /**
   * How long history is kept (engine/partition-history.ts collectHistory): superseded change records and
   * tombstones older than `horizonSeconds` are collected, a ccid is remembered at least
   * `ccidWindowSeconds`; a round runs every `intervalSeconds`. In a cluster only records stable
   * across the replicas are collected (README "Retention and history collection"), and every node
   * must use the same `ccidWindowSeconds`.
   * @default 30 days, 30 days, every 60 s
   */
  history?: Partial<HistoryOptions>;
  /**
   * A bearer token that may read GET /metrics and nothing else (give it to Prometheus instead of
   * the admin key). @default none: only the admin key reads metrics
   */
  metricsToken?: string;
}

export interface HistoryOptions {
  horizonSeconds: number;
  ccidWindowSeconds: number;
  intervalSeconds: number;
}

export const defaultHistory: HistoryOptions = { horizonSeconds: 30 * 86_400, ccidWindowSeconds: 30 * 86_400, intervalSeconds: 60 };

export interface ResolvedNodeOptions {
  host: string;
  port: number;
  dataDir: string;
  adminKey: string | undefined;
  limits: Limits;
  retention: RetentionPolicy;
  cacheBytesMax: number;
  logLevel: string;
  asyncReads: boolean;
  tls: { certFile: string; keyFile: string } | undefined;
  corsOrigins: string[];
  introspection: boolean;
  graphiql: boolean;
  cluster: ClusterConfig | undefined;
  metricsToken: string | undefined;
  history: HistoryOptions;
}

/** A node id in a cluster, and a host:port: shared with config.ts's schema. */
export const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
export const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$/;

/** Checks a cluster configuration; throws an Error naming the first problem. */
export function checkClusterConfig(config: ClusterConfig): void {
  if (!NODE_ID.test(config.nodeId)) throw new Error('node id must be 1 to 64 of A-Z a-z 0-9 . _ -');
  if (config.clusterKey.length < 16) throw new Error('the cluster key must have at least 16 characters');
  for (const peer of config.peers) if (!ADDRESS.test(peer)) throw new Error(`peer ${peer} is not host:port`);
  if (config.advertise !== undefined && !ADDRESS.test(config.advertise)) throw new Error(`advertised address ${config.advertise} is not host:port`);
  const positive = (value: number | undefined, name: string) => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new Error(`${name} must be a positive integer`);
  };
  positive(config.replicas, 'replicas');
  positive(config.writeQuorum, 'write quorum');
  if (config.writeQuorum !== undefined && config.writeQuorum > (config.replicas ?? 3)) throw new Error('the write quorum cannot exceed the replicas');
}

export function resolveNodeOptions(options: NodeOptions): ResolvedNodeOptions {
  const {
    host = '127.0.0.1',
    port = 4000,
    dataDir = './data',
    adminKey,
    limits = {},
    retention = {},
    cacheBytesMax = 64 * 1024 * 1024,
    logLevel = 'info',
    asyncReads = false,
    tls,
    corsOrigins = [],
    introspection = true,
    graphiql = true,
    cluster,
    metricsToken,
    history = {},
  } = options;
  if (cluster !== undefined) checkClusterConfig(cluster);
  if (metricsToken !== undefined && metricsToken.length < 16) throw new Error('the metrics token must have at least 16 characters');
  return {
    host,
    port,
    dataDir,
    adminKey,
    limits: { ...defaultLimits, ...limits },
    retention: { ...defaultRetention, ...retention },
    cacheBytesMax,
    logLevel,
    asyncReads,
    tls,
    corsOrigins,
    introspection,
    graphiql,
    cluster,
    metricsToken,
    history: { ...defaultHistory, ...history },
  };
}
