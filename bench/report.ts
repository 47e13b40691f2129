/**
 * Turns measurements into the results table (printed, and written to bench/RESULTS.md with the
 * machine, the settings, per-workload details and what limits each figure).
 */
import { writeFileSync } from 'node:fs';
import { cpus, release, totalmem, type as osType } from 'node:os';
import type { RawLevelResult } from './baselines/raw-level.js';
import type { SocketWritesResult } from './baselines/socket-writes.js';
import { ALL_PARTS, type BenchConfig } from './config.js';
import { formatMs, formatPercent, formatRate, type LatencySummary } from './stats.js';
import type { CatchupResult } from './workloads/catchup.js';
import type { ClosedLoopResult } from './workloads/closed-loop.js';
import type { ClusterWriteResult, JoinResult } from './workloads/cluster.js';
import type { GcKind } from './support/gc-watch.js';
import type { FanoutResult } from './workloads/fanout.js';
import type { HistoryResult } from './workloads/history.js';

export interface Results {
  level?: RawLevelResult;
  /** W2's floor: the cost of one loopback socket write, measured bare. */
  socketWrites?: SocketWritesResult;
  bare: { w1http?: ClosedLoopResult; w1ws?: ClosedLoopResult; fanout?: FanoutResult; fanoutMux?: FanoutResult };
  node: {
    w1http?: ClosedLoopResult;
    w1ws?: ClosedLoopResult;
    /** Diagnostic: W1 over graphql-ws spread over several buckets. */
    w1spread?: ClosedLoopResult;
    w1b?: ClosedLoopResult;
    fanout?: FanoutResult;
    fanoutMux?: FanoutResult;
    catchup?: CatchupResult;
  };
  /** The cluster part: the same write load on one plain node and on a 3-node cluster; a 4th node joining. */
  cluster?: { single?: ClusterWriteResult; three?: ClusterWriteResult; join?: JoinResult };
  /** The history part: the same update-heavy load on a node collecting history, and on one that does not. */
  history?: { collecting?: HistoryResult; baseline?: HistoryResult };
  /** Failures by part name (e.g. 'node w1 http'). */
  errors: Map<string, string>;
  /** Parts skipped by BENCH_ONLY. */
  skipped: Set<string>;
  startedAt: Date;
  seconds: number;
  /** CPU used by other processes on the machine (fraction of a core) in the second before, and during, the run. */
  foreignLoadBefore?: number;
  foreignLoad?: number;
}

type Verdict = 'PASS' | 'FAIL' | 'ERROR' | 'skipped' | 'info';

interface Row {
  workload: string;
  figure: string;
  baseline: string;
  ratio: string;
  goal: string;
  verdict: Verdict;
}

const dash = '—';

/** Bytes as B, kB or MB (powers of 1000, like `du --si`). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a';
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e4) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${Math.round(bytes).toLocaleString('en-US')} B`;
}
const ratioText = (r: number) => (Number.isFinite(r) ? r.toFixed(2) : dash);

function latencyText(l: LatencySummary): string {
  return `p50 ${formatMs(l.p50)} / p99 ${formatMs(l.p99)} / max ${formatMs(l.max)}`;
}

export function buildRows(results: Results, config: BenchConfig): Row[] {
  const rows: Row[] = [];
  const error = (part: string) => results.errors.get(part);
  const missing = (workload: string, parts: string[], goal: string): Row | undefined => {
    const failed = parts.find((p) => error(p) !== undefined);
    if (failed !== undefined) return { workload, figure: 'ERROR (see below)', baseline: dash, ratio: dash, goal, verdict: 'ERROR' };
    if (parts.some((p) => results.skipped.has(p))) return { workload, figure: 'skipped', baseline: dash, ratio: dash, goal, verdict: 'skipped' };
    return undefined;
  };

  // W1: one change per request.
  for (const transport of ['http', 'ws'] as const) {
    const workload = `W1 ${config.clients} clients x 1 change/req, ${transport === 'http' ? 'HTTP' : 'graphql-ws'}`;
    const goal = '>= 0.8 x bare';
    const node = transport === 'http' ? results.node.w1http : results.node.w1ws;
    const bare = transport === 'http' ? results.bare.w1http : results.bare.w1ws;
    const fallback = missing(workload, [`node w1 ${transport}`], goal);
    if (fallback !== undefined || node === undefined) {
      rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal, verdict: 'ERROR' });
      continue;
    }
    const ratio = bare === undefined ? NaN : node.perSecond / bare.perSecond;
    rows.push({
      workload,
      figure: `${formatRate(node.perSecond)} changes/s`,
      baseline: bare === undefined ? 'ERROR' : `${formatRate(bare.perSecond)} mutations/s (bare)`,
      ratio: ratioText(ratio),
      goal,
      verdict: bare === undefined ? 'ERROR' : ratio >= 0.8 ? 'PASS' : 'FAIL',
    });
  }

  // W1b: a batch per request.
  {
    const workload = `W1b ${config.batchClients} clients x ${config.batchSize} changes/req, ${config.writeTransport === 'http' ? 'HTTP' : 'graphql-ws'}`;
    const goal = '>= 0.1 x raw LevelDB';
    const node = results.node.w1b;
    const level = results.level;
    const fallback = missing(workload, ['node w1b'], goal);
    if (fallback !== undefined || node === undefined) rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal, verdict: 'ERROR' });
    else {
      const ratio = level === undefined ? NaN : node.perSecond / level.batchedPutsPerSecond;
      rows.push({
        workload,
        figure: `${formatRate(node.perSecond)} changes/s`,
        baseline: level === undefined ? (results.skipped.has('level') ? 'skipped' : 'ERROR') : `${formatRate(level.batchedPutsPerSecond)} puts/s (raw LevelDB, batches of ${config.batchSize})`,
        ratio: ratioText(ratio),
        goal,
        verdict: level === undefined ? 'ERROR' : ratio >= 0.1 ? 'PASS' : 'FAIL',
      });
    }
  }

  // W2: fanout latency and idle memory.
  {
    const workload = `W2 fanout: ${config.subscribers} subscribers, ${config.rate} changes/s, latency`;
    const goal = 'p99 < 50 ms and <= 0.5 x naive p99';
    const node = results.node.fanout;
    const bare = results.bare.fanout;
    const fallback = missing(workload, ['node w2'], goal);
    if (fallback !== undefined || node === undefined) rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal, verdict: 'ERROR' });
    else {
      const complete = node.delivered === node.expected && node.subscriptionErrors === 0;
      const ratio = bare === undefined ? NaN : node.latency.p99 / bare.latency.p99;
      const text = (f: FanoutResult) =>
        f.censored === 0
          ? latencyText(f.latency)
          : `p50 >= ${formatMs(f.latency.p50)} / p99 >= ${formatMs(f.latency.p99)} / max >= ${formatMs(f.latency.max)} ` +
            `(${formatPercent(f.delivered / f.expected)} delivered in time)`;
      rows.push({
        workload,
        figure: text(node),
        baseline: bare === undefined ? 'ERROR' : `${text(bare)} (naive fanout)`,
        ratio: ratioText(ratio),
        goal,
        verdict: bare === undefined ? 'ERROR' : complete && node.latency.p99 < 50 && ratio <= 0.5 ? 'PASS' : 'FAIL',
      });
    }
    const memWorkload = `W2 memory per idle subscriber (${config.subscribers} subs on ${Math.min(config.sockets, config.subscribers)} sockets, RSS delta)`;
    const memGoal = '< 50 kB';
    if (fallback !== undefined || node === undefined) rows.push({ ...(fallback ?? { figure: 'not run', baseline: dash, ratio: dash, verdict: 'ERROR' as Verdict }), workload: memWorkload, goal: memGoal });
    else {
      rows.push({
        workload: memWorkload,
        figure: `${node.idleKBPerSubscriber.toFixed(1)} kB`,
        baseline: bare === undefined ? 'ERROR' : `${bare.idleKBPerSubscriber.toFixed(1)} kB (bare)`,
        ratio: ratioText(bare === undefined ? NaN : node.idleKBPerSubscriber / bare.idleKBPerSubscriber),
        goal: memGoal,
        verdict: node.idleKBPerSubscriber < 50 ? 'PASS' : 'FAIL',
      });
    }
  }

  // W3: catch-up.
  {
    const goal = '>= 50,000 changes/s';
    const node = results.node.catchup;
    const names = [
      [`W3a catch-up ${config.catchupChanges.toLocaleString('en-US')} changes, paging limit 1000 (HTTP)`, 'paging'],
      [`W3b catch-up ${config.catchupChanges.toLocaleString('en-US')} changes, 1 subscription from null`, 'subscription'],
    ] as const;
    for (const [workload, which] of names) {
      const fallback = missing(workload, ['node w3'], goal);
      if (fallback !== undefined || node === undefined) {
        rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal, verdict: 'ERROR' });
        continue;
      }
      const read = node[which];
      rows.push({
        workload,
        figure: `${formatRate(read.perSecond)} changes/s`,
        baseline: dash,
        ratio: dash,
        goal,
        verdict: read.perSecond >= 50_000 ? 'PASS' : 'FAIL',
      });
    }
  }

  // Cluster: acknowledged changes/s on 3 nodes against 1, and a joining node's takeover.
  {
    const workload = `cluster: ${config.clients} HTTP clients x 1 change/req over ${config.clusterBuckets} buckets, 3 nodes (N=3, W=2), all on this machine`;
    const three = results.cluster?.three;
    const single = results.cluster?.single;
    const fallback = missing(workload, ['cluster w1 3 nodes'], dash);
    if (fallback !== undefined || three === undefined) rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal: dash, verdict: 'ERROR' });
    else {
      rows.push({
        workload,
        figure: `${formatRate(three.perSecond)} acknowledged changes/s` + (three.unavailable > 0 ? ` (+${three.unavailable} UNAVAILABLE)` : ''),
        baseline: single === undefined ? (results.errors.has('cluster w1 single') ? 'ERROR' : dash) : `${formatRate(single.perSecond)} changes/s (1 plain node, same load)`,
        ratio: ratioText(single === undefined ? NaN : three.perSecond / single.perSecond),
        goal: dash,
        verdict: 'info',
      });
    }
  }
  {
    const workload = `cluster: a 4th node joins 3 (N=2) holding ${config.clusterEntities.toLocaleString('en-US')} entities in ${config.clusterJoinBuckets} buckets, time to take over its share`;
    const join = results.cluster?.join;
    const fallback = missing(workload, ['cluster join'], dash);
    if (fallback !== undefined || join === undefined) rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal: dash, verdict: 'ERROR' });
    else {
      rows.push({
        workload,
        figure: `${join.doneSeconds.toFixed(1)} s (${join.moved} partitions moved)`,
        baseline: `${join.loadSeconds.toFixed(1)} s (loading the ${join.entities.toLocaleString('en-US')} entities)`,
        ratio: ratioText(join.doneSeconds / join.loadSeconds),
        goal: dash,
        verdict: 'info',
      });
    }
  }

  // History: bytes on disk per live entity after an update-heavy run, with and without collection.
  {
    const workload =
      `history: ${config.historyEntities.toLocaleString('en-US')} entities, ${config.historyUpdates.toLocaleString('en-US')} updates, bytes on disk per live entity`;
    const collecting = results.history?.collecting;
    const baseline = results.history?.baseline;
    const fallback = missing(workload, ['history collecting'], dash);
    if (fallback !== undefined || collecting === undefined) rows.push(fallback ?? { workload, figure: 'not run', baseline: dash, ratio: dash, goal: dash, verdict: 'ERROR' });
    else {
      rows.push({
        workload,
        figure: `${formatBytes(collecting.bytesPerEntity)} (history collected, 1 s horizon)`,
        baseline: baseline === undefined ? (results.errors.has('history baseline') ? 'ERROR' : dash) : `${formatBytes(baseline.bytesPerEntity)} (defaults: nothing collected)`,
        ratio: ratioText(baseline === undefined ? NaN : collecting.bytesPerEntity / baseline.bytesPerEntity),
        goal: dash,
        verdict: 'info',
      });
    }
  }

  // Diagnostic: W1 over graphql-ws spread over several buckets, against the one-bucket figure.
  if (results.node.w1spread !== undefined) {
    const spread = results.node.w1spread;
    const one = results.node.w1ws;
    rows.push({
      workload: `diag: W1 graphql-ws, ${config.clients} clients over ${config.diagBuckets} buckets`,
      figure: `${formatRate(spread.perSecond)} changes/s`,
      baseline: one === undefined ? dash : `${formatRate(one.perSecond)} changes/s (W1 graphql-ws, 1 bucket)`,
      ratio: ratioText(one === undefined ? NaN : spread.perSecond / one.perSecond),
      goal: dash,
      verdict: 'info',
    });
  } else if (results.errors.has('node w1 ws spread')) {
    rows.push({ workload: 'diag: W1 graphql-ws over several buckets', figure: 'ERROR (see below)', baseline: dash, ratio: dash, goal: dash, verdict: 'ERROR' });
  }

  // Diagnostic: W2 with the subscribers multiplexed over a few sockets.
  const mux = results.node.fanoutMux;
  if (mux !== undefined) {
    const naive = results.bare.fanoutMux;
    const text = (f: FanoutResult) => (f.censored === 0 ? latencyText(f.latency) : `p99 >= ${formatMs(f.latency.p99)} (${formatPercent(f.delivered / f.expected)} delivered in time)`);
    rows.push({
      workload: `diag: W2 fanout, ${config.subscribers} subscribers over ${Math.min(config.muxSockets, config.subscribers)} sockets`,
      figure: text(mux),
      baseline: naive === undefined ? dash : `${text(naive)} (naive fanout)`,
      ratio: ratioText(naive === undefined ? NaN : mux.latency.p99 / naive.latency.p99),
      goal: dash,
      verdict: 'info',
    });
  }

  // Reference figure: W2's floor, one socket write per subscriber and pass.
  const sw = results.socketWrites;
  if (sw !== undefined) {
    rows.push({
      workload: `ref: a ${sw.messageBytes}-byte write to each of ${sw.sockets} loopback TCP sockets, read by another process`,
      figure: `${sw.microsPerWrite.toFixed(1)} µs per write`,
      baseline: dash,
      ratio: dash,
      goal: dash,
      verdict: 'info',
    });
  }

  // Reference figure: synced single puts (what one fsync per change would allow).
  if (results.level !== undefined) {
    rows.push({
      workload: 'ref: raw LevelDB synced single puts (sequential)',
      figure: `${formatRate(results.level.syncedPutsPerSecond)} puts/s`,
      baseline: dash,
      ratio: dash,
      goal: dash,
      verdict: 'info',
    });
  }
  return rows;
}

export function formatTable(rows: Row[]): string {
  const header = ['Workload', 'Figure', 'Baseline', 'Ratio', 'Goal', 'Result'];
  const cells = rows.map((r) => [r.workload, r.figure, r.baseline, r.ratio, r.goal, r.verdict]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

function details(results: Results): string[] {
  const out: string[] = [];
  const cpu = (server: number, main: number, client: number) =>
    `server CPU ${formatPercent(server)} of a core (its JS thread ${formatPercent(main)}), bench client ${formatPercent(client)}`;
  const loop = (name: string, r: ClosedLoopResult | undefined) => {
    if (r === undefined) return;
    out.push(
      `- ${name}: ${formatRate(r.perSecond)}/s over ${r.clients} clients, ${formatRate(r.requestsPerSecond)} requests/s; ` +
        `round trip ${latencyText(r.latency)}; ${cpu(r.serverCpu, r.serverMainCpu, r.clientCpu)}.`,
    );
  };
  if (results.level !== undefined) {
    const l = results.level;
    out.push(
      `- raw LevelDB: ${formatRate(l.batchedPutsPerSecond)} batched puts/s (${l.batchedPuts} puts), ` +
        `${formatRate(l.syncedPutsPerSecond)} synced puts/s (${l.syncedPuts} puts); values of ${l.valueBytes} bytes.`,
    );
  }
  if (results.socketWrites !== undefined) {
    const w = results.socketWrites;
    out.push(
      `- socket writes (bench/baselines/socket-writes.ts): ${w.rounds} rounds, 20 ms apart, of one ${w.messageBytes}-byte write to each of ${w.sockets} ` +
        `loopback sockets, which a child process reads: ${w.microsPerWrite.toFixed(1)} µs per write (median round; least ${w.microsPerWriteMin.toFixed(1)} µs).`,
    );
  }
  loop('bare server, HTTP mutations', results.bare.w1http);
  loop('bare server, graphql-ws mutations', results.bare.w1ws);
  loop('node W1 HTTP', results.node.w1http);
  loop('node W1 graphql-ws', results.node.w1ws);
  loop('node W1 graphql-ws over several buckets (diagnostic)', results.node.w1spread);
  loop('node W1b', results.node.w1b);
  const gcText = (gc: GcKind) => `${gc.count} (${formatMs(gc.totalMs)} in all, longest ${formatMs(gc.maxMs)})`;
  const fanout = (name: string, f: FanoutResult | undefined) => {
    if (f === undefined) return;
    out.push(
      `- ${name}: ${f.subscribers} subscriptions on ${f.sockets} sockets, live in ${f.subscribeSeconds.toFixed(1)} s; ` +
        `RSS ${Math.round(f.rssBeforeKiB / 1024)} MiB before, ${Math.round(f.rssSocketsKiB / 1024)} MiB with the sockets open, ` +
        `${Math.round(f.rssIdleKiB / 1024)} MiB with the subscriptions idle (${f.idleKBPerSubscriber.toFixed(1)} kB per subscriber: ` +
        `${f.socketKB.toFixed(1)} kB per socket + ${f.subscriptionKB.toFixed(1)} kB per subscription); ` +
        `${f.sent} changes sent, ${f.delivered.toLocaleString('en-US')} of ${f.expected.toLocaleString('en-US')} deliveries in time; ` +
        `delivery ${latencyText(f.latency)}, mean ${formatMs(f.latency.mean)}${f.censored > 0 ? ' (missing deliveries counted at their age at the deadline)' : ''}; ` +
        `${formatRate(f.deliveriesPerSecond)} deliveries/s; writer ack ${latencyText(f.writerAck)} (acks still missing at the deadline not counted); ` +
        `per change, first receipt ${latencyText(f.firstDelivery)}, last receipt ${latencyText(f.lastDelivery)}, ` +
        `${f.changesPastP99} of ${f.sent} changes with a receipt past the p99; ` +
        `server GC pauses meanwhile: ${gcText(f.serverGc.minor)} scavenges, ${gcText(f.serverGc.major)} major (mark-compact and marking steps); ` +
        `${cpu(f.serverCpu, f.serverMainCpu, f.clientCpu)} (${formatPercent(f.clientKernelCpu)} in the kernel)` +
        (f.subscriptionErrors > 0 ? `; ${f.subscriptionErrors} subscription errors, first: ${f.firstError}` : '') +
        '.',
    );
  };
  fanout('bare server fanout', results.bare.fanout);
  fanout('node fanout', results.node.fanout);
  fanout('bare server fanout, multiplexed (diagnostic)', results.bare.fanoutMux);
  fanout('node fanout, multiplexed (diagnostic)', results.node.fanoutMux);
  const cw = (name: string, r: ClusterWriteResult | undefined) => {
    if (r === undefined) return;
    const nodes = r.nodeCpu.map((total, i) => `${formatPercent(total)} (JS thread ${formatPercent(r.nodeMainCpu[i] ?? NaN)})`);
    const sum = r.nodeCpu.reduce((a, b) => a + b, 0);
    out.push(
      `- ${name}: ${formatRate(r.perSecond)} acknowledged changes/s over ${r.clients} clients` +
        (r.nodes > 1 ? ` dealt over the ${r.nodes} nodes (N=${r.replicas}, W=${r.writeQuorum})` : '') +
        `, ${r.buckets} buckets; round trip ${latencyText(r.latency)}; ` +
        `${r.unavailable} UNAVAILABLE answers measured (${r.unavailableWarmup} in the warm-up)${r.firstUnavailable !== undefined ? `, first: ${r.firstUnavailable}` : ''}; ` +
        (r.nodes > 1 ? `node CPU ${nodes.join(', ')}, together ${formatPercent(sum)} of a core` : `server CPU ${nodes.join('')}`) +
        `, bench client ${formatPercent(r.clientCpu)}, other processes ${formatPercent(r.otherLoad)}` +
        (r.warnings !== undefined ? `; ${r.warnings.count} warn/error log lines from the nodes${r.warnings.first.length > 0 ? ` (first: ${r.warnings.first.join(' | ')})` : ''}` : '') +
        '.',
    );
  };
  cw('cluster, 1 plain node', results.cluster?.single);
  cw('cluster, 3 nodes', results.cluster?.three);
  const j = results.cluster?.join;
  if (j !== undefined) {
    out.push(
      `- cluster join: ${j.size} nodes with N=${j.replicas}, W=${j.writeQuorum}; load of ${j.entities.toLocaleString('en-US')} new entities over ${j.buckets} buckets ` +
        `in ${j.batchSize}-change requests from ${j.loadClients} clients dealt over the nodes: ${j.loadSeconds.toFixed(1)} s ` +
        `(${formatRate(j.entities / j.loadSeconds)} changes/s, ${j.loadRetries} UNAVAILABLE answers resent with the same ccids` +
        `${j.loadFirstUnavailable !== undefined ? `, first: ${j.loadFirstUnavailable}` : ''}; ${j.movedBeforeJoin} partitions handed over by stand-ins during the load). From the 4th node's start: ` +
        `listening at ${j.listeningSeconds.toFixed(1)} s, ${j.size + 1} members ACTIVE and up on every node at ${j.membersSeconds.toFixed(1)} s, ` +
        `every bucket's replicas in agreement (equal digests, all entities) at ${j.agreeSeconds.toFixed(1)} s, \`handoff.pending\` 0 on every node ` +
        `as well at ${j.pendingZeroSeconds.toFixed(1)} s (${j.movedAtPendingZero} displaced copies dropped by then), first displaced copy dropped at ${Number.isNaN(j.firstMovedSeconds) ? 'n/a' : `${j.firstMovedSeconds.toFixed(1)} s`}, handoff done ` +
        `(pending 0 everywhere, ${j.moved} displaced copies dropped: ${Object.entries(j.movedByNode).map(([n, m]) => `${n} ${m}`).join(', ')}) at ${j.doneSeconds.toFixed(1)} s; ` +
        `${j.gained} of ${j.buckets} buckets gained the new node (${j.newNodeEntities.toLocaleString('en-US')} entities now on it); ` +
        `most pending handoffs seen on one node: ${j.maxPending}; nodes' CPU during the join ${formatPercent(j.nodesCpu)} of a core together, ` +
        `bench client ${formatPercent(j.clientCpu)} (${j.polls} polls), other processes ${formatPercent(j.otherLoad)} (${formatPercent(j.otherLoadDuringLoad)} during the load); ` +
        `${j.warnings.count} warn/error log lines from the nodes${j.warnings.first.length > 0 ? ` (first: ${j.warnings.first.join(' | ')})` : ''}.`,
    );
  }
  const h = (name: string, r: HistoryResult | undefined) => {
    if (r === undefined) return;
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    out.push(
      `- ${name}: ${r.entities.toLocaleString('en-US')} entities of ${r.dataBytes} bytes of JSON created in ${r.createSeconds.toFixed(1)} s, then ` +
        `${r.updates.toLocaleString('en-US')} updates (${r.clients} clients x ${r.batchSize} changes/req) in ${r.updateSeconds.toFixed(1)} s ` +
        `(${formatRate(r.updatesPerSecond)} updates/s${r.updateSeconds > 150 ? ', over 2.5 minutes: BENCH_HISTORY_UPDATES makes the run shorter' : ''}; node CPU ${formatPercent(r.nodeCpu)} of a core, its JavaScript thread ${formatPercent(r.nodeMainCpu)}, bench client ${formatPercent(r.clientCpu)}); ` +
        `data directory during the load (MB, every ${(r.updates / Math.max(1, r.bytesDuringLoad.length)).toLocaleString('en-US')} updates): ${r.bytesDuringLoad.map(mb).join(', ')}; ` +
        `${mb(r.bytesAtLoadEnd)} MB at the load's end, ${mb(r.bytes)} MB in ${r.files} files (${mb(r.walBytes)} MB of it the write-ahead log) once the collection counter had been still for 3 s ` +
        `(${r.settleSeconds.toFixed(1)} s after the load) = ${formatBytes(r.bytesPerEntity)} per live entity (${r.liveEntities.toLocaleString('en-US')} live, every one at the version its client was answered; ` +
        `${formatBytes((r.bytes - r.walBytes) / r.liveEntities)} without the log); ` +
        `collected: ${r.collected.scanned.toLocaleString('en-US')} records scanned, ${r.collected.superseded.toLocaleString('en-US')} superseded removed, ` +
        `${r.collected.tombstones.toLocaleString('en-US')} tombstones, ${r.collected.ccids.toLocaleString('en-US')} ccids forgotten, so ` +
        `${r.recordsLeft.toLocaleString('en-US')} change records left of ${(r.entities + r.updates).toLocaleString('en-US')} written (${r.entities.toLocaleString('en-US')} at best); ` +
        (r.readFromStart === undefined
          ? ''
          : `a reader paging the changes from the start (limit 1000) got ${r.readFromStart.changes.toLocaleString('en-US')} changes in ${r.readFromStart.pages} page${r.readFromStart.pages === 1 ? '' : 's'}` +
            (r.readFromStart.errorCode === undefined ? '; ' : `, then ${r.readFromStart.errorCode} for the next page; `)) +
        `${r.versionsOfOne} versions retained of one entity.`,
    );
  };
  h('history, collecting (1 s horizon and ccid window, a round every second)', results.history?.collecting);
  h('history, baseline (defaults: 30-day horizon)', results.history?.baseline);
  const c = results.node.catchup;
  if (c !== undefined) {
    out.push(`- W3 fill: ${c.written.toLocaleString('en-US')} changes in ${c.fillSeconds.toFixed(1)} s (${formatRate(c.fillPerSecond)} changes/s).`);
    out.push(
      `- W3a paging: ${c.paging.requests} pages in ${c.paging.seconds.toFixed(2)} s; ${cpu(c.paging.serverCpu, c.paging.serverMainCpu, c.paging.clientCpu)}.`,
    );
    out.push(`- W3b subscription: ${c.subscription.seconds.toFixed(2)} s; ${cpu(c.subscription.serverCpu, c.subscription.serverMainCpu, c.subscription.clientCpu)}.`);
  }
  return out;
}

export function machine(): string[] {
  const cpu = cpus();
  return [
    `- CPU: ${cpu[0]?.model ?? 'unknown'}, ${cpu.length} cores`,
    `- Memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- OS: ${osType()} ${release()}`,
    `- Node: ${process.version}`,
  ];
}

export function writeResults(path: string, results: Results, config: BenchConfig, rows: Row[], limits: string): void {
  const settings = [
    `BENCH_SECONDS=${config.seconds}`,
    `BENCH_WARMUP_SECONDS=${config.warmupSeconds}`,
    `BENCH_CLIENTS=${config.clients}`,
    `BENCH_BATCH_CLIENTS=${config.batchClients}`,
    `BENCH_BATCH=${config.batchSize}`,
    `BENCH_SUBSCRIBERS=${config.subscribers}`,
    `BENCH_SOCKETS=${config.sockets}`,
    `BENCH_RATE=${config.rate}`,
    `BENCH_FANOUT_SECONDS=${config.fanoutSeconds}`,
    `BENCH_FANOUT_WARMUP_SECONDS=${config.fanoutWarmupSeconds}`,
    `BENCH_CATCHUP_CHANGES=${config.catchupChanges}`,
    `BENCH_FILL_CLIENTS=${config.fillClients}`,
    `BENCH_LEVEL_SECONDS=${config.levelSeconds}`,
    `BENCH_VALUE_BYTES=${config.valueBytes}`,
    `BENCH_WRITE_TRANSPORT=${config.writeTransport}`,
    `BENCH_CLUSTER_BUCKETS=${config.clusterBuckets}`,
    `BENCH_CLUSTER_ENTITIES=${config.clusterEntities}`,
    `BENCH_CLUSTER_JOIN_BUCKETS=${config.clusterJoinBuckets}`,
    `BENCH_CLUSTER_BATCH=${config.clusterBatch}`,
    `BENCH_CLUSTER_LOAD_CLIENTS=${config.clusterLoadClients}`,
    `BENCH_HISTORY_ENTITIES=${config.historyEntities}`,
    `BENCH_HISTORY_UPDATES=${config.historyUpdates}`,
    `BENCH_HISTORY_CLIENTS=${config.historyClients}`,
  ];
  const errors = [...results.errors].map(([part, message]) => `- **${part}**: ${message.replace(/\n/g, '\n  ')}`);
  const text = [
    '# syncgraph benchmark results',
    '',
    `Generated by \`npm run bench\` (bench/run.ts) on ${results.startedAt.toISOString()}; the run took ${Math.round(results.seconds)} s.`,
    '',
    '## Machine',
    '',
    ...machine(),
    `- Other load on the machine: ${formatPercent(results.foreignLoadBefore ?? NaN)} of a core just before the run, ` +
      `${formatPercent(results.foreignLoad ?? NaN)} on average during it (/proc/stat busy time minus the bench's processes)` +
      ((results.foreignLoad ?? 0) > 0.1 ? ': **other work competed with the bench; its figures are pessimistic**' : ''),
    '',
    '## Settings',
    '',
    settings.map((s) => `\`${s}\``).join(', ') + (config.only.size < ALL_PARTS.length ? `; BENCH_ONLY=${[...config.only].join(',')}` : ''),
    '',
    '## Method',
    '',
    ...method(config),
    '',
    '## Results',
    '',
    formatTable(rows),
    '',
    '## Details',
    '',
    ...details(results),
    ...(errors.length > 0 ? ['', '## Errors', '', ...errors] : []),
    '',
    '## What limits each figure',
    '',
    limits,
    '',
  ].join('\n');
  writeFileSync(path, text);
}

function method(config: BenchConfig): string[] {
  const sockets = Math.min(config.sockets, config.subscribers);
  return [
    '- Servers run as child processes on 127.0.0.1: the node (`bin/syncgraph.js start`, fresh data directory) and the bare ' +
      'graphql-yoga + graphql-ws server (bench/baselines/bare-server.ts: constant `submitChanges`, a `publish` mutation feeding ' +
      "yoga's in-memory pubsub, whose iterator is the `changes` subscription). The load comes from this process: node:http " +
      'with one keep-alive connection per client, and a minimal graphql-ws protocol client on a WebSocket client of its own (bench/support/ws-wire.ts: frames parsed in place, no stream or event per message, so that reading 1,000 sockets costs the load generator little of the cores it shares with the server).',
    `- Every change creates a new entity (unique key, baseVersion 0) with JSON data of about ${config.valueBytes} bytes; ` +
      'every answer is checked (no error, no duplicate, a version assigned), and any failure fails the workload.',
    `- W1/W1b: closed loop (each client awaits its answer before sending again), ${config.warmupSeconds} s warm-up then ` +
      `${config.seconds} s measured; requests completing in the measured span are counted. W1 and the bare baseline use one bucket.`,
    `- W2: ${config.subscribers} subscriptions dealt round-robin over ${sockets} sockets (${config.subscribers === sockets ? 'one socket per subscriber, like real clients' : 'several subscriptions per socket'}), ` +
      `from the bucket's head cursor; probe changes until every subscriber has one; ${config.fanoutWarmupSeconds} s of the same writes unmeasured ` +
      '(a node that was just idle has a shrunken young generation and collects garbage more often for its first seconds of load), all delivered; ' +
      `then an open-loop writer sends ${config.rate} changes/s (one per request, ${config.writeTransport === 'http' ? 'HTTP' : 'graphql-ws'}) for ${config.fanoutSeconds} s, each with its send time; ` +
      `latency = receipt - send time, for every subscriber and change (the client reads the operation and the send time off each delivery's frame, decoding in full only what is not a plain delivery: both servers frame them alike); deliveries still missing ${config.drainSeconds} s after the last send ` +
      'count with their age at that moment (so percentiles are then lower bounds, marked >=). ' +
      "Per change (Details), its first and last receipt over all subscribers, to tell a late commit (first receipt late) from a slow fanout (last late, first not); " +
      "and the server's GC pauses meanwhile, from a PerformanceObserver of `gc` entries installed through its inspector (bench/support/gc-watch.ts).",
    '- Idle memory: VmRSS of the server from /proc before opening the sockets, after opening them, and with the ' +
      'subscriptions live, each read after a 1-2 s quiet pause and two full GCs (HeapProfiler.collectGarbage through the server\'s inspector, started with --inspect=127.0.0.1:0).',
    `- W3: the bucket is filled with ${config.batchSize}-change requests from ${config.fillClients} clients, then read from the start ` +
      'by paging (limit 1000, one page after the other) and by one subscription from `since: null`, both selecting ' +
      '`key version cursor data`.',
    `- Cluster: every server of this part is fresh and runs alone on the machine (the servers of the other parts are stopped first). ` +
      `(a) The W1 HTTP load (${config.clients} clients, closed loop, one new entity per request, unique ccids), spread round-robin ` +
      `over ${config.clusterBuckets} buckets so that partitions have different owners, ${config.warmupSeconds} s warm-up then ${config.seconds} s measured, against a plain node ` +
      '(no cluster flags), then against a 3-node cluster on 127.0.0.1 (`--replicas 3 --write-quorum 2`), client i sending to node i mod 3 ' +
      '(so two requests in three reach a node that forwards them to the owner). A change counts once acknowledged; an UNAVAILABLE ' +
      'answer (fewer than W copies confirmed in time) is counted apart, any other error fails the workload. All three nodes, and the load ' +
      'generator, share this machine\'s cores: the ratio measures what replication costs, not what more machines would give. ' +
      `(b) A 3-node cluster with \`--replicas 2\` (so a 4th node really takes a share), loaded with ${config.clusterEntities.toLocaleString('en-US')} new entities over ` +
      `${config.clusterJoinBuckets} buckets (${config.clusterBatch}-change requests, ${config.clusterLoadClients} clients dealt over the nodes); then a 4th node is started ` +
      "with the same keys and the others as --peers, and the clock runs from its spawn until: every node's `cluster` query shows 4 " +
      "members ACTIVE and up; `replicaStatus` of every bucket, asked of node1, shows its replicas up with equal non-null digests and " +
      'every entity written to it; and `handoff.pending` is 0 on every node with as many partitions moved (`handoff.moved`, summed) as ' +
      'buckets gained the new node (each of those displaced one old replica, whose copy must be handed over and dropped: `pending` alone ' +
      'reads 0 until a handoff round has run). Polls every 100-200 ms; a bucket that agreed is not asked again (nothing writes).',
    `- History: two fresh single nodes, one after the other and alone on the machine: (a) \`--history-horizon-seconds 1 --ccid-window-seconds 1 ` +
      '--history-interval-seconds 1` (superseded change records, tombstones and ccids older than 1 s collected, a round every second), ' +
      '(b) the defaults (30 days: nothing collected during the run). On each, ' +
      `${config.historyEntities.toLocaleString('en-US')} entities are created, then updated round-robin until ${config.historyUpdates.toLocaleString('en-US')} updates are acknowledged, ` +
      `in ${config.batchSize}-change requests from ${config.historyClients} closed-loop HTTP clients; each key belongs to one client, which sends the version ` +
      'the node last answered for it as `baseVersion` (no merge) and the whole object with a counter changed as `data`; every answer is ' +
      'checked (applied, no duplicate, no no-op, version = baseVersion + 1). Then `syncgraph_history_collected_total{kind="scanned"}` ' +
      '(GET /metrics) is polled every 250 ms until it has not moved for 3 s, and the figure is the sum of the file sizes in `<data>/db` ' +
      'divided by the bucket\'s entity count (replicaStatus), checked against the entities listed, each at the version its client was answered.',
  ];
}

/** Printed after the table on the console. */
export function consoleDetails(results: Results): string {
  const lines = details(results);
  for (const [part, message] of results.errors) lines.push(`- ERROR ${part}: ${message}`);
  return lines.join('\n');
}
