/**
 * The node's Prometheus metrics (prom-client), served at GET /metrics.
 *
 * Counters are bumped where things happen; levels that already exist elsewhere (live
 * subscriptions, replication lag, the size of the data directory) are read at scrape time by
 * `collect` callbacks, so that nothing is kept twice. Label values come from closed sets (schema
 * field names, error codes, member node ids), never from request data, so the number of series is
 * bounded whatever clients send.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the scrape-time gauges read. Each part is optional: a single node has no peers. */
export interface MetricSources {
  subscriptions?: () => { live: number; queued: number; queuedMax: number };
  /** Per peer: records it lacks that this node holds, as of the last exchange; partitions this node still holds for it. */
  peers?: () => Array<{ peer: string; lagRecords: number; handoffPartitions: number }>;
  dataDir?: string;
  cache?: () => { bytes: number; budget: number; entries: number; hits: number; misses: number };
  partitionsOpen?: () => number;
}

export type ChangeResultKind = 'applied' | 'duplicate' | 'noop' | 'rejected';

export class Metrics {
  readonly registry = new Registry();
  readonly operations: Counter<'operation' | 'type'>;
  readonly errors: Counter<'operation' | 'code'>;
  readonly changes: Counter<'result'>;
  readonly changesRejected: Counter<'reason'>;
  readonly events: Counter<'result'>;
  readonly commitBatchOps: Histogram;
  readonly commitSeconds: Histogram;
  readonly slowConsumers: Counter;
  readonly repairs: Counter<'peer' | 'direction'>;
  readonly rounds: Counter;
  readonly history: Counter<'kind'>;
  private sources: MetricSources = {};

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'syncgraph_' });
    this.operations = new Counter({
      name: 'syncgraph_graphql_operations_total',
      help: 'GraphQL root fields executed, by field and operation type (a request with several root fields counts each)',
      labelNames: ['operation', 'type'],
      registers,
    });
    this.errors = new Counter({
      name: 'syncgraph_graphql_errors_total',
      help: 'GraphQL errors answered, by root field (or the phase before execution) and extensions.code',
      labelNames: ['operation', 'code'],
      registers,
    });
    this.changes = new Counter({
      name: 'syncgraph_changes_total',
      help: 'Submitted changes by result: applied (a new version), duplicate (ccid already applied), noop (nothing to change), rejected',
      labelNames: ['result'],
      registers,
    });
    this.changesRejected = new Counter({
      name: 'syncgraph_changes_rejected_total',
      help: 'Submitted changes refused, by SyncError code',
      labelNames: ['reason'],
      registers,
    });
    this.events = new Counter({
      name: 'syncgraph_events_total',
      help: 'Pushed events by result: accepted or rejected',
      labelNames: ['result'],
      registers,
    });
    this.commitBatchOps = new Histogram({
      name: 'syncgraph_commit_batch_operations',
      help: 'LevelDB operations per group commit (one synced write)',
      buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'syncgraph_commit_seconds',
      help: 'Duration of a group commit: the LevelDB write and its fsync',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.slowConsumers = new Counter({
      name: 'syncgraph_subscriptions_slow_consumer_total',
      help: 'Subscriptions ended because their client fell too far behind (SLOW_CONSUMER)',
      registers,
    });
    this.repairs = new Counter({
      name: 'syncgraph_anti_entropy_repairs_total',
      help: 'Partitions anti-entropy found out of step with a peer, by peer and direction (pull: the peer had records this node lacked; push: the reverse)',
      labelNames: ['peer', 'direction'],
      registers,
    });
    this.rounds = new Counter({
      name: 'syncgraph_anti_entropy_rounds_total',
      help: 'Anti-entropy and handoff rounds this node has completed (a cluster node runs one every few seconds)',
      registers,
    });
    this.history = new Counter({
      name: 'syncgraph_history_collected_total',
      help: 'History collection: change records looked at (scanned), superseded records, tombstones and records an EMPTY/DROP cleared (a cluster) removed, ccids forgotten',
      labelNames: ['kind'],
      registers,
    });
    const sources = () => this.sources;
    new Gauge({
      name: 'syncgraph_subscriptions_live',
      help: 'Live subscriptions (changes and events) on this node',
      registers,
      collect() {
        this.set(sources().subscriptions?.().live ?? 0);
      },
    });
    new Gauge({
      name: 'syncgraph_subscription_queue_records',
      help: 'Records queued for live subscribers: in total (stat="total"), and for the most backed-up one (stat="max")',
      labelNames: ['stat'],
      registers,
      collect() {
        const stats = sources().subscriptions?.();
        this.set({ stat: 'total' }, stats?.queued ?? 0);
        this.set({ stat: 'max' }, stats?.queuedMax ?? 0);
      },
    });
    new Gauge({
      name: 'syncgraph_replication_lag_records',
      help: 'Per peer: records of partitions both replicate that this node holds and the peer lacked at the last exchange',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const peer of sources().peers?.() ?? []) this.set({ peer: peer.peer }, peer.lagRecords);
      },
    });
    new Gauge({
      name: 'syncgraph_handoff_pending_partitions',
      help: 'Per peer: partitions this node holds for it (hinted handoff, or a ring change) not yet handed over',
      labelNames: ['peer'],
      registers,
      collect() {
        this.reset();
        for (const peer of sources().peers?.() ?? []) this.set({ peer: peer.peer }, peer.handoffPartitions);
      },
    });
    new Gauge({
      name: 'syncgraph_partitions_open',
      help: 'Bucket instances (partitions) open in memory on this node (a single node closes those idle for a history interval)',
      registers,
      collect() {
        this.set(sources().partitionsOpen?.() ?? 0);
      },
    });
    new Gauge({
      name: 'syncgraph_read_cache_bytes',
      help: 'The read cache of entities: bytes it holds (stat="used", counted as the JSON of the values) and its budget (stat="budget", --cache-mb)',
      labelNames: ['stat'],
      registers,
      collect() {
        const cache = sources().cache?.();
        this.set({ stat: 'used' }, cache?.bytes ?? 0);
        this.set({ stat: 'budget' }, cache?.budget ?? 0);
      },
    });
    // Counted by the store as plain numbers (a read is too frequent for a metric call each):
    // the counter catches up at scrape time.
    const lookups = { hit: 0, miss: 0 };
    new Counter({
      name: 'syncgraph_read_cache_lookups_total',
      help: 'Reads of entities (and bucket metadata) the read cache answered (result="hit") or sent to LevelDB (result="miss")',
      labelNames: ['result'],
      registers,
      collect() {
        const cache = sources().cache?.();
        if (cache === undefined) return;
        this.inc({ result: 'hit' }, cache.hits - lookups.hit);
        this.inc({ result: 'miss' }, cache.misses - lookups.miss);
        lookups.hit = cache.hits;
        lookups.miss = cache.misses;
      },
    });
    new Gauge({
      name: 'syncgraph_storage_bytes',
      help: 'Bytes of the LevelDB files in the data directory',
      registers,
      collect() {
        const dir = sources().dataDir;
        this.set(dir === undefined ? 0 : directoryBytes(dir));
      },
    });
  }

  /** Connects the scrape-time gauges to the node's parts (called once they exist). */
  attach(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** Counts the results of one `submitChanges`. */
  countChanges(results: ReadonlyArray<{ duplicate: boolean; noop: boolean; error: { code: string } | null }>): void {
    for (const result of results) {
      if (result.error !== null) {
        this.changes.inc({ result: 'rejected' });
        this.changesRejected.inc({ reason: result.error.code });
      } else this.changes.inc({ result: result.duplicate ? 'duplicate' : result.noop ? 'noop' : 'applied' });
    }
  }

  /** Changes applied since the start, read off their counter (the admin page charts its rate). */
  async changesApplied(): Promise<number> {
    const counted = await this.changes.get();
    return counted.values.find((sample) => sample.labels['result'] === 'applied')?.value ?? 0;
  }

  historyCollected(round: { scanned: number; superseded: number; tombstones: number; cleared: number; ccids: number }): void {
    for (const kind of ['scanned', 'superseded', 'tombstones', 'cleared', 'ccids'] as const) this.history.inc({ kind }, round[kind]);
  }

  observeCommit(ops: number, durationMs: number): void {
    this.commitBatchOps.observe(ops);
    this.commitSeconds.observe(durationMs / 1000);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Sum of the sizes of the files under `dir` (LevelDB keeps a flat directory; one level of subdirectories is followed). */
function directoryBytes(dir: string, depth = 0): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      const stat = statSync(join(dir, name));
      if (stat.isFile()) total += stat.size;
      else if (stat.isDirectory() && depth < 1) total += directoryBytes(join(dir, name), depth + 1);
    } catch {
      // removed between the listing and the stat (a compaction): not counted
    }
  }
  return total;
}
