/**
 * The syncgraph benchmark: `npm run bench` (builds, then runs dist/bench/run.js). Not a test: it
 * prints a table and writes bench/RESULTS.md. It runs, in one go:
 *
 *   baselines  raw LevelDB (classic-level, in this process): batched and synced puts;
 *              a bare graphql-yoga + graphql-ws server (child process, bench/baselines/bare-server.ts)
 *   the node   bin/syncgraph.js on a fresh temporary data directory (child process)
 *   W2  fanout: live subscribers, a writer at a fixed rate, delivery latency; idle memory
 *   W1  closed-loop single-change submits, over HTTP then graphql-ws (node vs bare)
 *   W1b closed-loop batched submits (node vs raw LevelDB batched puts)
 *   W3  catch-up: fill a bucket, then read its whole change stream by paging and by subscription
 *   cluster  (after the servers above are stopped) W1-style HTTP writes over several buckets against
 *              a fresh single node, then against every node of a fresh 3-node cluster (N=3, W=2);
 *              then a 3-node cluster with N=2 loaded with many entities, and a 4th node joining:
 *              the time until it has taken over its share (bench/workloads/cluster.ts)
 *   history  (after the cluster part, one node at a time) a fresh node collecting history at a 1 s
 *              horizon, then a fresh node with the defaults (nothing collected during the run): create
 *              entities, update them round-robin, bytes on disk per live entity once collection has
 *              settled (bench/workloads/history.ts)
 * W2 runs first so that idle memory is read on processes that have not yet served heavy load.
 * Child processes and temporary directories are removed on any exit.
 *
 * Environment overrides (defaults in parentheses):
 *   BENCH_SECONDS (5)            measured seconds of each W1 / W1b run
 *   BENCH_WARMUP_SECONDS (1)     warm-up before each W1 / W1b measurement
 *   BENCH_CLIENTS (32)           concurrent clients of W1
 *   BENCH_BATCH_CLIENTS (8)      concurrent clients of W1b
 *   BENCH_BATCH (100)            changes per request in W1b and in the W3 fill; puts per raw batch
 *   BENCH_SUBSCRIBERS (1000)     W2 subscribers
 *   BENCH_SOCKETS (1000)         sockets the W2 subscribers are spread over (round-robin)
 *   BENCH_MUX_SOCKETS (10)       diagnostic W2 run with the subscribers on this many sockets (0: skip)
 *   BENCH_RATE (100)             W2 writer changes per second
 *   BENCH_FANOUT_SECONDS (5)     W2 writer duration, measured
 *   BENCH_FANOUT_WARMUP_SECONDS (2) W2 writer duration before that, unmeasured
 *   BENCH_DRAIN_SECONDS (10)     longest wait for W2's last deliveries
 *   BENCH_CATCHUP_CHANGES (100000) changes written then read back by W3
 *   BENCH_FILL_CLIENTS (4)       concurrent clients filling W3
 *   BENCH_CATCHUP_TIMEOUT_SECONDS (60) longest W3 read
 *   BENCH_LEVEL_SECONDS (2)      duration of each raw LevelDB baseline
 *   BENCH_VALUE_BYTES (200)      approximate JSON size of each value / change data
 *   BENCH_DIAG_BUCKETS (8)       diagnostic W1 (graphql-ws) spread over this many buckets; 0 skips it
 *   BENCH_WRITE_TRANSPORT (http) transport of W1b, the W2 writer and the W3 fill: http or ws
 *   BENCH_CLUSTER_BUCKETS (8)    buckets the cluster write load is spread over
 *   BENCH_CLUSTER_ENTITIES (100000) entities loaded before the 4th node joins
 *   BENCH_CLUSTER_JOIN_BUCKETS (64) buckets they are spread over
 *   BENCH_CLUSTER_BATCH (500)    changes per request of that load
 *   BENCH_CLUSTER_LOAD_CLIENTS (6) concurrent clients of that load (dealt over the nodes)
 *   BENCH_CLUSTER_JOIN_TIMEOUT_SECONDS (90) longest wait for the joining node to take over
 *   BENCH_HISTORY_ENTITIES (10000) entities created, then updated, by the history part
 *   BENCH_HISTORY_UPDATES (1000000) updates acknowledged on each of its two nodes
 *   BENCH_HISTORY_CLIENTS (4)    concurrent clients of that load (BENCH_BATCH changes per request)
 *   BENCH_NODE_FLAGS ('')        more Node.js flags for the single node, to look inside it (e.g.
 *                                `--cpu-prof --cpu-prof-dir=/tmp/prof`; timings then include the profiler)
 *   BENCH_PART_TIMEOUT_SECONDS (180) a part still running after this is recorded as failed (a history
 *                                run: one more second per 5,000 updates)
 *   BENCH_ONLY (all)             comma-separated parts to run: level,w1,w1b,w2,w3,cluster,history
 *   BENCH_RESULTS (bench/RESULTS.md) where to write the report
 */
import { runRawLevel } from './baselines/raw-level.js';
import { whatLimits } from './analysis.js';
import { loadConfig } from './config.js';
import { buildRows, consoleDetails, formatTable, machine, writeResults, type Results } from './report.js';
import { checkSubmitted, dataOf, PUBLISH, SUBMIT, ChangeMaker, type GqlResult } from './support/gql.js';
import { ForeignLoadMeter, formatPercent, sleep } from './stats.js';
import { cleanupSync, installCleanup, removeTempDir, startBareServer, startSyncgraph, type Service } from './support/services.js';
import type { BenchCluster } from './support/cluster.js';
import { runCatchup } from './workloads/catchup.js';
import { runClusterWrites, runClusterWritesOnCluster, runJoin } from './workloads/cluster.js';
import { runFanout } from './workloads/fanout.js';
import { runSocketWrites } from './baselines/socket-writes.js';
import { runHistory } from './workloads/history.js';
import { runSubmit } from './workloads/submit.js';

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function main(): Promise<void> {
  installCleanup();
  const config = loadConfig();
  const started = performance.now();
  const results: Results = { bare: {}, node: {}, errors: new Map(), skipped: new Set(), startedAt: new Date(), seconds: 0 };
  const maker = new ChangeMaker(config.valueBytes);
  const wants = (part: string) => config.only.has(part);
  for (const [part, names] of [
    ['level', ['level']],
    ['w1', ['node w1 http', 'node w1 ws']],
    ['w1b', ['node w1b']],
    ['w2', ['node w2']],
    ['w3', ['node w3']],
    ['cluster', ['cluster w1 single', 'cluster w1 3 nodes', 'cluster join']],
    ['history', ['history collecting', 'history baseline']],
  ] as const) {
    if (!wants(part)) for (const name of names) results.skipped.add(name);
  }
  log(machine().join('; ').replace(/- /g, ''));
  const before = new ForeignLoadMeter();
  await sleep(1_000);
  results.foreignLoadBefore = before.read();
  if (results.foreignLoadBefore > 0.1) {
    log(`WARNING: other processes use ${formatPercent(results.foreignLoadBefore)} of a core on this machine: figures will be lower and noisier`);
  }
  const foreign = new ForeignLoadMeter();

  /** Runs one part; a failure is recorded (with the server's last output) and the bench goes on. */
  const attempt = async <T>(
    part: string,
    server: Pick<Service, 'name' | 'tail'> | undefined,
    fn: () => Promise<T>,
    timeoutSeconds = config.partTimeoutSeconds,
  ): Promise<T | undefined> => {
    log(`${part}...`);
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${part} did not finish in ${timeoutSeconds} s`)), timeoutSeconds * 1000);
      });
      const value = await Promise.race([fn(), timeout]);
      log(`${part} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return value;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const serverLines = server?.tail().split('\n').filter((l) => /"level":(50|60)|stderr|exited/.test(l)).slice(-3) ?? [];
      const full = serverLines.length > 0 ? `${message}\n${server?.name} output:\n${serverLines.map((l) => l.slice(0, 600)).join('\n')}` : message;
      results.errors.set(part, full);
      log(`${part} FAILED: ${full}`);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };

  if (wants('level')) {
    results.level = await attempt('level', undefined, () =>
      runRawLevel({ seconds: config.levelSeconds, batchSize: config.batchSize, valueBytes: config.valueBytes }),
    );
  }

  const needsBare = wants('w1') || wants('w2');
  const bare = needsBare ? await attempt('start bare server', undefined, startBareServer) : undefined;
  const needsNode = ['w1', 'w1b', 'w2', 'w3'].some(wants);
  const node = needsNode ? await attempt('start node', undefined, startSyncgraph) : undefined;
  if (needsNode && node === undefined) {
    for (const part of ['node w1 http', 'node w1 ws', 'node w1b', 'node w2', 'node w3']) {
      if (!results.skipped.has(part)) results.errors.set(part, 'the node did not start (see "start node")');
    }
  }

  const checkPublished = (result: GqlResult) => {
    if (dataOf(result, 'publish')['publish'] !== 1) throw new Error(`publish: ${JSON.stringify(result)}`);
  };
  const fanoutOptions = (bucket: string, sockets = config.sockets) => ({
    subscribers: config.subscribers,
    sockets: Math.min(sockets, config.subscribers),
    rate: config.rate,
    seconds: config.fanoutSeconds,
    warmupSeconds: config.fanoutWarmupSeconds,
    drainSeconds: config.drainSeconds,
    bucket,
    maker,
    writeTransport: config.writeTransport,
    log,
  });

  if (wants('w2')) {
    // The floor under W2: one socket write per subscriber and pass, measured bare.
    results.socketWrites = await attempt('socket writes', undefined, () =>
      runSocketWrites({ sockets: config.sockets, messageBytes: 300, rounds: 100, intervalMs: 20 }),
    );
    if (bare !== undefined) {
      results.bare.fanout = await attempt('bare w2', bare, () =>
        runFanout(bare, { ...fanoutOptions('w2'), writeQuery: PUBLISH, checkWrite: checkPublished }),
      );
    }
    if (node !== undefined) {
      results.node.fanout = await attempt('node w2', node, () =>
        runFanout(node, { ...fanoutOptions('w2'), writeQuery: SUBMIT, checkWrite: (r) => checkSubmitted(r, 1) }),
      );
    }
    // The same fan-out with the subscribers multiplexed over a few sockets: the server's work per
    // delivery without one socket write (and one client read) per subscriber.
    if (config.muxSockets > 0) {
      if (bare !== undefined) {
        results.bare.fanoutMux = await attempt('bare w2 mux', bare, () =>
          runFanout(bare, { ...fanoutOptions('w2mux', config.muxSockets), writeQuery: PUBLISH, checkWrite: checkPublished }),
        );
      }
      if (node !== undefined) {
        results.node.fanoutMux = await attempt('node w2 mux', node, () =>
          runFanout(node, { ...fanoutOptions('w2mux', config.muxSockets), writeQuery: SUBMIT, checkWrite: (r) => checkSubmitted(r, 1) }),
        );
      }
    }
  }

  if (wants('w1')) {
    for (const transport of ['http', 'ws'] as const) {
      const options = { transport, clients: config.clients, perRequest: 1, warmupSeconds: config.warmupSeconds, seconds: config.seconds, maker };
      if (bare !== undefined) {
        const r = await attempt(`bare w1 ${transport}`, bare, () => runSubmit(bare, { ...options, bucket: `w1-${transport}` }));
        if (transport === 'http') results.bare.w1http = r;
        else results.bare.w1ws = r;
        if (r) log(`  bare ${transport}: ${Math.round(r.perSecond)} mutations/s`);
      }
      if (node !== undefined) {
        const r = await attempt(`node w1 ${transport}`, node, () => runSubmit(node, { ...options, bucket: `w1-${transport}` }));
        if (transport === 'http') results.node.w1http = r;
        else results.node.w1ws = r;
        if (r) log(`  node ${transport}: ${Math.round(r.perSecond)} changes/s`);
      }
    }
  }

  if (wants('w1') && node !== undefined && config.diagBuckets > 1) {
    // Diagnostic: is W1 bounded by the per-bucket serial computation? Same load over N buckets.
    results.node.w1spread = await attempt('node w1 ws spread', node, () =>
      runSubmit(node, {
        transport: 'ws',
        clients: config.clients,
        perRequest: 1,
        warmupSeconds: config.warmupSeconds,
        seconds: config.seconds,
        maker,
        bucket: 'w1-spread',
        buckets: config.diagBuckets,
      }),
    );
    if (results.node.w1spread) log(`  node ws over ${config.diagBuckets} buckets: ${Math.round(results.node.w1spread.perSecond)} changes/s`);
  }

  if (wants('w1b') && node !== undefined) {
    results.node.w1b = await attempt('node w1b', node, () =>
      runSubmit(node, {
        transport: config.writeTransport,
        clients: config.batchClients,
        perRequest: config.batchSize,
        warmupSeconds: config.warmupSeconds,
        seconds: config.seconds,
        maker,
        bucket: 'w1b',
      }),
    );
    if (results.node.w1b) log(`  node w1b: ${Math.round(results.node.w1b.perSecond)} changes/s`);
  }

  if (wants('w3') && node !== undefined) {
    results.node.catchup = await attempt('node w3', node, () =>
      runCatchup(node, {
        changes: config.catchupChanges,
        batchSize: config.batchSize,
        fillClients: config.fillClients,
        bucket: 'w3',
        maker,
        writeTransport: config.writeTransport,
        timeoutSeconds: config.catchupTimeoutSeconds,
        pageSize: 1000,
        log,
      }),
    );
  }

  log('stopping servers');
  await Promise.all([bare?.stop(), node?.stop()]);

  if (wants('cluster')) await runClusterPart();
  if (wants('history')) await runHistoryPart();
  cleanupSync();
  results.foreignLoad = foreign.read();
  if (results.foreignLoad > 0.1) log(`WARNING: other processes used ${formatPercent(results.foreignLoad)} of a core during the run`);

  results.seconds = (performance.now() - started) / 1000;
  const rows = buildRows(results, config);
  const table = formatTable(rows);
  process.stdout.write(`\n${table}\n\n${consoleDetails(results)}\n\n`);
  writeResults(config.resultsPath, results, config, rows, whatLimits(results, config));
  process.stdout.write(`Wrote ${config.resultsPath} (${Math.round(results.seconds)} s)\n`);

  /**
   * The cluster part, on servers of its own (the others are stopped by then, so they take no
   * memory or CPU): the same write load against a fresh plain node and a fresh 3-node cluster,
   * then a 4th node joining a loaded cluster.
   */
  async function runClusterPart(): Promise<void> {
    results.cluster = {};
    const writeOptions = {
      clients: config.clients,
      bucket: 'cw',
      buckets: config.clusterBuckets,
      warmupSeconds: config.warmupSeconds,
      seconds: config.seconds,
      maker,
    };
    const single = await attempt('cluster start single node', undefined, startSyncgraph);
    if (single === undefined) results.errors.set('cluster w1 single', 'the node did not start (see "cluster start single node")');
    else {
      results.cluster.single = await attempt('cluster w1 single', single, () => runClusterWrites([single], writeOptions));
      await single.stop();
      if (results.cluster.single) log(`  1 node: ${Math.round(results.cluster.single.perSecond)} acknowledged changes/s`);
    }
    // Error reports show the last lines of every node of the cluster running at the time.
    const running: { cluster?: BenchCluster } = {};
    /** A part that failed or timed out may leave its cluster running: stop it (its processes are ours). */
    const stopRunning = async () => {
      await running.cluster?.stop();
      delete running.cluster;
    };
    const nodesOutput = {
      name: 'the cluster nodes',
      tail: () => running.cluster?.nodes.map((n) => n.tail().split('\n').map((l) => `${n.nodeId} ${l}`).join('\n')).join('\n') ?? '',
    };
    results.cluster.three = await attempt('cluster w1 3 nodes', nodesOutput, () =>
      runClusterWritesOnCluster(3, { replicas: 3, writeQuorum: 2 }, writeOptions, log, (c) => (running.cluster = c)),
    );
    if (results.cluster.three) log(`  3 nodes: ${Math.round(results.cluster.three.perSecond)} acknowledged changes/s`);
    await stopRunning();
    results.cluster.join = await attempt('cluster join', nodesOutput, () =>
      runJoin({
        size: 3,
        replicas: 2,
        entities: config.clusterEntities,
        buckets: config.clusterJoinBuckets,
        batchSize: config.clusterBatch,
        loadClients: config.clusterLoadClients,
        timeoutSeconds: config.clusterJoinTimeoutSeconds,
        maker,
        log,
        started: (c) => (running.cluster = c),
      }),
    );
    await stopRunning();
  }

  /**
   * The history part: the same update-heavy load on a fresh node that collects history at a 1 s
   * horizon, then on a fresh node with the defaults (30 days: nothing is collected during the run).
   * One after the other, alone on the machine, so that neither's compactions slow the other.
   */
  async function runHistoryPart(): Promise<void> {
    results.history = {};
    const runs = [
      ['history collecting', true, ['--history-horizon-seconds', '1', '--ccid-window-seconds', '1', '--history-interval-seconds', '1']],
      ['history baseline', false, []],
    ] as const;
    for (const [part, collecting, flags] of runs) {
      const node = await attempt(`${part} start node`, undefined, () => startSyncgraph(flags));
      if (node === undefined) {
        results.errors.set(part, `the node did not start (see "${part} start node")`);
        continue;
      }
      try {
        const result = await attempt(part, node, () =>
          runHistory(node, {
            collecting,
            entities: config.historyEntities,
            updates: config.historyUpdates,
            batchSize: config.batchSize,
            clients: config.historyClients,
            valueBytes: config.valueBytes,
            quietSeconds: 3,
            bucket: 'history',
            log,
          }),
          // The load's length is the setting's: one more second per 5,000 updates.
          config.partTimeoutSeconds + config.historyUpdates / 5_000,
        );
        if (collecting) results.history.collecting = result;
        else results.history.baseline = result;
      } finally {
        await node.stop();
        // Hundreds of MB of history (without collection): not kept until the end of the bench.
        removeTempDir(node.dataDir);
      }
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
