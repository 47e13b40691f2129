/**
 * The `cluster` part: what replication costs, and how fast a joining node takes over its share.
 *
 *  (a) Acknowledged changes/s under the W1 HTTP load (closed loop, one change per request, new
 *      entity each, unique ccids) spread over several buckets, against one node or against every
 *      node of a cluster (client i talks to node i mod n). Same code for both, so the ratio is
 *      what the cluster costs on this machine. An UNAVAILABLE answer (too few replicas confirmed
 *      in time) is counted and not acknowledged; any other error ends the run.
 *  (b) Join: load a cluster with `entities` new entities over `buckets` buckets, start one more
 *      node, and time until every node sees it ACTIVE and up, every bucket's replicas agree
 *      (replicaStatus asked of node1: equal non-null digests and the expected entity count) and
 *      every copy that left a preference list has been handed over and dropped (handoff pending
 *      0 on every node, and as many partitions moved as gained the new node).
 */
import { CpuMeter, machineBusySeconds, processCpuSeconds, Samples, sleep, type LatencySummary } from '../stats.js';
import { dataOf, SUBMIT, type ChangeMaker, type GqlResult } from '../support/gql.js';
import { HttpGql } from '../support/http-client.js';
import type { Service } from '../support/services.js';
import { activeUp, clusterView, replicaStatus, startBenchCluster, type BenchCluster, type ClusterNodeService } from '../support/cluster.js';

// ------------------------------------------------------------------ other load

/**
 * CPU used on the machine by processes other than this one and `pids` over a span, as a fraction
 * of one core (ForeignLoadMeter of stats.ts counts only reaped children, not running servers).
 * Other work (tests, builds) competing during one measurement and not the other skews a ratio.
 */
class OtherLoadMeter {
  private readonly started = performance.now();
  private readonly busy = machineBusySeconds();
  private readonly self = process.cpuUsage();
  private readonly ours: number;
  constructor(private readonly pids: readonly number[]) {
    this.ours = this.oursNow();
  }
  private oursNow(): number {
    return this.pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  }
  read(): number {
    const seconds = (performance.now() - this.started) / 1000;
    const self = process.cpuUsage(this.self);
    const used = machineBusySeconds() - this.busy - (self.user + self.system) / 1e6 - (this.oursNow() - this.ours);
    return Math.max(0, used) / seconds;
  }
}

// ------------------------------------------------------------------ answers

interface SubmitResult {
  ccid: string;
  duplicate: boolean;
  error: { code: string } | null;
  change: { version: number; cursor: string } | null;
}

/** What one submitChanges answer says: changes applied, or UNAVAILABLE (with its message); throws on anything else. */
function classify(result: GqlResult, expected: number, retry: boolean): { applied: number; unavailable?: string } {
  if (result.errors?.length) {
    const codes = result.errors.map((e) => e.extensions?.['code']);
    if (codes.every((c) => c === 'UNAVAILABLE')) return { applied: 0, unavailable: result.errors[0]?.message ?? 'UNAVAILABLE' };
    throw new Error(`submitChanges: ${JSON.stringify(result.errors).slice(0, 500)}`);
  }
  const rows = dataOf(result, 'submitChanges')['submitChanges'] as SubmitResult[] | undefined;
  if (!Array.isArray(rows) || rows.length !== expected) throw new Error(`submitChanges: expected ${expected} results, got ${JSON.stringify(rows).slice(0, 300)}`);
  let applied = 0;
  let unavailable: string | undefined;
  for (const r of rows) {
    if (r.error?.code === 'UNAVAILABLE') unavailable ??= 'UNAVAILABLE (per change)';
    // A retry with the same ccids may find some already applied: that is the point of ccids.
    else if (r.error !== null || r.change === null || (r.duplicate && !retry)) throw new Error(`submitChanges: change not applied: ${JSON.stringify(r)}`);
    else applied++;
  }
  return unavailable === undefined ? { applied } : { applied, unavailable };
}

// ------------------------------------------------------------------ (a) write throughput

export interface ClusterWriteOptions {
  clients: number;
  bucket: string;
  buckets: number;
  warmupSeconds: number;
  seconds: number;
  maker: ChangeMaker;
}

export interface ClusterWriteResult {
  nodes: number;
  /** N and W as the cluster reports them (1 and 1 for a single node). */
  replicas: number;
  writeQuorum: number;
  clients: number;
  buckets: number;
  /** Acknowledged (applied) changes per second. */
  perSecond: number;
  requests: number;
  /** Answers of the measured span that were UNAVAILABLE (not acknowledged). */
  unavailable: number;
  /** UNAVAILABLE answers during the warm-up. */
  unavailableWarmup: number;
  firstUnavailable?: string;
  latency: LatencySummary;
  /** Each node's process and JavaScript thread, fractions of one core, during the measured span. */
  nodeCpu: number[];
  nodeMainCpu: number[];
  clientCpu: number;
  /** CPU of other processes on the machine during the measured span (fraction of one core). */
  otherLoad: number;
  /** Cluster only: warn/error log lines of the nodes, and the first few. */
  warnings?: { count: number; first: string[] };
}

/** Warn and error log lines of a cluster's nodes so far. */
function warningsOf(nodes: readonly ClusterNodeService[]): { count: number; first: string[] } {
  const all = nodes.map((n) => n.warnings());
  return { count: all.reduce((sum, w) => sum + w.count, 0), first: all.flatMap((w) => w.first).slice(0, 3) };
}

export async function runClusterWrites(targets: readonly Service[], options: ClusterWriteOptions): Promise<ClusterWriteResult> {
  const perNode = Math.ceil(options.clients / targets.length);
  const https = targets.map((t) => new HttpGql(t.graphqlUrl, t.token, perNode));
  const started = performance.now();
  const measureFrom = started + options.warmupSeconds * 1000;
  const end = measureFrom + options.seconds * 1000;
  const latencies = new Samples(1 << 14);
  const pids = targets.map((t) => t.pid);
  let requests = 0;
  let applied = 0;
  let unavailable = 0;
  let unavailableWarmup = 0;
  let firstUnavailable: string | undefined;
  let failure: unknown;
  let meter: CpuMeter | undefined;
  let cpu: ReturnType<CpuMeter['read']> | undefined;
  let other: OtherLoadMeter | undefined;
  let otherLoad = NaN;
  const meterStart = setTimeout(() => {
    meter = new CpuMeter(pids);
    other = new OtherLoadMeter(pids);
  }, Math.max(0, measureFrom - performance.now()));
  const meterEnd = setTimeout(() => {
    cpu = meter?.read();
    otherLoad = other?.read() ?? NaN;
  }, Math.max(0, end - performance.now()));
  let n = 0;
  const client = async (http: HttpGql) => {
    while (failure === undefined) {
      const sent = performance.now();
      if (sent >= end) return;
      const bucket = `${options.bucket}-${n++ % options.buckets}`;
      const result = await http.execute(SUBMIT, options.maker.variables(bucket, 1));
      const received = performance.now();
      const answer = classify(result, 1, false);
      const measured = received >= measureFrom && received <= end;
      if (answer.unavailable !== undefined) {
        firstUnavailable ??= answer.unavailable;
        if (measured) unavailable++;
        else if (received < measureFrom) unavailableWarmup++;
      }
      if (measured) {
        requests++;
        applied += answer.applied;
        latencies.push(received - sent);
      }
    }
  };
  try {
    await Promise.all(
      Array.from({ length: options.clients }, (_, i) =>
        client(https[i % https.length]!).catch((error: unknown) => {
          failure ??= error;
        }),
      ),
    );
  } finally {
    clearTimeout(meterStart);
    clearTimeout(meterEnd);
    for (const http of https) http.close();
  }
  if (failure !== undefined) throw failure;
  cpu ??= meter?.read();
  if (Number.isNaN(otherLoad)) otherLoad = other?.read() ?? NaN;
  return {
    nodes: targets.length,
    replicas: 1,
    writeQuorum: 1,
    clients: options.clients,
    buckets: options.buckets,
    perSecond: applied / options.seconds,
    requests,
    unavailable,
    unavailableWarmup,
    ...(firstUnavailable !== undefined ? { firstUnavailable } : {}),
    latency: latencies.summary(),
    nodeCpu: cpu?.others ?? pids.map(() => NaN),
    nodeMainCpu: cpu?.mains ?? pids.map(() => NaN),
    clientCpu: cpu?.self ?? NaN,
    otherLoad,
  };
}

/** (a) on a cluster of `size` nodes: start it, run the load over all its nodes, stop it. */
export async function runClusterWritesOnCluster(
  size: number,
  settings: { replicas: number; writeQuorum: number },
  options: ClusterWriteOptions,
  log: (line: string) => void,
  started: (cluster: BenchCluster) => void,
): Promise<ClusterWriteResult> {
  const cluster = await startBenchCluster(size, settings, log);
  started(cluster);
  try {
    const { replicas, writeQuorum } = await clusterView(cluster.nodes[0]!);
    const result = await runClusterWrites(cluster.nodes, options);
    return { ...result, replicas, writeQuorum, warnings: warningsOf(cluster.nodes) };
  } finally {
    await cluster.stop();
  }
}

// ------------------------------------------------------------------ (b) a node joins

export interface JoinOptions {
  /** Nodes before the join. */
  size: number;
  replicas: number;
  entities: number;
  buckets: number;
  /** Changes per request of the load. */
  batchSize: number;
  /** Concurrent loading clients (dealt over the nodes). */
  loadClients: number;
  timeoutSeconds: number;
  maker: ChangeMaker;
  log: (line: string) => void;
  /** Called with the cluster once it runs (for error reports). */
  started?: (cluster: BenchCluster) => void;
}

export interface JoinResult {
  size: number;
  replicas: number;
  writeQuorum: number;
  entities: number;
  buckets: number;
  batchSize: number;
  loadClients: number;
  loadSeconds: number;
  /** Requests answered UNAVAILABLE during the load (each resent with the same ccids), and the first answer. */
  loadRetries: number;
  loadFirstUnavailable?: string;
  /** Partitions handed over during the load, before the join (a stand-in's, after a member was suspected down). */
  movedBeforeJoin: number;
  /** From the new node's start: it listens; every node sees every member ACTIVE and up. */
  listeningSeconds: number;
  membersSeconds: number;
  /** From the new node's start: every bucket's replicas agree (digests, entity counts). */
  agreeSeconds: number;
  /** From the new node's start: the above and every displaced copy handed over (the figure). */
  doneSeconds: number;
  /** From the new node's start: replicas agreed and every node answered `handoff.pending: 0` (the first such poll). */
  pendingZeroSeconds: number;
  /** From the new node's start: the first displaced copy dropped (NaN: none seen by the sampler). */
  firstMovedSeconds: number;
  /** Displaced copies dropped by `pendingZeroSeconds`. */
  movedAtPendingZero: number;
  /** Buckets whose preference list now includes the new node. */
  gained: number;
  /** handoff.moved during the join, summed over the nodes, and per node. */
  moved: number;
  movedByNode: Record<string, number>;
  /** Entities the new node holds once done (sum of its replicas' counts). */
  newNodeEntities: number;
  /** Largest handoff.pending seen on any node during the join. */
  maxPending: number;
  /** CPU of all the nodes together during the join (fraction of one core), and of the bench process. */
  nodesCpu: number;
  clientCpu: number;
  /** CPU of other processes on the machine during the load, and during the join (fractions of one core). */
  otherLoadDuringLoad: number;
  otherLoad: number;
  polls: number;
  /** Warn/error log lines of the nodes over the whole scenario, and the first few. */
  warnings: { count: number; first: string[] };
}

export async function runJoin(options: JoinOptions): Promise<JoinResult> {
  const { log } = options;
  const cluster = await startBenchCluster(options.size, { replicas: options.replicas }, log);
  options.started?.(cluster);
  const sampling = { on: false };
  try {
    const { writeQuorum } = await clusterView(cluster.nodes[0]!);
    const bucketName = (i: number) => `join-${i}`;
    const expected = new Array<number>(options.buckets).fill(0);
    const loadOther = new OtherLoadMeter(cluster.nodes.map((n) => n.pid));
    const load = await loadEntities(cluster.nodes, options, bucketName, expected);
    const otherLoadDuringLoad = loadOther.read();
    log(`loaded ${options.entities} entities over ${options.buckets} buckets in ${load.seconds.toFixed(1)} s (${Math.round(options.entities / load.seconds)}/s, ${load.retries} UNAVAILABLE answers resent)`);

    // Partitions already handed over before the join: stand-ins' handoffs after a node was
    // (wrongly) suspected during the load. The join's count starts from there.
    const movedBefore = Object.fromEntries(await Promise.all(cluster.nodes.map(async (n) => [n.nodeId, (await clusterView(n)).handoff.moved] as const)));
    const movedBeforeJoin = Object.values(movedBefore).reduce((a, b) => a + b, 0);

    // The join: from the new node's spawn.
    const t0 = performance.now();
    const since = () => (performance.now() - t0) / 1000;
    const joining = await cluster.addNode();
    const listeningSeconds = since();
    const meter = new CpuMeter(cluster.nodes.map((n) => n.pid));
    const other = new OtherLoadMeter(cluster.nodes.map((n) => n.pid));
    const all = cluster.nodes;
    const size = all.length;
    const deadline = t0 + options.timeoutSeconds * 1000;
    const late = (what: string) => {
      if (performance.now() > deadline) throw new Error(`join: ${what} after ${options.timeoutSeconds} s`);
    };
    let polls = 0;
    let maxPending = 0;
    // Alongside the checks below: when the first copy is dropped, and whether `pending` ever shows.
    let firstMovedSeconds = NaN;
    let pendingZeroSeconds = NaN;
    sampling.on = true;
    const sampler = (async () => {
      while (sampling.on) {
        const views = await Promise.all(all.map((n) => clusterView(n).catch(() => undefined)));
        const now = since();
        for (const v of views) maxPending = Math.max(maxPending, v?.handoff.pending ?? 0);
        const moved = views.reduce((sum, v, i) => sum + (v === undefined ? 0 : v.handoff.moved - (movedBefore[all[i]!.nodeId] ?? 0)), 0);
        if (moved > 0 && Number.isNaN(firstMovedSeconds)) firstMovedSeconds = now;
        await sleep(100);
      }
    })();

    // 1. Every node sees every member ACTIVE and up.
    for (;;) {
      polls++;
      const views = await Promise.all(all.map((n) => clusterView(n).catch(() => undefined)));
      for (const v of views) maxPending = Math.max(maxPending, v?.handoff.pending ?? 0);
      if (views.every((v) => v !== undefined && activeUp(v) === size)) break;
      late(`members seen: ${views.map((v) => (v === undefined ? 'no answer' : activeUp(v))).join(', ')}`);
      await sleep(100);
    }
    const membersSeconds = since();
    log(`join: ${size} members active and up everywhere at ${membersSeconds.toFixed(1)} s`);

    // 2. Every bucket's replicas agree (asked of node1, whose ring now has every member). With no
    //    writes, a bucket that agrees stays so: it is not asked again.
    const waiting = new Set(expected.map((_, i) => i));
    const lists = new Map<number, string[]>();
    let lastDisagreement = '';
    while (waiting.size > 0) {
      polls++;
      for (const i of [...waiting]) {
        const rows = await replicaStatus(all[0]!, bucketName(i));
        lists.set(i, rows.map((r) => r.nodeId));
        const digests = new Set(rows.map((r) => r.digest));
        if (rows.length === options.replicas && rows.every((r) => r.up && r.digest !== null && r.entities === expected[i]) && digests.size === 1) {
          waiting.delete(i);
        } else lastDisagreement = `${bucketName(i)}: ${JSON.stringify(rows.map((r) => ({ node: r.nodeId, up: r.up, entities: r.entities, lag: r.lag })))}`;
      }
      if (waiting.size === 0) break;
      late(`${waiting.size} buckets' replicas still differ, e.g. ${lastDisagreement}`);
      await sleep(200);
    }
    const agreeSeconds = since();
    // An empty bucket has nothing to hand over (the load gives every bucket some entities).
    const gainedBuckets = [...lists].filter(([i, nodes]) => nodes.includes(joining.nodeId) && (expected[i] ?? 0) > 0).map(([i]) => i);
    const gained = gainedBuckets.length;
    log(`join: every bucket's replicas agree at ${agreeSeconds.toFixed(1)} s (${gained} of ${options.buckets} buckets now on ${joining.nodeId})`);

    // 3. Handoff: nothing pending anywhere, and every displaced copy dropped (each bucket that
    //    gained the new node displaced exactly one old replica), so `pending: 0` is not merely a
    //    round that has not run yet.
    let moved = 0;
    let movedAtPendingZero = 0;
    let movedByNode: Record<string, number> = {};
    for (;;) {
      polls++;
      const views = await Promise.all(all.map((n) => clusterView(n)));
      for (const v of views) maxPending = Math.max(maxPending, v.handoff.pending);
      movedByNode = Object.fromEntries(views.map((v, i) => [all[i]!.nodeId, v.handoff.moved - (movedBefore[all[i]!.nodeId] ?? 0)]));
      moved = Object.values(movedByNode).reduce((a, b) => a + b, 0);
      const pending = views.reduce((sum, v) => sum + v.handoff.pending, 0);
      if (pending === 0 && Number.isNaN(pendingZeroSeconds)) {
        pendingZeroSeconds = since();
        movedAtPendingZero = moved;
      }
      if (pending === 0 && moved >= gained && views.every((v) => activeUp(v) === size)) break;
      late(`handoff: ${pending} pending, ${moved} of ${gained} moved (${JSON.stringify(movedByNode)})`);
      await sleep(100);
    }
    const doneSeconds = since();
    const cpu = meter.read();
    const otherLoad = other.read();
    sampling.on = false;
    await sampler;
    log(`join: handoff done at ${doneSeconds.toFixed(1)} s: ${moved} partitions moved ${JSON.stringify(movedByNode)}`);

    let newNodeEntities = 0;
    for (const i of gainedBuckets) newNodeEntities += expected[i] ?? 0;
    return {
      size: options.size,
      replicas: options.replicas,
      writeQuorum,
      entities: options.entities,
      buckets: options.buckets,
      batchSize: options.batchSize,
      loadClients: options.loadClients,
      loadSeconds: load.seconds,
      loadRetries: load.retries,
      ...(load.firstUnavailable !== undefined ? { loadFirstUnavailable: load.firstUnavailable } : {}),
      movedBeforeJoin,
      listeningSeconds,
      membersSeconds,
      agreeSeconds,
      doneSeconds,
      pendingZeroSeconds,
      firstMovedSeconds,
      movedAtPendingZero,
      gained,
      moved,
      movedByNode,
      newNodeEntities,
      maxPending,
      nodesCpu: cpu.others.reduce((a, b) => a + b, 0),
      clientCpu: cpu.self,
      otherLoadDuringLoad,
      otherLoad,
      polls,
      warnings: warningsOf(cluster.nodes),
    };
  } finally {
    sampling.on = false;
    await cluster.stop();
  }
}

/** Batches of new entities, bucket after bucket round-robin, clients dealt over the nodes; UNAVAILABLE answers are resent with the same ccids. */
async function loadEntities(
  nodes: readonly ClusterNodeService[],
  options: JoinOptions,
  bucketName: (i: number) => string,
  expected: number[],
): Promise<{ seconds: number; retries: number; firstUnavailable?: string }> {
  const https = nodes.map((n) => new HttpGql(n.graphqlUrl, n.token, Math.ceil(options.loadClients / nodes.length)));
  let remaining = options.entities;
  // Smaller requests when there are too few entities for a full one per bucket: every bucket gets some.
  const perRequest = Math.max(1, Math.min(options.batchSize, Math.ceil(options.entities / options.buckets)));
  let next = 0;
  let retries = 0;
  let firstUnavailable: string | undefined;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: options.loadClients }, async (_, c) => {
        const http = https[c % https.length]!;
        while (remaining > 0) {
          const count = Math.min(perRequest, remaining);
          remaining -= count;
          const i = next++ % options.buckets;
          const variables = options.maker.variables(bucketName(i), count);
          for (let attempt = 0; ; attempt++) {
            const answer = classify(await http.execute(SUBMIT, variables), count, attempt > 0);
            if (answer.unavailable === undefined) break;
            retries++;
            firstUnavailable ??= answer.unavailable;
            if (attempt >= 5) throw new Error(`load: still UNAVAILABLE after ${attempt + 1} attempts: ${answer.unavailable}`);
            await sleep(200);
          }
          expected[i] = (expected[i] ?? 0) + count;
        }
      }),
    );
  } finally {
    for (const http of https) http.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return firstUnavailable === undefined ? { seconds, retries } : { seconds, retries, firstUnavailable };
}
