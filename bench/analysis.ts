/**
 * "What limits each figure": one paragraph built from this run's measurements (CPU of the server
 * process and of its JavaScript thread alone, bench client CPU, the several-buckets diagnostic)
 * and from how the node works (see src/engine/partition.ts, src/storage/group-commit.ts).
 */
import { defaultRetention, isRetained } from '../src/model/retention.js';
import type { BenchConfig } from './config.js';
import { formatBytes, type Results } from './report.js';
import { formatMs, formatPercent, formatRate } from './stats.js';
import type { HistoryResult } from './workloads/history.js';

/** A JavaScript thread this busy is the bottleneck. */
const saturated = (fraction: number) => Number.isFinite(fraction) && fraction >= 0.85;

export function whatLimits(results: Results, config: BenchConfig): string {
  const parts: string[] = [
    'Client and servers share the machine, so every figure is also bounded by the bench process\'s own CPU (given per ' +
      'workload in Details, next to the server\'s: the whole process, and its JavaScript thread alone, the rest being the ' +
      'libuv pool running LevelDB reads, writes and fsyncs, GC helpers and LevelDB compaction).',
  ];

  const bare = results.bare.w1ws ?? results.bare.w1http;
  if (bare !== undefined) {
    parts.push(
      `Bare server: its JavaScript thread ran at ${formatPercent(bare.serverMainCpu)} on graphql-ws mutations, so the ` +
        'baseline is the CPU cost of yoga/envelop parse-validate-execute per operation (over HTTP, plus the WHATWG ' +
        'Request/Response adaptation per request).',
    );
  }

  const w1 = results.node.w1ws ?? results.node.w1http;
  const spread = results.node.w1spread;
  if (w1 !== undefined) {
    const oneBucket = results.node.w1ws;
    const gain = spread !== undefined && oneBucket !== undefined ? spread.perSecond / oneBucket.perSecond : NaN;
    const spreadText = Number.isFinite(gain)
      ? ` The same load spread over ${config.diagBuckets} buckets gave ${formatRate(spread?.perSecond ?? NaN)} changes/s (${gain.toFixed(2)}x).`
      : '';
    let verdict: string;
    if (saturated(w1.serverMainCpu)) {
      verdict =
        ' The JavaScript thread is saturated: the figure is the per-change CPU cost on that thread (GraphQL, validation, ' +
        'diff, encoding the records, LevelDB call overhead), against a baseline that does only the GraphQL part.';
    } else if (gain > 1.3) {
      verdict =
        ' The JavaScript thread has idle time and more buckets help: the limit is the per-bucket ordering (the changes of ' +
        'one bucket are computed one at a time, each waiting for what it reads), not CPU.';
    } else {
      verdict =
        ` The JavaScript thread has idle time${Number.isFinite(gain) ? ' and more buckets do not help' : ''}: the rest is ` +
        `LevelDB work off that thread (process minus JavaScript thread: ${formatPercent(w1.serverCpu - w1.serverMainCpu)} of a ` +
        'core, for reads, batch writes and one fsync per group commit) and each change waiting for the synced batch that carries it.';
    }
    parts.push(`W1: the node's JavaScript thread ran at ${formatPercent(w1.serverMainCpu)} (process ${formatPercent(w1.serverCpu)}).` + spreadText + verdict);
  }

  const w1b = results.node.w1b;
  if (w1b !== undefined) {
    parts.push(
      `W1b: JavaScript thread ${formatPercent(w1b.serverMainCpu)}, process ${formatPercent(w1b.serverCpu)}; per change the node ` +
        'parses and validates the input, diffs it, and writes three synced records of a new entity (the entity, the change log record, the ccid index entry), against ' +
        'a raw baseline that does one unsynced put per value in batches, so the ratio measures the engine\'s per-change ' +
        'work rather than LevelDB.',
    );
  }

  const fan = results.node.fanout;
  const bareFan = results.bare.fanout;
  if (fan !== undefined) {
    const needed = config.subscribers * config.rate;
    const keptUp = fan.censored === 0 && fan.latency.p99 < 1000;
    parts.push(
      `W2: ${config.subscribers} subscribers at ${config.rate} changes/s need ${needed.toLocaleString('en-US')} deliveries/s; the node ` +
        `managed ${formatRate(fan.deliveriesPerSecond)}/s with its JavaScript thread at ${formatPercent(fan.serverMainCpu)}` +
        (bareFan === undefined ? '' : `, the naive fanout ${formatRate(bareFan.deliveriesPerSecond)}/s at ${formatPercent(bareFan.serverMainCpu)}`) +
        '. The naive fanout executes the subscription selection, serialises, frames and writes every delivery separately, ' +
        'through a chain of promises per subscriber. The node executes and encodes a change once, hands it to each live ' +
        'subscription synchronously (one fused step per subscriber, the value computed once for all), frames it into the socket\'s outbox and writes each socket once per pass (at most one ' +
        'pass every 20 ms while changes keep coming), so under load one socket write carries several changes; what is left ' +
        'is mostly the kernel\'s cost of a loopback TCP write per socket per pass, and the client reading them. ' +
        (results.socketWrites !== undefined
          ? `Measured bare (the ref row), one such write costs ${results.socketWrites.microsPerWrite.toFixed(1)} µs here: at one pass every 20 ms, ` +
            `${results.socketWrites.sockets} sockets take ${formatPercent((results.socketWrites.sockets * 50 * results.socketWrites.microsPerWrite) / 1e6)} of a core in socket writes alone, ` +
            `and a pass ${formatMs((results.socketWrites.sockets * results.socketWrites.microsPerWrite) / 1000)} from its first socket to its last. `
          : '') +
        (keptUp
          ? 'The node kept up, so its latency is the fsync before a change is published plus one pass over the subscribers.'
          : `Where that cost times the delivery rate exceeds what one thread can do, a backlog builds for as long as the writer ` +
            `runs, and latency grows with it; writes queue behind the fanout on the same thread (node writer ack p50 ` +
            `${(fan.writerAck.p50 / 1000).toFixed(1)} s).`) +
        (fan.clientCpu >= 0.7
          ? ` The bench client was busy too (${formatPercent(fan.clientCpu)} of a core, ${formatPercent(fan.clientKernelCpu)} of it in the kernel reading ${fan.sockets} sockets), so the figure is partly bounded by the load generator; fewer sockets (BENCH_SOCKETS) make it cheaper.`
          : ` The bench client was not the limit (${formatPercent(fan.clientCpu)} of a core).`) +
        (results.node.fanoutMux !== undefined
          ? ` With the same subscribers multiplexed over ${results.node.fanoutMux.sockets} sockets (the diagnostic row), the node's p99 is ` +
            `${formatMs(results.node.fanoutMux.latency.p99)}: at one socket per subscriber, what is left is the kernel's socket writes and the client's reads.`
          : '') +
        ' Idle memory is the growth of the server\'s RSS with the sockets and subscriptions open (split in Details), ' +
        'each reading taken after full GCs forced through the server\'s inspector.',
    );
  }

  const c = results.node.catchup;
  if (c !== undefined) {
    parts.push(
      `W3: paging ran the node's JavaScript thread at ${formatPercent(c.paging.serverMainCpu)} and the subscription at ` +
        `${formatPercent(c.subscription.serverMainCpu)}: a read is a LevelDB range scan, a JSON decode and a cursor encoding ` +
        'per change, then GraphQL completion and serialisation of every field; the subscription also frames one graphql-ws ' +
        '`next` message per change instead of one response per 1,000 (written in batches of up to 64 KiB). Filling the bucket is W1b again ' +
        `(${formatRate(c.fillPerSecond)} changes/s here).`,
    );
  }
  const cSingle = results.cluster?.single;
  const cThree = results.cluster?.three;
  if (cThree !== undefined) {
    const sum = cThree.nodeCpu.reduce((a, b) => a + b, 0);
    const ratio = cSingle === undefined ? NaN : cThree.perSecond / cSingle.perSecond;
    // Other processes' CPU during the measurement counts too: the cores are shared with them.
    const busy = sum + cThree.clientCpu + (Number.isFinite(cThree.otherLoad) ? cThree.otherLoad : 0);
    parts.push(
      `Cluster writes: the 3-node cluster acknowledged ${formatRate(cThree.perSecond)} changes/s` +
        (cSingle === undefined ? '' : ` against ${formatRate(cSingle.perSecond)} for one plain node under the same load (${ratio.toFixed(2)}x)`) +
        '. The three nodes and the load generator share this machine\'s two cores, so the ratio measures what replication costs, ' +
        'not what spreading the nodes over machines would give: each change is applied and fsynced by three processes instead of ' +
        'one (the owner applies it, pushes it to both other replicas and answers once one of them has it durably: W=2), and two ' +
        'requests in three first reach a node that is not the owner and forward it there over the peer link. ' +
        `The nodes used ${formatPercent(sum)} of a core together (JavaScript threads ${cThree.nodeMainCpu.map(formatPercent).join(', ')})` +
        (cSingle === undefined ? '' : ` where the plain node used ${formatPercent(cSingle.nodeCpu[0] ?? NaN)} (JavaScript thread ${formatPercent(cSingle.nodeMainCpu[0] ?? NaN)})`) +
        `, the bench client ${formatPercent(cThree.clientCpu)}` +
        (cSingle === undefined
          ? ''
          : `; per acknowledged change that is ${formatMs((sum / cThree.perSecond) * 1000)} of node CPU against ${formatMs(((cSingle.nodeCpu[0] ?? NaN) / cSingle.perSecond) * 1000)} ` +
            `(${(sum / cThree.perSecond / ((cSingle.nodeCpu[0] ?? NaN) / cSingle.perSecond)).toFixed(1)}x, for three copies)`) +
        (busy >= 1.6
          ? ': the two cores are close to saturated' +
            (cThree.otherLoad > 0.1 ? ` (with the other processes' ${formatPercent(cThree.otherLoad)})` : '') +
            ', so the cluster\'s figure is the machine\'s CPU divided by the work of a change done three times plus forwarding ' +
            `(round trip p50 ${formatMs(cThree.latency.p50)}${cSingle === undefined ? '' : ` against ${formatMs(cSingle.latency.p50)} on the plain node`}).`
          : `: the cores are not saturated, so with ${cThree.clients} clients in a closed loop the rate is bounded by each write's serial chain ` +
            `(forward, apply and fsync on the owner, push, fsync on a replica, answer back): round trip p50 ${formatMs(cThree.latency.p50)}` +
            (cSingle === undefined ? '' : ` against ${formatMs(cSingle.latency.p50)} on the plain node`) +
            '.') +
        ((cSingle?.otherLoad ?? 0) > 0.1 || cThree.otherLoad > 0.1
          ? ` Other processes used ${formatPercent(cSingle?.otherLoad ?? NaN)} of a core during the 1-node measurement and ${formatPercent(cThree.otherLoad)} ` +
            'during the 3-node one: those figures, and so their ratio, are skewed by that competition.'
          : '') +
        (cThree.unavailable + cThree.unavailableWarmup > 0
          ? ` ${cThree.unavailable + cThree.unavailableWarmup} writes were answered UNAVAILABLE (fewer than W copies confirmed within the write timeout): under this load a peer's answers came late enough for it to be suspected down.`
          : ' No write was answered UNAVAILABLE.'),
    );
  }
  const join = results.cluster?.join;
  if (join !== undefined) {
    parts.push(
      `Cluster join: the 4th node listened ${join.listeningSeconds.toFixed(1)} s after its start and every node counted it as an active member at ` +
        `${join.membersSeconds.toFixed(1)} s; the replicas of all ${join.buckets} buckets agreed at ${join.agreeSeconds.toFixed(1)} s and the last displaced copy was ` +
        `dropped at ${join.doneSeconds.toFixed(1)} s (${join.gained} buckets, ${join.newNodeEntities.toLocaleString('en-US')} entities, gained the new node; ${join.moved} copies moved off the old nodes). ` +
        'A join moves data only in the nodes\' background rounds (src/replication/cluster.ts: one anti-entropy and handoff round per node, ' +
        'started 5 s after the previous one ended, and one at once when the ring changes; in a round, a node compares version vectors with each peer for the partitions they share and pushes ' +
        'what is missing in requests of 500 records, partition after partition, and hands over the partitions it no longer replicates one at a ' +
        'time, dropping each copy once every replica holds it). ' +
        (join.nodesCpu < 1.2
          ? `The nodes used ${formatPercent(join.nodesCpu)} of a core together during the join, so the time is mostly those rounds' pacing and ` +
            'their sequential pushes and fsyncs, not CPU.'
          : `The nodes used ${formatPercent(join.nodesCpu)} of a core together during the join: the two cores, more than the rounds' pacing, bound the transfer.`) +
        (join.maxPending === 0 && join.moved > 0
          ? ` \`handoff.pending\` never read above 0 on any node during the join (polled every ~100 ms) although ${join.moved} copies were waiting to be ` +
            'handed over: a node sets it only at the end of a handoff round, for the partitions that round could not finish, so it reads 0 ' +
            `before the first round after a ring change. Members, digests and \`pending: 0\` alone were all true at ${join.pendingZeroSeconds.toFixed(1)} s, ` +
            `when ${join.movedAtPendingZero} of the ${join.gained} displaced copies had been dropped. ` +
            'The figure therefore also waits until `handoff.moved` has counted every displaced copy.'
          : '') +
        ` For scale, loading the ${join.entities.toLocaleString('en-US')} entities (each written to ${join.replicas} replicas) took ${join.loadSeconds.toFixed(1)} s.` +
        (join.otherLoad > 0.1 || join.otherLoadDuringLoad > 0.1
          ? ` Other processes used ${formatPercent(join.otherLoadDuringLoad)} of a core during the load and ${formatPercent(join.otherLoad)} during the join: both times are longer for it.`
          : '') +
        (join.loadRetries > 0 || join.movedBeforeJoin > 0
          ? ` During the load ${join.loadRetries} requests were answered UNAVAILABLE (resent with the same ccids) and ${join.movedBeforeJoin} partitions were ` +
            'handed back by stand-ins: a node was suspected down for a moment while the cores were busy.'
          : ''),
    );
  }
  const history = historyParagraph(results.history?.collecting, results.history?.baseline);
  if (history !== undefined) parts.push(history);
  if ((results.foreignLoad ?? 0) > 0.1) {
    parts.push(
      `Other processes used ${formatPercent(results.foreignLoad ?? NaN)} of a core on average during this run, so every ` +
        'figure above is depressed by that competition for the two cores.',
    );
  }
  return parts.join(' ');
}

/** Versions of an entity at `latest` that the default retention keeps (src/model/retention.ts). */
function retainedVersions(latest: number): number {
  let kept = 0;
  for (let v = 1; v <= latest; v++) if (isRetained(v, latest, defaultRetention)) kept++;
  return kept;
}

/** The history part: what each node keeps, what collection removes, and what LevelDB does with it. */
function historyParagraph(collecting: HistoryResult | undefined, baseline: HistoryResult | undefined): string | undefined {
  const any = collecting ?? baseline;
  if (any === undefined) return undefined;
  const perEntity = any.updates / any.entities;
  // Every entity gets about the same number of updates (round-robin): its latest version is 1 + that.
  const latest = 1 + Math.round(perEntity);
  const versions = retainedVersions(latest);
  const written = any.entities + any.updates;
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const text: string[] = [
    `History: each of the ${any.entities.toLocaleString('en-US')} entities was written about ${Math.round(perEntity) + 1} times (${any.dataBytes} bytes of JSON each time). ` +
      'Whatever the history setting, the node keeps per entity its state (the latest data) and its retained versions, each a copy of the whole object: ' +
      `the ${defaultRetention.versionMax} most recent, then every 10th (at most ${defaultRetention.version10Max} of those), so ${versions} versions at version ${latest} ` +
      `(the \`versions\` query answered ${any.versionsOfOne} for one entity). Without collection it also keeps every change record (data, diff and metadata) and, ` +
      `under each ccid, a second copy of the record for idempotency: ${written.toLocaleString('en-US')} of each here. ` +
      'Collection removes a change record once it is older than the horizon and a later record of its entity has superseded it, a tombstone with its entity ' +
      'and versions (none here: nothing was deleted), and the ccid copies once older than the ccid window; at best one change record per live entity is left.',
  ];
  if (collecting !== undefined) {
    text.push(
      `With a 1 s horizon the node removed ${collecting.collected.superseded.toLocaleString('en-US')} superseded records and forgot ${collecting.collected.ccids.toLocaleString('en-US')} ccids, ` +
        `leaving ${collecting.recordsLeft.toLocaleString('en-US')} change records where one per entity (${collecting.entities.toLocaleString('en-US')}) would be the least.`,
    );
    const left = collecting.recordsLeft - collecting.entities;
    if (left > collecting.entities * 0.05) {
      text.push(
        `The ${left.toLocaleString('en-US')} extra are records collection had not removed when its counter settled (records younger than the horizon, or ` +
          'superseded since the last round): a round removes what a later record superseded and keeps an entity\'s latest record, which the write that ' +
          'later supersedes it removes (the entity state keeps its position).',
      );
    }
    const read = collecting.readFromStart;
    if (read?.errorCode !== undefined) {
      text.push(
        `A reader paging the collected bucket's changes from the start got ${read.changes.toLocaleString('en-US')} changes in ${read.pages} page${read.pages === 1 ? '' : 's'}, then ${read.errorCode}: ` +
          'the cursor of a page read from the start lies before `historyFrom`, which the node takes for an expired cursor, so a reader paging the change stream ' +
          'from the start cannot get past its first page once history has been collected.',
      );
    }
  }
  text.push(
    'On disk, LevelDB turns a delete into one more write (a tombstone) and frees the space of a deleted key only when a compaction rewrites the file that holds it, ' +
      'together with the tombstone, into the next level: until then the collected records still take their space, plus their tombstones. Compactions run as levels ' +
      'fill up, so after the load stops, garbage in files no compaction has reached stays. The figure also counts the write-ahead log, which holds what the memtable ' +
      'holds, up to its 64 MiB, before it becomes a table' +
      (collecting !== undefined && baseline !== undefined
        ? ` (${mb(collecting.walBytes)} with collection, ${mb(baseline.walBytes)} without; without the log, ${formatBytes((collecting.bytes - collecting.walBytes) / collecting.liveEntities)} and ` +
          `${formatBytes((baseline.bytes - baseline.walBytes) / baseline.liveEntities)} per entity)`
        : '') +
      '; it grows and shrinks by tens of MB as the memtable fills and is written out (see the readings during the load in Details), so a reading at another moment can differ by that much.',
  );
  if (collecting !== undefined && baseline !== undefined) {
    text.push(
      `Collection costs write throughput too: ${formatRate(collecting.updatesPerSecond)} updates/s with it against ${formatRate(baseline.updatesPerSecond)} without ` +
        `(node CPU ${formatPercent(collecting.nodeCpu)} and ${formatPercent(baseline.nodeCpu)} of a core): each round reads the entity and ccid of every record it looks at, ` +
        'in the partition\'s write section, and its deletes are written and compacted like any other write.',
    );
  }
  return text.join(' ');
}
