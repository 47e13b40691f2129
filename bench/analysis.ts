/**
 * "What limits each figure": a paragraph built from the measurements of this run (CPU use of the
 * server and of the bench client during each workload) and from how the node works.
 */
import type { BenchConfig } from './config.js';
import type { Results } from './report.js';
import { formatPercent } from './stats.js';

const busy = (fraction: number) => Number.isFinite(fraction) && fraction >= 0.85;

export function whatLimits(results: Results, config: BenchConfig): string {
  const parts: string[] = [];
  parts.push(
    `Client and servers share ${config.clients > 0 ? 'the same' : ''} machine, so every figure is also bounded by the bench ` +
      'process\'s own CPU use (reported per workload in Details; the server runs JavaScript on one thread plus LevelDB work on ' +
      'the libuv pool).',
  );
  const w1 = results.node.w1http ?? results.node.w1ws;
  if (w1 !== undefined) {
    parts.push(
      `W1: the node used ${formatPercent(w1.serverCpu)} of a core (bench client ${formatPercent(w1.clientCpu)}); ` +
        (busy(w1.serverCpu)
          ? 'it is CPU-bound in its JavaScript path (GraphQL parse/validate/execute per request, change validation, jsondiff, JSON encoding of the staged records), not by fsync, since group commit folds the changes of all waiting clients into one synced batch. '
          : 'with spare CPU, each change waits for the synced LevelDB batch (group commit) that carries it, so throughput is set by fsync latency times the batching factor. ') +
        'Per bucket, changes are computed one at a time, so all 32 clients queue on one partition.',
    );
  }
  const w1b = results.node.w1b;
  if (w1b !== undefined) {
    parts.push(
      `W1b: ${formatPercent(w1b.serverCpu)} server CPU; large requests amortise GraphQL overhead, leaving per-change work ` +
        '(validation, diff, five LevelDB writes per change: entity, version, log record, ccid index, meta) against a raw baseline ' +
        'that writes one unsynced put per value.',
    );
  }
  const fan = results.node.fanout;
  if (fan !== undefined) {
    parts.push(
      `W2: every change is executed as a GraphQL result once per subscriber and sent as its own WebSocket frame ` +
        `(${config.subscribers} x ${config.rate}/s = ${(config.subscribers * config.rate).toLocaleString('en-US')} deliveries/s); ` +
        `the node used ${formatPercent(fan.serverCpu)} of a core and the bench client ${formatPercent(fan.clientCpu)} during it, ` +
        'so latency is queueing behind that per-subscriber work (plus, for the node, the fsync before a change is published). ' +
        'Idle memory is the RSS growth for sockets, graphql-ws state and subscriptions; it is a difference of two RSS readings ' +
        'taken after a pause, without a forced GC, so it carries some noise.',
    );
  }
  const c = results.node.catchup;
  if (c !== undefined) {
    parts.push(
      `W3: paging used ${formatPercent(c.paging.serverCpu)} server CPU and the subscription ${formatPercent(c.subscription.serverCpu)}; ` +
        'a read is a LevelDB range scan plus JSON decode per record, a cursor encoding per change, and GraphQL serialisation of ' +
        'every field; the subscription additionally pays one GraphQL execution and one WebSocket frame per change.',
    );
  }
  return parts.join(' ');
}
