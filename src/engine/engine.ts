/**
 * The engine: the partitions of one node, opened on demand over one store. It decides *what* a
 * change does; where it is applied (the cluster) is decided above it.
 */
import { ErrorCode, SyncError } from '../model/errors.js';
import { normaliseAppId, normaliseUsername, validateBucketName } from '../model/names.js';
import { epochKey, nodeIdKey, PartitionLayout, registry } from '../storage/layout.js';
import { StagedStore, type StagedOp, type StagedStoreOptions } from '../storage/staged-store.js';
import { prefixEnd, type KeyValueStore } from '../storage/store.js';
import { HybridClock } from './hlc.js';
import type { VersionVector } from '../model/version-vector.js';
import { Partition, partitionId, type EngineContext, type HistoryCollected } from './partition.js';
import { initialMeta, type ChangeEntry, type PartitionMeta } from './records.js';

/** One instance of a bucket: the app's own (owner null), or a user's private one. */
export interface BucketInstance {
  bucket: string;
  owner: string | null;
}

export interface EngineOptions extends Omit<EngineContext, 'nodeId' | 'clock'>, StagedStoreOptions {
  /** Makes the id of a node on its first start (the origin of the records it accepts). */
  newNodeId: () => string;
}

export class Engine {
  private readonly partitions = new Map<string, Promise<Partition>>();
  private readonly opened = new Map<string, Partition>();
  /** Per partition id, how many times it was asked for: whether anyone else used it meanwhile. */
  private readonly asked = new Map<string, number>();
  /** `asked` of each open partition at the last `closeIdle`. */
  private idleMarks = new Map<string, number | undefined>();
  private closing = false;

  private constructor(
    private readonly store: StagedStore,
    private readonly ctx: EngineContext,
  ) {}

  static async open(kv: KeyValueStore, options: EngineOptions): Promise<Engine> {
    const store = new StagedStore(kv, { ...options, uncached: PartitionLayout.isUncached });
    let nodeId = await store.get<string>(nodeIdKey);
    if (nodeId === undefined) {
      nodeId = options.newNodeId();
      await store.stage([{ type: 'put', key: nodeIdKey, value: nodeId }]);
    }
    const { newNodeId: _unused, ...ctx } = options;
    return new Engine(store, { ...ctx, nodeId, clock: new HybridClock(ctx.now) });
  }

  get nodeId(): string {
    return this.ctx.nodeId;
  }

  /**
   * The buckets of `app` that hold something (durably), sorted: across all their instances, or
   * only `owner`'s private ones.
   */
  async bucketNames(app: string, owner?: string): Promise<string[]> {
    const appId = normaliseAppId(app);
    if (owner === undefined) {
      const prefix = registry.buckets(appId).gte;
      const rows = await this.store.page({ ...registry.buckets(appId), limit: 10_000_000 });
      return [...new Set(rows.map(([key]) => key.slice(prefix.length, key.indexOf('!', prefix.length))))];
    }
    const user = normaliseUsername(owner, 'user');
    const prefix = registry.ownedBy(appId, user).gte;
    return (await this.store.page({ ...registry.ownedBy(appId, user), limit: 10_000_000 })).map(([key]) => key.slice(prefix.length));
  }

  /**
   * The bucket instances of `app` this node holds (durably), sorted by bucket, then owner (the
   * app's own first): all of them, or only `owner`'s private ones.
   */
  async instances(app: string, owner?: string): Promise<BucketInstance[]> {
    const appId = normaliseAppId(app);
    if (owner !== undefined) {
      const user = normaliseUsername(owner, 'user');
      return (await this.bucketNames(appId, user)).map((bucket) => ({ bucket, owner: user }));
    }
    const prefix = registry.buckets(appId).gte;
    const rows = await this.store.page({ ...registry.buckets(appId), limit: 10_000_000 });
    return rows.map(([key]) => {
      const rest = key.slice(prefix.length);
      const split = rest.indexOf('!');
      return { bucket: rest.slice(0, split), owner: rest.slice(split + 1) || null };
    });
  }

  /** Purges every private bucket instance of `owner` this node holds; says how many there were. */
  async purgeOwner(app: string, owner: string): Promise<number> {
    const buckets = await this.bucketNames(app, owner);
    for (const bucket of buckets) await this.purge(app, bucket, owner);
    return buckets.length;
  }

  /** The partition of `bucket` in `app`: the app's own, or `owner`'s private instance. */
  partition(app: string, bucket: string, owner: string | null = null): Promise<Partition> {
    return this.named(app, bucket, owner, true);
  }

  /** A partition by its id (`{app}/{bucket}` or `{app}/{bucket}/{owner}`, as replicas name them). */
  partitionById(id: string): Promise<Partition> {
    return this.byId(id, true);
  }

  private byId(id: string, ask: boolean): Promise<Partition> {
    const parts = id.split('/');
    if (parts.length < 2 || parts.length > 3) throw new SyncError(ErrorCode.INVALID_INPUT, `not a partition id: ${id}`);
    return this.named(parts[0]!, parts[1]!, parts[2] ?? null, ask);
  }

  private async named(app: string, bucket: string, owner: string | null, ask: boolean): Promise<Partition> {
    validateBucketName(bucket);
    const appId = normaliseAppId(app);
    const user = owner === null ? null : normaliseUsername(owner, 'user');
    return this.open(appId, bucket, user, ask);
  }

  /**
   * Opens a partition on first use. `ask` counts the use (`asked`): a history round's visit does
   * not, so that a partition only the rounds look at still counts as idle.
   */
  private open(app: string, bucket: string, user: string | null, ask: boolean): Promise<Partition> {
    if (this.closing) return Promise.reject(new SyncError(ErrorCode.SHUTTING_DOWN, 'the node is shutting down'));
    const id = partitionId(app, bucket, user);
    if (ask) this.asked.set(id, (this.asked.get(id) ?? 0) + 1);
    let partition = this.partitions.get(id);
    if (partition === undefined) {
      partition = Partition.open(app, bucket, user, this.store, this.ctx);
      this.partitions.set(id, partition);
      partition.then(
        (p) => this.opened.set(id, p),
        () => this.forget(id),
      );
    }
    return partition;
  }

  /** The ids of every partition that holds something here (durably), sorted. */
  async partitionIds(): Promise<string[]> {
    const rows = await this.store.page({ gte: 'r!', lt: prefixEnd('r!'), limit: 100_000_000 });
    const ids: string[] = [];
    for (const [key] of rows) {
      const [, app, kind, bucket, owner] = key.split('!');
      if (kind === 'b' && app !== undefined && bucket !== undefined) ids.push(partitionId(app, bucket, owner === '' || owner === undefined ? null : owner));
    }
    return ids.sort();
  }

  /**
   * Deletes one instance of a bucket entirely (a deleted user's data): its live subscriptions
   * end, its pending writes land, then every record of it goes (logs, ccid and uuid indexes,
   * entities, versions, settings) and the registry forgets it. A request racing the purge may
   * open the partition again, empty, afterwards.
   */
  async purge(app: string, bucket: string, owner: string | null): Promise<void> {
    const appId = normaliseAppId(app);
    validateBucketName(bucket);
    const user = owner === null ? null : normaliseUsername(owner, 'user');
    const id = partitionId(appId, bucket, user);
    const open = this.partitions.get(id);
    if (open !== undefined) {
      const partition = await open.catch(() => undefined);
      if (partition !== undefined) {
        partition.retire();
        partition.close();
        await partition.settle();
      }
      this.forget(id);
    }
    await this.store.purge(new PartitionLayout(id).base);
    const ops: StagedOp[] = [{ type: 'del', key: registry.bucket(appId, bucket, user) }];
    // A replica's copy made anew later accepts records under a new origin (Partition.origin):
    // other replicas still hold what the old one made. A single node has no one to confuse.
    if (this.ctx.keepClearedLog === true) {
      const epoch = (await this.store.get<number>(epochKey(id))) ?? 0;
      ops.push({ type: 'put', key: epochKey(id), value: epoch + 1 });
    }
    if (user !== null) ops.push({ type: 'del', key: registry.owned(appId, user, bucket) });
    await this.store.stage(ops);
  }

  /** {@link purge} by partition id. */
  purgeById(id: string): Promise<void> {
    const parts = id.split('/');
    if (parts.length < 2 || parts.length > 3) throw new SyncError(ErrorCode.INVALID_INPUT, `not a partition id: ${id}`);
    return this.purge(parts[0]!, parts[1]!, parts[2] ?? null);
  }

  /** Live subscriptions across all partitions. */
  get subscriberCount(): number {
    let n = 0;
    for (const p of this.opened.values()) n += p.changeFeed.size + p.eventFeed.size;
    return n;
  }

  /**
   * One round of history collection over every partition (Partition.collectHistory), in passes of
   * at most 1000 records so that writes interleave, until every partition is done or `budget`
   * records were looked at. The default has no bound: a round must keep up with any write rate
   * (a node taking 5,000 changes/s has 300,000 records a minute to look at).
   *
   * A replica in a cluster collects a partition only given `stable(id)`: the records that are
   * causally stable across its replicas (replication/stability.ts); undefined skips it.
   */
  async collectHistory(now: number, budget = Number.POSITIVE_INFINITY, stable?: (id: string) => VersionVector | undefined): Promise<HistoryCollected> {
    const total: HistoryCollected = { scanned: 0, superseded: 0, tombstones: 0, cleared: 0, ccids: 0, done: true };
    for (const id of await this.partitionIds()) {
      // A closed partition with nothing to collect is not even opened.
      if (this.ctx.keepClearedLog !== true && !this.partitions.has(id) && !(await this.historyDue(id, now))) continue;
      const wasOpen = this.partitions.has(id);
      // Read before the round has the partition: a request may ask for it meanwhile.
      const asked = this.asked.get(id);
      const partition = await this.byId(id, false);
      try {
        const vector = this.ctx.keepClearedLog === true ? stable?.(id) : undefined;
        // Nothing stable yet: nothing a pass could remove.
        if (this.ctx.keepClearedLog === true && (vector === undefined || Object.keys(vector).length === 0)) continue;
        for (;;) {
          if (this.closing) return { ...total, done: false };
          if (total.scanned >= budget) return { ...total, done: false };
          const pass = await partition.collectHistory(now, Math.min(1000, budget - total.scanned), vector);
          total.scanned += pass.scanned;
          total.superseded += pass.superseded;
          total.tombstones += pass.tombstones;
          total.cleared += pass.cleared;
          total.ccids += pass.ccids;
          if (pass.done) break;
        }
      } finally {
        // A round visits every partition the node holds: keeping open those it opened would make
        // every bucket ever written resident after the first round (a few KiB each).
        if (!wasOpen) await this.release(id, partition, asked);
      }
    }
    return total;
  }

  /**
   * Whether a single node's round would find anything to do in partition `id`, read off the
   * store without opening it: a sweep of cleared ccids under way, or a record before the log's
   * head (which stays) older than the horizon and the ccid window. Records are in arrival order,
   * so the first one decides (Partition.collectHistory stops at the first too young).
   */
  private async historyDue(id: string, now: number): Promise<boolean> {
    const policy = this.ctx.history;
    if (policy === undefined) return false;
    const layout = new PartitionLayout(id);
    const meta = (await this.store.get<PartitionMeta>(layout.meta, { durable: true })) ?? initialMeta;
    if (meta.ccidSweep !== undefined) return true;
    const [first, second] = await this.store.page<ChangeEntry>({ ...layout.changesFrom(Math.max(meta.historyFrom ?? 1, meta.changeLogStart)), limit: 2 });
    return first !== undefined && second !== undefined && first[1].at <= now - Math.max(policy.horizonMs, policy.ccidWindowMs);
  }

  /**
   * Closes the partitions nobody asked for since the last call, and with no live subscriber (on a
   * single node; see `release`). Called every history interval, it keeps in memory the buckets
   * in use, not every bucket used since the node started. Says how many it closed.
   */
  async closeIdle(): Promise<number> {
    const previous = this.idleMarks;
    this.idleMarks = new Map();
    const idle: Array<[string, Partition, number | undefined]> = [];
    for (const [id, partition] of this.opened) {
      const asked = this.asked.get(id);
      this.idleMarks.set(id, asked);
      if (previous.has(id) && previous.get(id) === asked) idle.push([id, partition, asked]);
    }
    let closed = 0;
    for (const [id, partition, asked] of idle) if (await this.release(id, partition, asked)) closed++;
    return closed;
  }

  /**
   * Closes a partition the caller opened and alone used (nobody asked for it since `asked`), once
   * its work is durable and if it has no live subscribers. A replica's stays open: the cluster
   * reads its vectors between rounds (replication/stability.ts).
   */
  private async release(id: string, partition: Partition, asked: number | undefined): Promise<boolean> {
    if (this.ctx.keepClearedLog === true) return false;
    await partition.settle();
    // From here to the end nothing awaits: no one can take the partition in between.
    if (this.closing || this.asked.get(id) !== asked || this.opened.get(id) !== partition) return false;
    if (partition.changeFeed.size + partition.eventFeed.size > 0) return false;
    partition.retire();
    partition.close();
    this.forget(id);
    return true;
  }

  private forget(id: string): void {
    this.partitions.delete(id);
    this.opened.delete(id);
    this.asked.delete(id);
    this.idleMarks.delete(id);
  }

  /** How many partitions are open in memory. */
  get openCount(): number {
    return this.opened.size;
  }

  /** The partition `id` if it is open here (no store read). */
  openedPartition(id: string): Partition | undefined {
    return this.opened.get(id);
  }

  /** The read cache's use (StagedStore.cacheStats), for metrics. */
  cacheStats(): ReturnType<StagedStore['cacheStats']> {
    return this.store.cacheStats();
  }

  /** Live subscriptions, and the records waiting in their queues (total, and the longest queue). */
  subscriptionStats(): { live: number; queued: number; queuedMax: number } {
    let live = 0;
    let queued = 0;
    let queuedMax = 0;
    for (const p of this.opened.values()) {
      for (const feed of [p.changeFeed, p.eventFeed]) {
        live += feed.size;
        for (const depth of feed.depths()) {
          queued += depth;
          if (depth > queuedMax) queuedMax = depth;
        }
      }
    }
    return { live, queued, queuedMax };
  }

  /**
   * Refuses new work, lets in-flight changes become durable, ends live feeds, closes the store.
   */
  async close(): Promise<void> {
    this.closing = true;
    const partitions = await Promise.allSettled(this.partitions.values());
    for (const result of partitions) {
      if (result.status === 'fulfilled') await result.value.settle();
    }
    await this.store.flush();
    for (const result of partitions) if (result.status === 'fulfilled') result.value.close();
    await this.store.store.close();
  }
}
