/**
 * Peer clusters of real syncgraph nodes for the bench's `cluster` part: child processes of
 * bin/syncgraph.js on 127.0.0.1, started like test/support/cluster.ts does (ports picked first so
 * that every node's --peers can list them, shared admin and cluster keys), each on a fresh
 * temporary data directory registered with services.ts (removed on any exit). The children are
 * killed on any exit of the bench too (see `installCleanup`, whose signal handlers exit).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { NODE_BIN, NODE_FLAGS } from '../config.js';
import { sleep } from '../stats.js';
import { dataOf, type GqlResult } from './gql.js';
import { HttpGql } from './http-client.js';
import { installCleanup, supervise, tempDir, type Service } from './services.js';


/** Free TCP ports of 127.0.0.1 (bound, read, released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export interface ClusterNodeService extends Service {
  nodeId: string;
  port: number;
  /** An admin GraphQL client of this node (one connection). */
  admin: HttpGql;
  /** Log lines of level warn or above since the cluster formed (or this node started, if it joined later), and the first few. */
  warnings(): { count: number; first: string[] };
  /** Forget the warnings so far (start-up ones: peers dialled before they listen). */
  clearWarnings(): void;
}

export interface ClusterSettings {
  /** Replicas per partition (--replicas); the node's default when undefined. */
  replicas?: number;
  /** --write-quorum; the node's default (a majority of N) when undefined. */
  writeQuorum?: number;
}

/** A cluster under test: its nodes, and how to add one that joins the others. */
export interface BenchCluster {
  nodes: ClusterNodeService[];
  adminKey: string;
  /** Starts one more node whose --peers lists the running ones (it joins them); resolves once it listens. */
  addNode(): Promise<ClusterNodeService>;
  stop(): Promise<void>;
}

/** Starts `size` nodes that list each other as peers; resolves once every node sees all of them ACTIVE and up. */
export async function startBenchCluster(size: number, settings: ClusterSettings, log: (line: string) => void): Promise<BenchCluster> {
  installCleanup();
  const adminKey = randomBytes(16).toString('hex');
  const clusterKey = randomBytes(24).toString('hex');
  const ports = await freePorts(size);
  const nodes: ClusterNodeService[] = [];
  const start = (index: number, port: number, peers: number[]) =>
    startClusterNode({ nodeId: `node${index + 1}`, port, peers, adminKey, clusterKey, settings });
  try {
    nodes.push(...(await Promise.all(ports.map((port, i) => start(i, port, ports)))));
    const t0 = performance.now();
    await waitForMembers(nodes, size, 30_000);
    log(`cluster of ${size}: all members active and up ${((performance.now() - t0) / 1000).toFixed(1)} s after listening`);
    for (const node of nodes) node.clearWarnings();
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw error;
  }
  return {
    nodes,
    adminKey,
    async addNode() {
      const [port] = await freePorts(1);
      const node = await start(nodes.length, port!, nodes.map((n) => n.port));
      nodes.push(node);
      return node;
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

interface NodeSpec {
  nodeId: string;
  port: number;
  peers: number[];
  adminKey: string;
  clusterKey: string;
  settings: ClusterSettings;
}

/**
 * One cluster node. Log level info, like the single node of the other parts (readiness is its
 * "syncgraph listening" line; at info the cluster logs ring changes and handovers, nothing per request).
 */
async function startClusterNode(spec: NodeSpec): Promise<ClusterNodeService> {
  const dataDir = tempDir(`syncgraph-bench-${spec.nodeId}-`);
  const args = [
    ...NODE_FLAGS, NODE_BIN, 'start',
    '--port', String(spec.port),
    '--data', dataDir,
    '--admin-key', spec.adminKey,
    '--node-id', spec.nodeId,
    '--peers', spec.peers.map((p) => `127.0.0.1:${p}`).join(','),
    '--cluster-key', spec.clusterKey,
    ...(spec.settings.replicas !== undefined ? ['--replicas', String(spec.settings.replicas)] : []),
    ...(spec.settings.writeQuorum !== undefined ? ['--write-quorum', String(spec.settings.writeQuorum)] : []),
    '--log-level', 'info',
  ];
  // No SYNCGRAPH_* settings from the environment: the command line says everything.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SYNCGRAPH_')));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const name = `cluster ${spec.nodeId}`;
  const { keep, tail, exited } = supervise(child, 60);
  createInterface({ input: child.stderr! }).on('line', (line) => keep(`stderr: ${line}`));
  let warnCount = 0;
  const firstWarnings: string[] = [];
  const graphqlUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in time:\n${tail()}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      if (!line.startsWith('{')) return;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (typeof entry['level'] === 'number' && entry['level'] >= 40) {
          warnCount++;
          if (firstWarnings.length < 3) firstWarnings.push(`${spec.nodeId}: ${String(entry['msg'])}`.slice(0, 300));
        }
        if (entry['msg'] === 'syncgraph listening' && typeof entry['url'] === 'string') {
          clearTimeout(timer);
          resolve(entry['url']);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before listening:\n${tail()}`));
    });
  });
  const admin = new HttpGql(graphqlUrl, spec.adminKey, 1);
  return {
    name,
    nodeId: spec.nodeId,
    port: spec.port,
    pid: child.pid!,
    graphqlUrl,
    wsUrl: graphqlUrl.replace(/^http/, 'ws'),
    token: spec.adminKey,
    admin,
    tail,
    warnings: () => ({ count: warnCount, first: [...firstWarnings] }),
    clearWarnings() {
      warnCount = 0;
      firstWarnings.length = 0;
    },
    collectGarbage: () => Promise.reject(new Error(`${name}: no inspector (cluster nodes are started without one)`)),
    evaluate: () => Promise.reject(new Error(`${name}: no inspector (cluster nodes are started without one)`)),
    async stop(graceMs = 5_000) {
      admin.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ------------------------------------------------------------------ admin queries

const q = (query: string) => JSON.stringify(query.replace(/\s+/g, ' ').trim());
const CLUSTER = q(`{ cluster { nodeId replicas writeQuorum nodes { id status up } handoff { pending moved } } }`);
const REPLICAS = q(`query($b:String!){ replicaStatus(bucket:$b){ nodeId up digest entities lag } }`);

export interface ClusterView {
  nodeId: string | null;
  replicas: number;
  writeQuorum: number;
  nodes: Array<{ id: string; status: string; up: boolean }>;
  handoff: { pending: number; moved: number };
}

export interface ReplicaRow {
  nodeId: string;
  up: boolean;
  digest: string | null;
  entities: number | null;
  lag: number | null;
}

export async function clusterView(node: ClusterNodeService): Promise<ClusterView> {
  return dataOf(await node.admin.execute(CLUSTER, '{}'), 'cluster')['cluster'] as ClusterView;
}

export async function replicaStatus(node: ClusterNodeService, bucket: string): Promise<ReplicaRow[]> {
  const result: GqlResult = await node.admin.execute(REPLICAS, JSON.stringify({ b: bucket }));
  return dataOf(result, 'replicaStatus')['replicaStatus'] as ReplicaRow[];
}

/** Members every node sees ACTIVE and up. */
export const activeUp = (view: ClusterView) => view.nodes.filter((n) => n.status === 'ACTIVE' && n.up).length;

/** Resolves once every node sees `size` members ACTIVE and up (polls: the state lives in other processes). */
export async function waitForMembers(nodes: readonly ClusterNodeService[], size: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (const node of nodes) {
    for (;;) {
      const view = await clusterView(node).catch(() => undefined);
      if (view !== undefined && activeUp(view) === size) break;
      if (performance.now() > deadline) {
        throw new Error(`${node.name} does not see ${size} active members after ${timeoutMs / 1000} s: ${JSON.stringify(view?.nodes)}`);
      }
      await sleep(100);
    }
  }
}
