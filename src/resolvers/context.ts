/** What every resolver receives. Resolvers are thin: arguments in, engine calls, views out. */
import type { Access } from '../auth/access.js';
import type { Directory } from '../auth/directory.js';
import type { Quotas } from '../auth/quotas.js';
import type { Engine } from '../engine/engine.js';
import type { Limits } from '../options.js';
import type { Cluster } from '../replication/cluster.js';
import type { Router } from '../replication/router.js';
import type { Metrics } from '../server/metrics.js';

export interface ResolverContext {
  /** Names the request in the logs, here and on the peers it reaches (`x-request-id`). */
  requestId: string;
  engine: Engine;
  directory: Directory;
  /** Who the request is (auth/access.ts): its app, level and user. */
  access: Access;
  /** The client's address, for brute-force slowing of sign-ins. */
  source: string;
  limits: Limits;
  quotas: Quotas;
  /** Where partition operations run: here (a single node) or through the cluster. */
  router: Router;
  cluster: Cluster | null;
  metrics: Metrics;
}
