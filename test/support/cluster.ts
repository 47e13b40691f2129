/**
 * Real clusters of syncgraph node processes on 127.0.0.1 for black-box tests: ports are picked
 * first (so each node's --peers can list them all), every node shares the admin and cluster keys,
 * and a node can be killed and restarted with the same arguments and data directory.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { rawPost } from './client.js';
import { startNodeProcess, tempDataDir, type NodeProcess } from './node-process.js';

export interface ClusterNode {
  nodeId: string;
  port: number;
  dataDir: string;
  args: string[];
  /** The running process, or undefined while stopped. */
  process: NodeProcess | undefined;
}

export interface TestCluster {
  nodes: ClusterNode[];
  adminKey: string;
  clusterKey: string;
  /** The running process of node `i` (throws when it is stopped). */
  node(i: number): NodeProcess;
  start(i: number): Promise<NodeProcess>;
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  running(): NodeProcess[];
}

/** Free TCP ports of 127.0.0.1 (bound, read, released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export async function startCluster(options: {
  size: number;
  replicas?: number;
  writeQuorum?: number;
  args?: string[];
  peers?: (ports: number[]) => string[];
  /** Ports picked beforehand (default: free ones now). */
  ports?: number[];
  /** Arguments of node i only (e.g. its --advertise). */
  nodeArgs?: (i: number) => string[];
}): Promise<TestCluster> {
  const ports = options.ports ?? (await freePorts(options.size));
  const adminKey = randomBytes(16).toString('hex');
  const clusterKey = randomBytes(24).toString('hex');
  const peers = (options.peers?.(ports) ?? ports.map((p) => `127.0.0.1:${p}`)).join(',');
  const nodes: ClusterNode[] = ports.map((port, i) => ({
    nodeId: `node${i + 1}`,
    port,
    dataDir: tempDataDir(),
    args: [
      '--port', String(port),
      '--node-id', `node${i + 1}`,
      '--peers', peers,
      '--cluster-key', clusterKey,
      ...(options.replicas !== undefined ? ['--replicas', String(options.replicas)] : []),
      ...(options.writeQuorum !== undefined ? ['--write-quorum', String(options.writeQuorum)] : []),
      ...(options.args ?? []),
      ...(options.nodeArgs?.(i) ?? []),
    ],
    process: undefined,
  }));
  const cluster: TestCluster = {
    nodes,
    adminKey,
    clusterKey,
    node(i) {
      const running = nodes[i]!.process;
      if (running === undefined) throw new Error(`node${i + 1} is not running`);
      return running;
    },
    async start(i) {
      const node = nodes[i]!;
      // The last --port wins: startNodeProcess passes --port 0 first.
      node.process = await startNodeProcess({ dataDir: node.dataDir, adminKey, args: node.args });
      return node.process;
    },
    async kill(i, signal = 'SIGKILL') {
      const node = nodes[i]!;
      await node.process?.stop(signal);
      node.process = undefined;
    },
    running: () => nodes.flatMap((n) => (n.process === undefined ? [] : [n.process])),
  };
  await Promise.all(nodes.map((_, i) => cluster.start(i)));
  await waitForRing(cluster, options.size);
  return cluster;
}

/** Resolves when every running node sees `size` active members, all up. */
export async function waitForRing(cluster: TestCluster, size: number): Promise<void> {
  for (const node of cluster.running()) {
    await until(async () => {
      const result = await rawPost(node, { query: '{ cluster { nodes { id status up } } }' });
      const nodes = (result.data as { cluster: { nodes: Array<{ status: string; up: boolean }> } } | undefined)?.cluster.nodes ?? [];
      return nodes.filter((n) => n.status === 'ACTIVE' && n.up).length === size;
    }, `a ring of ${size}`);
  }
}

/** Polls `check` (a condition another process must reach: there is no event to wait on). */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface ReplicaRow {
  nodeId: string;
  up: boolean;
  digest: string | null;
  entities: number | null;
  lag: number | null;
}

export interface ListedChange {
  ccid: string;
  key: string;
  version: number;
}

const REPLICAS = `query($bucket: String!) { replicaStatus(bucket: $bucket) { nodeId up digest entities lag } }`;
const CHANGES = `query($bucket: String!, $since: Cursor) { changes(bucket: $bucket, since: $since, limit: 1000) { changes { ccid key version } cursor hasMore } }`;

/** `replicaStatus(bucket)` as `node` sees it (admin key). */
export async function replicaStatus(node: NodeProcess, bucket: string): Promise<ReplicaRow[]> {
  const result = await rawPost(node, { query: REPLICAS, variables: { bucket } });
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return (result.data as unknown as { replicaStatus: ReplicaRow[] }).replicaStatus;
}

/** Every change `node` lists for `bucket`, from the start, page after page. */
export async function allChanges(node: NodeProcess, bucket: string): Promise<ListedChange[]> {
  const out: ListedChange[] = [];
  let since: string | null = null;
  for (;;) {
    const result = await rawPost(node, { query: CHANGES, variables: { bucket, since } });
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    const page = (result.data as unknown as { changes: { changes: ListedChange[]; cursor: string; hasMore: boolean } }).changes;
    out.push(...page.changes);
    since = page.cursor;
    if (!page.hasMore) return out;
  }
}
