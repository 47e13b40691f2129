/**
 * Bench settings, each overridable by an environment variable (documented in run.ts), and the
 * paths the bench needs (computed from this compiled file: dist/bench/config.js).
 */
import { fileURLToPath } from 'node:url';

function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`);
  return value;
}

function int(name: string, fallback: number): number {
  return Math.max(1, Math.round(num(name, fallback)));
}

function transport(name: string, fallback: 'http' | 'ws'): 'http' | 'ws' {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw !== 'http' && raw !== 'ws') throw new Error(`${name} must be http or ws, got ${JSON.stringify(raw)}`);
  return raw;
}

export interface BenchConfig {
  /** Measured seconds of each W1/W1b run. */
  seconds: number;
  /** Warm-up seconds before each W1/W1b measurement. */
  warmupSeconds: number;
  /** Concurrent clients of W1. */
  clients: number;
  /** Concurrent clients of W1b. */
  batchClients: number;
  /** Changes per request in W1b and when filling W3. */
  batchSize: number;
  /** Live subscribers of W2. */
  subscribers: number;
  /** WebSockets the W2 subscribers are spread over (subscriptions are dealt round-robin). */
  sockets: number;
  /** Changes per second submitted by the W2 writer. */
  rate: number;
  /** Seconds the W2 writer runs, measured. */
  fanoutSeconds: number;
  /** Seconds the W2 writer runs first, unmeasured (workloads/fanout.ts says why). */
  fanoutWarmupSeconds: number;
  /** Most seconds W2 waits for the last deliveries after the writer stopped. */
  drainSeconds: number;
  /** Changes written, then read back, by W3. */
  catchupChanges: number;
  /** Concurrent clients filling W3. */
  fillClients: number;
  /** Most seconds one W3 read may take. */
  catchupTimeoutSeconds: number;
  /** Seconds of each raw LevelDB baseline. */
  levelSeconds: number;
  /** Size of each JSON value written (raw LevelDB) and of each change's data (roughly). */
  valueBytes: number;
  /** Diagnostic: W1 over graphql-ws again, spread over this many buckets (0: skip). */
  diagBuckets: number;
  /** Diagnostic: W2 again with the subscribers multiplexed over this many sockets (0: skip). */
  muxSockets: number;
  /** Transport of W1b, of the W2 writer and of the W3 fill: http (default) or ws. */
  writeTransport: 'http' | 'ws';
  /** Cluster part: buckets the write load is spread over (so that partitions have different owners). */
  clusterBuckets: number;
  /** Cluster part: entities loaded before a node joins. */
  clusterEntities: number;
  /** Cluster part: buckets those entities are spread over. */
  clusterJoinBuckets: number;
  /** Cluster part: changes per request of that load. */
  clusterBatch: number;
  /** Cluster part: concurrent clients of that load. */
  clusterLoadClients: number;
  /** Cluster part: most seconds the joining node may take to take over its share. */
  clusterJoinTimeoutSeconds: number;
  /** History part: entities created, then updated round-robin. */
  historyEntities: number;
  /** History part: updates acknowledged (on each of its two nodes). */
  historyUpdates: number;
  /** History part: concurrent clients of that load (each owns a share of the keys). */
  historyClients: number;
  /** A part (one workload against one server) still running after this is recorded as failed. */
  partTimeoutSeconds: number;
  /** Which parts to run: level, w1, w1b, w2, w3, cluster, history (default all). */
  only: ReadonlySet<string>;
  /** Where the report goes. */
  resultsPath: string;
}

/** The repository root (dist/bench/config.js -> ../..). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const NODE_BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));
/**
 * The Node.js flags both servers run with, the bare baseline too, so that every ratio compares
 * code, not runtime settings. None: a node runs on Node's defaults, and tunes V8's heap growth
 * itself when it starts (src/server/heap-tuning.ts), as part of its code.
 */
export const NODE_FLAGS: readonly string[] = [];

/** More Node.js flags for the single node only, to look inside it (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
export const EXTRA_NODE_FLAGS = (process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter((flag) => flag !== '');
export const BARE_SERVER = fileURLToPath(new URL('./baselines/bare-server.js', import.meta.url));

export const ALL_PARTS = ['level', 'w1', 'w1b', 'w2', 'w3', 'cluster', 'history'] as const;

export function loadConfig(): BenchConfig {
  const onlyRaw = process.env['BENCH_ONLY'];
  const only = new Set(
    onlyRaw === undefined || onlyRaw.trim() === ''
      ? ALL_PARTS
      : onlyRaw.split(',').map((part) => part.trim().toLowerCase()).filter((part) => part !== ''),
  );
  for (const part of only) {
    if (!(ALL_PARTS as readonly string[]).includes(part)) throw new Error(`BENCH_ONLY: unknown part ${part} (know ${ALL_PARTS.join(', ')})`);
  }
  return {
    seconds: num('BENCH_SECONDS', 5),
    warmupSeconds: num('BENCH_WARMUP_SECONDS', 1),
    clients: int('BENCH_CLIENTS', 32),
    batchClients: int('BENCH_BATCH_CLIENTS', 8),
    batchSize: int('BENCH_BATCH', 100),
    subscribers: int('BENCH_SUBSCRIBERS', 1000),
    sockets: int('BENCH_SOCKETS', 1000),
    rate: num('BENCH_RATE', 100),
    fanoutSeconds: num('BENCH_FANOUT_SECONDS', 5),
    fanoutWarmupSeconds: num('BENCH_FANOUT_WARMUP_SECONDS', 2),
    drainSeconds: num('BENCH_DRAIN_SECONDS', 10),
    catchupChanges: int('BENCH_CATCHUP_CHANGES', 100_000),
    fillClients: int('BENCH_FILL_CLIENTS', 4),
    catchupTimeoutSeconds: num('BENCH_CATCHUP_TIMEOUT_SECONDS', 60),
    levelSeconds: num('BENCH_LEVEL_SECONDS', 2),
    valueBytes: int('BENCH_VALUE_BYTES', 200),
    diagBuckets: Math.round(num('BENCH_DIAG_BUCKETS', 8)),
    muxSockets: Math.round(num('BENCH_MUX_SOCKETS', 10)),
    writeTransport: transport('BENCH_WRITE_TRANSPORT', 'http'),
    clusterBuckets: int('BENCH_CLUSTER_BUCKETS', 8),
    clusterEntities: int('BENCH_CLUSTER_ENTITIES', 100_000),
    clusterJoinBuckets: int('BENCH_CLUSTER_JOIN_BUCKETS', 64),
    clusterBatch: int('BENCH_CLUSTER_BATCH', 500),
    clusterLoadClients: int('BENCH_CLUSTER_LOAD_CLIENTS', 6),
    clusterJoinTimeoutSeconds: num('BENCH_CLUSTER_JOIN_TIMEOUT_SECONDS', 90),
    historyEntities: int('BENCH_HISTORY_ENTITIES', 10_000),
    historyUpdates: int('BENCH_HISTORY_UPDATES', 1_000_000),
    historyClients: int('BENCH_HISTORY_CLIENTS', 4),
    partTimeoutSeconds: num('BENCH_PART_TIMEOUT_SECONDS', 180),
    only,
    resultsPath: process.env['BENCH_RESULTS'] ?? fileURLToPath(new URL('../../bench/RESULTS.md', import.meta.url)),
  };
}
