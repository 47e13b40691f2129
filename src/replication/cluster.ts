/**
 * The peer cluster: where each partition lives, how a write reaches `W` replicas, and how copies
 * meet again after failures (DESIGN "Cluster"). It wraps the engine: replication decides *where*
 * a change is applied and how copies meet; the partition decides *what* it does.
 *
 * - Placement: the consistent-hashing ring over active members; a partition's preference list is
 *   its owner and `N-1` backups.
 * - Writes: any node takes a client's write and forwards it to the first live node of the list
 *   (the owner while it is up), which applies it (durably), pushes the new records to the other
 *   replicas and answers once `W` copies are durable; otherwise UNAVAILABLE ("may have been
 *   applied: retry with the same ccid"). With too few list members up, the next live nodes of the
 *   ring stand in (sloppy quorum) and hand the records back later (hinted handoff).
 * - Convergence: records carry their origin and sequence; replicas apply each other's records in
 *   any order and end in the same state (engine/partition-replication.ts `applyChanges`, model/converge.ts).
 * - Anti-entropy: replicas periodically compare version vectors (an exact summary of which
 *   records a copy holds) and pull or push what differs, so a copy that missed anything catches
 *   up with no new writes. Entity digests (`replicaStatus`) then agree.
 * - Handoff and membership: a node holding a partition whose list does not include it (a stand-in,
 *   or after the ring changed) pushes it to the list and then drops its copy.
 * - Reads and subscriptions on a node outside the list are served from a local copy, caught up
 *   from a replica before each read and followed live while subscribed.
 * - History collection: the vectors peers report tell which records are causally stable across a
 *   partition's replicas (`stableVector`, stability.ts): the only ones a replica collects. A copy
 *   behind what a peer collected gets the records left with the peer's floor (gaps below it were
 *   collected), or is rebuilt from the peer when it holds part of the collected history.
 *
 * Time and the network are injected (transport.ts): the deterministic simulation runs this very
 * code on virtual time.
 */
import type { BucketInstance, Engine } from '../engine/engine.js';
import type { Caller, ChangeInput, Partition, PushEventsOutcome } from '../engine/partition.js';
import type { BucketConfig, ChangeOutcome, ChangeRecord, EventRecord } from '../engine/records.js';
import type { EventInput } from '../model/event.js';
import { ErrorCode, SyncError, isSyncError } from '../model/errors.js';
import { needsRebuild } from '../model/replica-history.js';
import { dominates, emptyVector, seqOf, type VersionVector } from '../model/version-vector.js';
import type { ReplicatedDirectoryStore } from './directory-log.js';
import { Membership } from './membership.js';
import { isPeerRequest, type CallerSpec, type MemberList, type PeerRequest, type PeerResponse, type Vectors } from './protocol.js';
import { Ring } from './ring.js';
import type { Router } from './router.js';
import { advanceStability, initialStability, type Stability } from './stability.js';
import type { PeerTransport, Timers } from './transport.js';

export interface ClusterOptions {
  /** This node's id in the ring (`--node-id`), not the origin of its records. */
  nodeId: string;
  /** How peers reach this node (host:port). */
  address: string;
  /** Replicas per partition, N. @default 3 (at most the number of active members) */
  replicas?: number;
  /** Copies durable before a write is acknowledged, W. @default a majority of N */
  writeQuorum?: number;
  heartbeatMs?: number;
  suspectAfterMs?: number;
  antiEntropyMs?: number;
  /** A call to a peer that does not answer in this time fails. @default 2000 */
  requestTimeoutMs?: number;
  /** A write that has not reached W replicas in this time fails with UNAVAILABLE. @default 5000 */
  writeTimeoutMs?: number;
  /** Records per push or pull. @default 500 */
  batchMax?: number;
  /** A copy of a partition held for readers (not a replica) is kept this long after its last use. @default 60 s */
  cacheIdleMs?: number;
}

export interface ClusterLogger {
  debug?(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface NodeStatus {
  id: string;
  address: string;
  status: 'active' | 'left';
  up: boolean;
  self: boolean;
}

export interface ReplicaStatus {
  nodeId: string;
  up: boolean;
  changes: VersionVector | null;
  events: VersionVector | null;
  digest: string | null;
  entities: number | null;
  /** Records the replica lacks that another replica holds (null: unreachable). */
  lag: number | null;
}

export interface HandoffProgress {
  /** Partitions this node holds that belong elsewhere and are not handed over yet. */
  pending: number;
  /** Partitions handed over (and dropped here) since the node started. */
  moved: number;
}

type Resolved = Required<Omit<ClusterOptions, 'writeQuorum'>> & { writeQuorum: number | undefined };

interface ShipWaiter {
  target: VersionVector;
  deadline: number;
  /** The shipper's answer count when the write registered: only later answers count for it. */
  after: number;
  resolve: (ok: boolean) => void;
}

interface Shipper {
  waiters: ShipWaiter[];
  running: boolean;
  answers: number;
  known: VersionVector;
}

/** A peer answered with an error: its word on the request, not a failure to reach it. */
class RemoteError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const SYNC_CODES = new Set<string>(Object.values(ErrorCode));

export class Cluster implements Router {
  readonly membership: Membership;
  private ring: Ring;
  private readonly options: Resolved;
  /** What we last learned of each peer's copy: `{node}|{partition}` -> vectors. */
  private readonly peerVectors = new Map<string, Vectors>();
  /** Per partition: which of its records are causally stable across its replicas. */
  private readonly stability = new Map<string, Stability>();
  /** Partitions whose copy here has met a replica since this node started. */
  private readonly synced = new Set<string>();
  /** Partitions held for readers here: partition -> followers and last use. */
  private readonly cached = new Map<string, { followers: number; lastUse: number }>();
  private timers: unknown[] = [];
  private stopped = false;
  private rounds = Promise.resolve();
  private handoff: HandoffProgress = { pending: 0, moved: 0 };
  /** Per peer: partitions held here for it, not yet handed over (as of the last round). */
  private handoffByPeer = new Map<string, number>();
  /** Told of each partition anti-entropy found out of step with a peer (metrics). */
  onRepair: ((peer: string, direction: 'pull' | 'push') => void) | undefined;
  /** Told when an anti-entropy and handoff round has ended (metrics: whether rounds run at all). */
  onRound: (() => void) | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly transport: PeerTransport,
    private readonly clock: Timers,
    options: ClusterOptions,
    private readonly logger: ClusterLogger,
  ) {
    this.options = {
      replicas: 3,
      heartbeatMs: 500,
      suspectAfterMs: 2000,
      antiEntropyMs: 5000,
      requestTimeoutMs: 2000,
      writeTimeoutMs: 5000,
      batchMax: 500,
      cacheIdleMs: 60_000,
      ...options,
      writeQuorum: options.writeQuorum,
    };
    this.membership = new Membership(options.nodeId, options.address, clock, this.options.suspectAfterMs);
    this.ring = new Ring(this.membership.active());
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  private started = false;

  start(): void {
    this.started = true;
    this.transport.serve((from, request) => this.handle(from, request));
    this.every(this.options.heartbeatMs, () => this.heartbeat());
    this.every(this.options.antiEntropyMs, () => this.background());
  }

  /** Stops the loops; in-flight calls finish or time out. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const handle of this.timers) this.clock.clearTimeout(handle);
    this.timers = [];
    await this.rounds.catch(() => undefined);
  }

  /** The node's directory, replicated to every member (replication/directory-log.ts). */
  private directory: ReplicatedDirectoryStore | undefined;

  attachDirectory(directory: ReplicatedDirectoryStore): void {
    this.directory = directory;
    // A directory write goes to every member at once (best effort: anti-entropy repairs).
    directory.onLocalWrite = (record) => {
      for (const node of this.membership.others()) {
        if (!this.membership.isUp(node)) continue;
        this.call(node, { type: 'dirPush', records: [record] }, this.options.requestTimeoutMs).catch(() => undefined);
      }
    };
  }

  /** Pulls the directory records `node` holds that this node lacks. */
  private async pullDirectory(node: string): Promise<void> {
    const directory = this.directory;
    if (directory === undefined) return;
    for (let round = 0; round < 1000 && !this.stopped; round++) {
      const before = directory.vectorNow();
      const answer = expect(await this.call(node, { type: 'dirPull', vector: before, limit: this.options.batchMax }, this.options.requestTimeoutMs), 'dirRecords');
      const after = await directory.apply(answer.records);
      if (!answer.more || dominates(before, after)) return;
    }
  }

  /** An operator's `cluster join`: connect to `address`; the node there joins when its link is up. */
  join(address: string): void {
    this.joining.add(address);
    this.dialer?.(address);
  }

  /** Addresses an operator asked to join: the node there becomes active again even if it had left. */
  private readonly joining = new Set<string>();

  /** How the node dials an address (the transport's), set by the node. */
  dialer: ((address: string) => void) | undefined;

  /** A peer connected (transport): a node we did not know joins the members. */
  peerConnected(nodeId: string, address: string | null): void {
    this.membership.heard(nodeId);
    if (address !== null && this.joining.delete(address) && this.membership.info(nodeId)?.status === 'left') {
      this.setMemberStatus(nodeId, 'active', address);
      return;
    }
    if (this.membership.learned(nodeId, address)) this.membershipChanged();
  }

  // ------------------------------------------------------------------ placement

  get replicaCount(): number {
    return Math.min(this.options.replicas, this.ring.nodes.length);
  }

  get writeQuorum(): number {
    const n = this.replicaCount;
    return Math.max(1, Math.min(this.options.writeQuorum ?? Math.floor(n / 2) + 1, n));
  }

  preferenceList(partition: string): string[] {
    return this.ring.preferenceList(partition, this.replicaCount);
  }

  isReplica(partition: string): boolean {
    return this.preferenceList(partition).includes(this.nodeId);
  }

  /** Nodes after the preference list on the ring: stand-ins when list members are down. */
  private standIns(partition: string): string[] {
    return this.ring.preferenceList(partition, this.ring.nodes.length).slice(this.replicaCount);
  }

  nodes(): NodeStatus[] {
    const list = this.membership.list();
    return Object.entries(list)
      .map(([id, info]) => ({ id, address: info.address, status: info.status, up: this.membership.isUp(id), self: id === this.nodeId }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  handoffProgress(): HandoffProgress {
    return { ...this.handoff };
  }

  /** Marks a member as leaving (its partitions move to the others) or active again. */
  setMemberStatus(nodeId: string, status: 'active' | 'left', address?: string): void {
    this.membership.setStatus(nodeId, status, address);
    this.membershipChanged();
  }

  /** Called with the member list whenever it changes (the node keeps it on disk). */
  onMembersChanged: ((members: MemberList) => void) | undefined;

  /** Members remembered from an earlier run: a node restarting while peers are down still knows them. */
  restoreMembers(members: MemberList): void {
    const { [this.nodeId]: _self, ...others } = members;
    if (this.membership.merge(others)) this.membershipChanged();
  }

  private membershipChanged(): void {
    this.onMembersChanged?.(this.membership.list());
    const before = this.ring.nodes.join(',');
    this.ring = new Ring(this.membership.active());
    const addresses = new Map<string, string>();
    for (const [id, info] of Object.entries(this.membership.list())) if (id !== this.nodeId && info.address !== '') addresses.set(id, info.address);
    this.transport.addressBook?.(addresses);
    if (this.ring.nodes.join(',') !== before) {
      this.logger.info({ nodes: this.ring.nodes }, 'cluster ring changed');
      this.synced.clear();
      // Move what moved now, rather than at the next scheduled round (and count it at once).
      if (this.started && !this.stopped) void this.background();
    }
  }

  // ------------------------------------------------------------------ Router: writes

  async submitChanges(partition: Partition, inputs: readonly ChangeInput[], clientId: string | null, caller: Caller, requestId?: string): Promise<ChangeOutcome[]> {
    const spec: CallerSpec = {
      admin: caller.admin,
      denied: inputs.flatMap((input) => (typeof input.key === 'string' && caller.mayChange?.(input.key) === false ? [input.key] : [])),
      mayClear: caller.mayChange?.(null) !== false,
    };
    return this.route(
      partition,
      () => this.coordinateChanges(partition, inputs, clientId, spec),
      async (node, timeoutMs) => {
        this.logger.debug?.({ reqId: requestId, to: node, partition: partition.partition, changes: inputs.length }, 'forwarding a write to its coordinator');
        const answer = await this.call(
          node,
          { type: 'submit', partition: partition.partition, changes: [...inputs], clientId, caller: spec, ...(requestId !== undefined ? { requestId } : {}) },
          timeoutMs,
        );
        return expect(answer, 'submitted').outcomes;
      },
    );
  }

  async pushEvents(
    partition: Partition,
    inputs: readonly EventInput[],
    since: string | null,
    author: string | null,
    mayPush?: (event: EventInput) => boolean,
    requestId?: string,
  ): Promise<PushEventsOutcome> {
    const refused = mayPush === undefined ? [] : inputs.filter((e) => !mayPush(e)).map((e) => e.uuid);
    return this.route(
      partition,
      () => this.coordinateEvents(partition, inputs, since, author, refused),
      async (node, timeoutMs) => {
        this.logger.debug?.({ reqId: requestId, to: node, partition: partition.partition, events: inputs.length }, 'forwarding events to their coordinator');
        const answer = await this.call(
          node,
          { type: 'pushEvents', partition: partition.partition, events: [...inputs], since, author, refused, ...(requestId !== undefined ? { requestId } : {}) },
          timeoutMs,
        );
        return expect(answer, 'pushedEvents').outcome;
      },
    );
  }

  async configure(partition: Partition, patch: Partial<BucketConfig>, caller: Caller): Promise<BucketConfig> {
    if (!caller.admin) throw new SyncError(ErrorCode.FORBIDDEN, 'configuring a bucket needs the admin key');
    return this.route(
      partition,
      () => this.coordinateConfigure(partition, patch),
      async (node, timeoutMs) => expect(await this.call(node, { type: 'configure', partition: partition.partition, patch, replicate: true }, timeoutMs), 'configured').config,
    );
  }

  /**
   * Runs a write on the partition's coordinator: the first live node of its preference list, or
   * this node when none answers (it then stands in and hands the records over later). A peer
   * that cannot be reached is skipped; one that answers with an error has decided.
   */
  private async route<T>(partition: Partition, local: () => Promise<T>, remote: (node: string, timeoutMs: number) => Promise<T>): Promise<T> {
    // A write passing through is not a reader of this node's copy (see `touch`): a node that only
    // forwards must still hand its copy over.
    const id = partition.partition;
    for (const node of this.preferenceList(id)) {
      if (node === this.nodeId) return local();
      if (!this.membership.isUp(node)) continue;
      try {
        return await remote(node, this.options.writeTimeoutMs + this.options.requestTimeoutMs);
      } catch (error) {
        if (error instanceof RemoteError) throw remoteToLocal(error);
      }
    }
    return local();
  }

  private async coordinateChanges(initial: Partition, inputs: readonly ChangeInput[], clientId: string | null, spec: CallerSpec): Promise<ChangeOutcome[]> {
    const denied = new Set(spec.denied);
    const caller: Caller = { admin: spec.admin, mayChange: (key) => (key === null ? spec.mayClear : !denied.has(key)) };
    // Catching up may rebuild the copy (behind a peer's collected history): go on with the new one.
    const partition = await this.catchUp(initial);
    const before = partition.vectorOf('changes');
    const outcomes = await partition.submitChanges(inputs, clientId, caller);
    // Duplicates too: the first attempt may have stopped short of W copies.
    if (outcomes.some((o) => o.error === null)) await this.replicate(partition, 'changes', partition.vectorOf('changes'), before);
    return outcomes;
  }

  private async coordinateEvents(
    initial: Partition,
    inputs: readonly EventInput[],
    since: string | null,
    author: string | null,
    refused: readonly string[],
  ): Promise<PushEventsOutcome> {
    const no = new Set(refused);
    const partition = await this.catchUp(initial);
    const before = partition.vectorOf('events');
    const outcome = await partition.pushEvents(inputs, since, author, no.size === 0 ? undefined : (event) => !no.has(event.uuid));
    if (outcome.accepted.length > 0) await this.replicate(partition, 'events', partition.vectorOf('events'), before);
    return outcome;
  }

  /** Bucket settings are not part of the log: the coordinator sets them on every live replica. */
  private async coordinateConfigure(partition: Partition, patch: Partial<BucketConfig>): Promise<BucketConfig> {
    const config = await partition.configure(patch, { admin: true });
    const others = this.preferenceList(partition.partition).filter((n) => n !== this.nodeId && this.membership.isUp(n));
    await Promise.allSettled(
      others.map((node) => this.call(node, { type: 'configure', partition: partition.partition, patch, replicate: false }, this.options.requestTimeoutMs)),
    );
    return config;
  }

  /**
   * Brings `W - 1` other copies up to `target` (this one is the first), within the write
   * timeout; the other live replicas get the records too, without being waited for.
   */
  private async replicate(partition: Partition, stream: 'changes' | 'events', target: VersionVector, hint: VersionVector): Promise<void> {
    const id = partition.partition;
    const needed = this.writeQuorum - 1;
    const list = this.preferenceList(id);
    const live = list.filter((n) => n !== this.nodeId && this.membership.isUp(n));
    const standIns = live.length >= needed ? [] : this.standIns(id).filter((n) => n !== this.nodeId && this.membership.isUp(n));
    const targets = [...live, ...standIns.slice(0, Math.max(0, needed - live.length))];
    const deadline = this.clock.now() + this.options.writeTimeoutMs;
    const attempts = targets.map((node) => this.shipTo(node, partition, stream, target, hint, deadline));
    if (needed <= 0) return;
    if (targets.length < needed) {
      throw new SyncError(ErrorCode.UNAVAILABLE, `only ${targets.length + 1} of the ${needed + 1} replicas needed are reachable: the change may have been applied, retry with the same ccid`);
    }
    const ok = await atLeast(attempts, needed);
    if (!ok) {
      throw new SyncError(ErrorCode.UNAVAILABLE, `fewer than ${needed + 1} replicas confirmed in time: the change may have been applied, retry with the same ccid`);
    }
  }

  /**
   * Replication of a write to one peer, coalesced: while a push to that peer is in flight, the
   * writes that arrive wait and the next push carries all their records at once (group commit,
   * across the network). A write counts the peer once an answer received after it registered
   * shows its records durable there.
   */
  private shipTo(node: string, partition: Partition, stream: 'changes' | 'events', target: VersionVector, hint: VersionVector, deadline: number): Promise<boolean> {
    const key = `${node}|${partition.partition}|${stream}`;
    let shipper = this.shippers.get(key);
    if (shipper === undefined) this.shippers.set(key, (shipper = { waiters: [], running: false, answers: 0, known: hint }));
    const current = shipper;
    return new Promise<boolean>((resolve) => {
      current.waiters.push({ target, deadline, after: current.answers, resolve });
      if (!current.running) void this.ship(key, current, node, partition, stream);
    });
  }

  private readonly shippers = new Map<string, Shipper>();

  private async ship(key: string, shipper: Shipper, node: string, partition: Partition, stream: 'changes' | 'events'): Promise<void> {
    shipper.running = true;
    const id = partition.partition;
    const settle = (ok: (w: ShipWaiter) => boolean | undefined) => {
      shipper.waiters = shipper.waiters.filter((w) => {
        const result = ok(w);
        if (result === undefined) return true;
        w.resolve(result);
        return false;
      });
    };
    try {
      for (let round = 0; round < 1000 && shipper.waiters.length > 0; round++) {
        const now = this.clock.now();
        settle((w) => (shipper.answers > w.after && dominates(shipper.known, w.target) ? true : now >= w.deadline || this.stopped ? false : undefined));
        if (shipper.waiters.length === 0) break;
        const from = this.peerVectors.get(`${node}|${id}`)?.[stream] ?? shipper.known;
        const batch =
          stream === 'changes' ? await partition.recordsSince('changes', from, this.options.batchMax) : await partition.recordsSince('events', from, this.options.batchMax);
        const deadline = Math.max(...shipper.waiters.map((w) => w.deadline));
        let answer: PeerResponse;
        try {
          answer = await this.call(
            node,
            {
              type: 'push',
              partition: id,
              changes: stream === 'changes' ? (batch.records as ChangeRecord[]) : [],
              events: stream === 'events' ? (batch.records as EventRecord[]) : [],
              compacted: batch.compacted,
              ...(batch.floor === undefined ? {} : { floor: batch.floor, since: from, complete: !batch.more }),
            },
            Math.max(1, Math.min(deadline - this.clock.now(), this.options.requestTimeoutMs)),
          );
        } catch {
          settle(() => false);
          break;
        }
        if (answer.type !== 'vectors') {
          settle(() => false);
          break;
        }
        this.remember(node, id, answer.vectors);
        // A copy that must be rebuilt from a collected history takes nothing pushed (it pulls).
        const stuck = batch.floor !== undefined && dominates(shipper.known, answer.vectors[stream]);
        shipper.known = answer.vectors[stream];
        shipper.answers++;
        if (stuck) {
          settle(() => false);
          break;
        }
        // Nothing left to send, yet not covered: the target names records we do not hold.
        if (batch.records.length === 0) settle((w) => (dominates(shipper.known, w.target) ? true : false));
      }
      settle(() => false);
    } finally {
      shipper.running = false;
      if (shipper.waiters.length === 0) this.shippers.delete(key);
      else void this.ship(key, shipper, node, partition, stream);
    }
  }

  /**
   * Pushes records to `node` until its copy covers `target`: from what we believe it holds (or
   * `hint`), resending from the vector it answers with when it refused a gap. True once covered.
   */
  private async ensure(node: string, partition: Partition, stream: 'changes' | 'events', target: VersionVector, hint: VersionVector, deadline: number): Promise<boolean> {
    const id = partition.partition;
    let known = this.peerVectors.get(`${node}|${id}`)?.[stream] ?? hint;
    // What we remember of a peer only says what to send: a copy counts once it has answered now
    // (a peer whose disk was replaced must not be counted for what it held before).
    let answered = false;
    for (let round = 0; round < 1000; round++) {
      if (answered && dominates(known, target)) return true;
      const remaining = deadline - this.clock.now();
      if (remaining <= 0 || this.stopped) return false;
      const batch =
        stream === 'changes'
          ? await partition.recordsSince('changes', known, this.options.batchMax)
          : await partition.recordsSince('events', known, this.options.batchMax);
      const request: PeerRequest = {
        type: 'push',
        partition: id,
        changes: stream === 'changes' ? (batch.records as ChangeRecord[]) : [],
        events: stream === 'events' ? (batch.records as EventRecord[]) : [],
        compacted: batch.compacted,
        ...(batch.floor === undefined ? {} : { floor: batch.floor, since: known, complete: !batch.more }),
      };
      let answer: PeerResponse;
      try {
        answer = await this.call(node, request, Math.min(remaining, this.options.requestTimeoutMs));
      } catch {
        return false;
      }
      if (answer.type !== 'vectors') return false;
      this.remember(node, id, answer.vectors);
      answered = true;
      const next = answer.vectors[stream];
      // Nothing left to send and still not covered: the target names records we do not hold.
      if (batch.records.length === 0 && !dominates(next, target)) return false;
      // A copy that must be rebuilt from a collected history takes nothing pushed (it pulls).
      if (batch.floor !== undefined && dominates(known, next)) return false;
      known = next;
    }
    return false;
  }

  // ------------------------------------------------------------------ Router: across buckets

  /**
   * A node's registry lists only the buckets it holds a copy of: the cluster's are the union of
   * every active member's. All must answer (a list without one member's share would export, or
   * delete, only part of an app).
   */
  async instances(app: string, owner?: string): Promise<BucketInstance[]> {
    const lists = await this.askEveryMember(
      () => this.engine.instances(app, owner),
      async (node) => expect(await this.call(node, { type: 'instances', app, owner: owner ?? null }, this.options.requestTimeoutMs), 'instances').instances,
    );
    const byId = new Map<string, BucketInstance>();
    for (const list of lists) for (const instance of list) byId.set(`${instance.bucket}!${instance.owner ?? ''}`, instance);
    // The registry's order: by bucket, then owner, the app's own (empty owner) first.
    return [...byId].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, instance]) => instance);
  }

  /**
   * Purges `owner`'s buckets on every member, in passes until one finds nothing anywhere: while
   * one member purges, another's anti-entropy may still copy a record back to it.
   */
  async purgeOwner(app: string, owner: string): Promise<void> {
    for (let pass = 1; ; pass++) {
      const counts = await this.askEveryMember(
        () => this.engine.purgeOwner(app, owner),
        async (node) => expect(await this.call(node, { type: 'purgeOwner', app, owner }, this.options.requestTimeoutMs), 'purged').instances,
      );
      if (counts.every((n) => n === 0)) return;
      if (pass === PURGE_PASSES_MAX) {
        throw new SyncError(ErrorCode.UNAVAILABLE, `copies of ${owner}'s buckets kept coming back after ${pass} passes: delete the user again`);
      }
    }
  }

  /** Runs a request on this node and every other active member; UNAVAILABLE unless all answer. */
  private async askEveryMember<T>(here: () => Promise<T>, there: (node: string) => Promise<T>): Promise<T[]> {
    const others = this.membership.active().filter((n) => n !== this.nodeId);
    const down = others.filter((n) => !this.membership.isUp(n));
    if (down.length > 0) throw new SyncError(ErrorCode.UNAVAILABLE, `member ${down.join(', ')} is down: this needs every member, retry when it is back`);
    return Promise.all([
      here(),
      ...others.map(async (node) => {
        try {
          return await there(node);
        } catch (error) {
          const local = error instanceof RemoteError ? remoteToLocal(error) : error;
          if (isSyncError(local)) throw local;
          throw new SyncError(ErrorCode.UNAVAILABLE, `member ${node} did not answer: this needs every member, retry`);
        }
      }),
    ]);
  }

  // ------------------------------------------------------------------ Router: reads

  async beforeRead(partition: Partition): Promise<void> {
    this.touch(partition.partition);
    await this.catchUp(partition);
  }

  /**
   * A replica that has not met another since it started (or since the ring changed) first pulls
   * what a live one holds, so that it neither serves nor builds on an old copy; a copy held for
   * readers does so every time. Best effort: with nobody reachable it goes on with what it has.
   */
  private async catchUp(partition: Partition): Promise<Partition> {
    const id = partition.partition;
    if (this.synced.has(id)) return partition;
    const list = this.preferenceList(id);
    const others = list.filter((n) => n !== this.nodeId && this.membership.isUp(n));
    // A replica serves what it holds once it has met another since it started; a copy held
    // for readers catches up from a replica at every read.
    for (const node of others) {
      try {
        const copy = await this.pull(node, partition, 0);
        if (this.isReplica(id)) this.synced.add(id);
        return copy;
      } catch {
        this.membership.failed(node);
      }
    }
    return partition;
  }

  follow(partition: Partition): () => void {
    const id = partition.partition;
    if (this.isReplica(id)) return () => undefined;
    const entry = this.cached.get(id) ?? { followers: 0, lastUse: this.clock.now() };
    entry.followers++;
    this.cached.set(id, entry);
    if (entry.followers === 1) void this.followLoop(partition);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.followers--;
      entry.lastUse = this.clock.now();
    };
  }

  /** Long-polls a replica while this node has subscribers of a partition it does not replicate. */
  private async followLoop(initial: Partition): Promise<void> {
    let partition = initial;
    const id = partition.partition;
    while (!this.stopped && (this.cached.get(id)?.followers ?? 0) > 0 && !this.isReplica(id)) {
      const node = this.preferenceList(id).find((n) => n !== this.nodeId && this.membership.isUp(n));
      try {
        if (node === undefined) throw new Error('no replica reachable');
        // A copy rebuilt behind a replica's collected history is a new one (its followers ended).
        partition = await this.pull(node, partition, 10_000);
      } catch {
        if (node !== undefined) this.membership.failed(node);
        await this.sleep(this.options.heartbeatMs);
      }
    }
  }

  private touch(id: string): void {
    if (this.isReplica(id)) return;
    const entry = this.cached.get(id);
    if (entry === undefined) this.cached.set(id, { followers: 0, lastUse: this.clock.now() });
    else entry.lastUse = this.clock.now();
  }

  /**
   * Pulls from `node` until this copy holds everything it has; `waitMs` lets it wait for news
   * first. Answers the copy, which is a new one when it had to be rebuilt (`rebuild`).
   */
  private async pull(node: string, initial: Partition, waitMs: number): Promise<Partition> {
    let partition = initial;
    const id = partition.partition;
    let wait = waitMs;
    let rebuilt = false;
    for (let round = 0; round < 10_000 && !this.stopped; round++) {
      const vectors = { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') };
      const answer = expect(
        await this.call(node, { type: 'pull', partition: id, vectors, limit: this.options.batchMax, waitMs: wait }, this.options.requestTimeoutMs + wait),
        'records',
      );
      this.remember(node, id, answer.vectors);
      const floor = answer.floor;
      if (floor !== undefined && needsRebuild(vectors.changes, floor, await partition.takenFloor())) {
        const copy = rebuilt ? undefined : await this.rebuild(node, partition, answer.vectors);
        // Not yet (the peer lacks records of this copy): the next round tries again.
        if (copy === undefined) return partition;
        partition = copy;
        rebuilt = true;
        wait = 0;
        continue;
      }
      if (answer.changes.length > 0 || floor !== undefined) {
        await partition.applyChanges(answer.changes, { compacted: answer.compacted, ...(floor === undefined ? {} : { floor, since: vectors.changes, complete: !answer.more }) });
      }
      if (answer.events.length > 0) await partition.applyEvents(answer.events);
      const progressed =
        !dominates(vectors.changes, partition.vectorOf('changes')) || !dominates(vectors.events, partition.vectorOf('events'));
      if (!answer.more || !progressed) return partition;
      wait = 0;
    }
    return partition;
  }

  /**
   * This copy holds part of what `node` collected, so it may hold entities whose later records
   * (a deletion) were collected there and will never come: it is made anew from `node`'s copy.
   * What it holds that `node` lacks goes there first, so nothing is lost; the copy's readers
   * start over (their subscriptions end; their cursors have expired).
   */
  private async rebuild(node: string, partition: Partition, theirs: Vectors): Promise<Partition | undefined> {
    const id = partition.partition;
    const deadline = this.clock.now() + this.options.writeTimeoutMs;
    const mine = { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') };
    const changes = dominates(theirs.changes, mine.changes) || (await this.ensure(node, partition, 'changes', mine.changes, theirs.changes, deadline));
    const events = changes && (dominates(theirs.events, mine.events) || (await this.ensure(node, partition, 'events', mine.events, theirs.events, deadline)));
    if (!events) return undefined;
    this.logger.info({ partition: id, from: node }, "rebuilding a copy that is behind a peer's collected history");
    await this.engine.purgeById(id);
    this.peerVectorsForget(id);
    this.stability.delete(id);
    return this.engine.partitionById(id);
  }

  /**
   * The records of `id` history collection may act on here (Partition.collectHistory): those
   * causally stable across the partition's current replicas, as they last reported their
   * vectors in anti-entropy (replication/stability.ts). Undefined when this node is not one of
   * them or the copy is not open. Each call is one step of the computation.
   */
  stableVector(id: string): VersionVector | undefined {
    const partition = this.engine.openedPartition(id);
    const list = this.preferenceList(id);
    if (partition === undefined || !list.includes(this.nodeId)) {
      this.stability.delete(id);
      return undefined;
    }
    const vectors = list.map((node) => (node === this.nodeId ? partition.vectorOf('changes') : this.peerVectors.get(`${node}|${id}`)?.changes));
    const next = advanceStability(this.stability.get(id) ?? initialStability, list, vectors);
    this.stability.set(id, next);
    return next.stable;
  }

  // ------------------------------------------------------------------ visibility

  /** Each replica of a partition: its vectors, entity digest and lag (null when unreachable). */
  async replicaStatus(partition: Partition): Promise<ReplicaStatus[]> {
    const id = partition.partition;
    const answers = await Promise.all(
      this.preferenceList(id).map(async (node) => {
        if (node === this.nodeId) {
          const { digest, entities } = await partition.digest();
          return { nodeId: node, up: true, changes: partition.vectorOf('changes'), events: partition.vectorOf('events'), digest, entities };
        }
        try {
          const answer = expect(await this.call(node, { type: 'status', partition: id }, this.options.requestTimeoutMs), 'status');
          return { nodeId: node, up: true, changes: answer.vectors.changes, events: answer.vectors.events, digest: answer.digest, entities: answer.entities };
        } catch {
          return { nodeId: node, up: false, changes: null, events: null, digest: null, entities: null };
        }
      }),
    );
    const known = (stream: 'changes' | 'events') => {
      const max = new Map<string, number>();
      for (const answer of answers) for (const [origin, seq] of Object.entries(answer[stream] ?? {})) max.set(origin, Math.max(max.get(origin) ?? 0, seq));
      return max;
    };
    const maxChanges = known('changes');
    const maxEvents = known('events');
    return answers.map((answer) => ({
      ...answer,
      lag:
        answer.changes === null || answer.events === null
          ? null
          : lagOf(answer.changes, maxChanges) + lagOf(answer.events, maxEvents),
    }));
  }

  // ------------------------------------------------------------------ peer requests

  private async handle(from: string, request: PeerRequest): Promise<PeerResponse> {
    this.membership.heard(from);
    if (!isPeerRequest(request)) return { type: 'error', code: ErrorCode.BAD_REQUEST, message: 'not a peer request' };
    try {
      switch (request.type) {
        case 'ping':
          if (this.membership.merge(request.members)) this.membershipChanged();
          return { type: 'pong', members: this.membership.list() };
        case 'submit': {
          this.logger.debug?.({ reqId: request.requestId, from, partition: request.partition, changes: request.changes.length }, 'coordinating a write forwarded by a peer');
          const partition = await this.engine.partitionById(request.partition);
          return { type: 'submitted', outcomes: await this.coordinateChanges(partition, request.changes, request.clientId, request.caller) };
        }
        case 'pushEvents': {
          this.logger.debug?.({ reqId: request.requestId, from, partition: request.partition, events: request.events.length }, 'coordinating events forwarded by a peer');
          const partition = await this.engine.partitionById(request.partition);
          return { type: 'pushedEvents', outcome: await this.coordinateEvents(partition, request.events, request.since, request.author, request.refused) };
        }
        case 'configure': {
          const partition = await this.engine.partitionById(request.partition);
          const config = request.replicate ? await this.coordinateConfigure(partition, request.patch) : await partition.configure(request.patch, { admin: true });
          return { type: 'configured', config };
        }
        case 'push': {
          const partition = await this.engine.partitionById(request.partition);
          const floor = request.floor === undefined ? {} : { floor: request.floor, since: request.since ?? emptyVector, complete: request.complete === true };
          const changes =
            request.changes.length > 0 || request.floor !== undefined
              ? await partition.applyChanges(request.changes, { compacted: request.compacted, ...floor })
              : partition.vectorOf('changes');
          const events = request.events.length > 0 ? await partition.applyEvents(request.events) : partition.vectorOf('events');
          return { type: 'vectors', vectors: { changes, events } };
        }
        case 'pull':
          return await this.answerPull(request);
        case 'vectors': {
          const partitions: Record<string, Vectors> = {};
          const configs: Record<string, BucketConfig> = {};
          for (const id of request.partitions.slice(0, 100_000)) {
            if (typeof id !== 'string') continue;
            const partition = await this.engine.partitionById(id);
            partitions[id] = { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') };
            const config = await partition.storedConfig();
            if (config?.stamp !== undefined) configs[id] = config;
          }
          return { type: 'allVectors', partitions, configs };
        }
        case 'dirPush':
          if (this.directory === undefined) return { type: 'error', code: ErrorCode.BAD_REQUEST, message: 'no replicated directory' };
          return { type: 'dirVector', vector: await this.directory.apply(Array.isArray(request.records) ? request.records : []) };
        case 'dirPull': {
          if (this.directory === undefined) return { type: 'error', code: ErrorCode.BAD_REQUEST, message: 'no replicated directory' };
          const limit = Math.max(1, Math.min(Number.isSafeInteger(request.limit) ? request.limit : 500, 5000));
          const { records, more } = await this.directory.recordsSince(request.vector ?? emptyVector, limit);
          return { type: 'dirRecords', records, more };
        }
        case 'instances':
          return { type: 'instances', instances: await this.engine.instances(request.app, request.owner ?? undefined) };
        case 'purgeOwner':
          return { type: 'purged', instances: await this.engine.purgeOwner(request.app, request.owner) };
        case 'status': {
          const partition = await this.engine.partitionById(request.partition);
          const { digest, entities } = await partition.digest();
          return { type: 'status', vectors: { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') }, digest, entities };
        }
      }
    } catch (error) {
      if (isSyncError(error)) return { type: 'error', code: error.code, message: error.message };
      this.logger.warn({ err: error, from, request: request.type }, 'peer request failed');
      return { type: 'error', code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'peer request failed' };
    }
  }

  private async answerPull(request: Extract<PeerRequest, { type: 'pull' }>): Promise<PeerResponse> {
    const partition = await this.engine.partitionById(request.partition);
    const limit = Math.max(1, Math.min(Number.isSafeInteger(request.limit) ? request.limit : 500, 5000));
    const holdsNothingNew = () =>
      dominates(request.vectors.changes, partition.vectorOf('changes')) && dominates(request.vectors.events, partition.vectorOf('events'));
    if (request.waitMs > 0 && holdsNothingNew()) await this.waitForNews(partition, Math.min(request.waitMs, 30_000));
    const changes = await partition.recordsSince('changes', request.vectors.changes, limit);
    const events = await partition.recordsSince('events', request.vectors.events, limit);
    return {
      type: 'records',
      changes: changes.records,
      events: events.records,
      more: changes.more || events.more,
      compacted: changes.compacted,
      ...(changes.floor === undefined ? {} : { floor: changes.floor }),
      vectors: { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') },
    };
  }

  /** Resolves when the partition publishes a record, or after `ms`. */
  private waitForNews(partition: Partition, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const changes = partition.changeFeed.attach(1);
      const events = partition.eventFeed.attach(1);
      let timer: unknown;
      const done = () => {
        changes.close();
        events.close();
        this.clock.clearTimeout(timer);
        resolve();
      };
      timer = this.clock.setTimeout(done, ms);
      void changes.next().then(done);
      void events.next().then(done);
    });
  }

  // ------------------------------------------------------------------ background

  private heartbeat(): Promise<void> {
    const members = this.membership.list();
    return Promise.all(
      this.membership.others().map(async (node) => {
        try {
          const answer = expect(await this.call(node, { type: 'ping', members }, this.options.requestTimeoutMs), 'pong');
          if (this.membership.merge(answer.members)) this.membershipChanged();
        } catch {
          // call() marked it down
        }
      }),
    ).then(() => undefined);
  }

  /** One round of anti-entropy and handoff; rounds never overlap. */
  private background(): Promise<void> {
    this.rounds = this.rounds
      .then(() => this.round())
      .then(() => this.onRound?.())
      .catch((error: unknown) => this.logger.warn({ err: error }, 'anti-entropy round failed'));
    return this.rounds;
  }

  /** Runs one anti-entropy and handoff round now (tests and the simulation call it). */
  runRound(): Promise<void> {
    return this.background();
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    const ids = await this.engine.partitionIds();
    const byPeer = new Map<string, string[]>();
    const foreign: string[] = [];
    for (const id of ids) {
      const list = this.preferenceList(id);
      if (!list.includes(this.nodeId)) {
        foreign.push(id);
        continue;
      }
      for (const node of list) {
        if (node === this.nodeId || !this.membership.isUp(node)) continue;
        let shared = byPeer.get(node);
        if (shared === undefined) byPeer.set(node, (shared = []));
        shared.push(id);
      }
    }
    await Promise.all([...byPeer].map(([node, shared]) => this.compareWith(node, shared)));
    await this.handOver(foreign);
    // The directory: what any member holds that this node lacks (each node pulls; all converge).
    await Promise.all(
      this.membership
        .others()
        .filter((node) => this.membership.isUp(node))
        .map((node) => this.pullDirectory(node).catch(() => undefined)),
    );
  }

  /** Anti-entropy with one peer: vectors of every partition we share, then pull and push the differences. */
  private async compareWith(node: string, ids: string[]): Promise<void> {
    let answer: PeerResponse;
    try {
      answer = expect(await this.call(node, { type: 'vectors', partitions: ids }, this.options.requestTimeoutMs), 'allVectors');
    } catch {
      return;
    }
    for (const id of ids) {
      if (this.stopped) return;
      const theirs = answer.partitions[id];
      if (theirs === undefined) continue;
      this.remember(node, id, theirs);
      let partition = await this.engine.partitionById(id);
      try {
        const mine = { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') };
        if (!dominates(mine.changes, theirs.changes) || !dominates(mine.events, theirs.events)) {
          this.onRepair?.(node, 'pull');
          partition = await this.pull(node, partition, 0);
        }
        // Bucket settings: the latest, by stamp, wins everywhere.
        const config = answer.configs?.[id];
        if (config !== undefined) await partition.adoptConfig(config);
        const deadline = this.clock.now() + this.options.writeTimeoutMs;
        if (!dominates(theirs.changes, mine.changes) || !dominates(theirs.events, mine.events)) this.onRepair?.(node, 'push');
        if (!dominates(theirs.changes, mine.changes)) await this.ensure(node, partition, 'changes', mine.changes, theirs.changes, deadline);
        if (!dominates(theirs.events, mine.events)) await this.ensure(node, partition, 'events', mine.events, theirs.events, deadline);
        this.synced.add(id);
      } catch {
        this.membership.failed(node);
        return;
      }
    }
  }

  /**
   * Partitions held here that belong elsewhere: pushed to every node of their list, then
   * dropped here once all of them hold everything (and no reader here still uses the copy).
   */
  private async handOver(ids: string[]): Promise<void> {
    // Counted from the start of the round, so that a status query sees the work still ahead.
    this.handoff.pending = ids.length;
    let pending = 0;
    const byPeer = new Map<string, number>();
    // What each list member holds of these partitions, in one request per member.
    const members = new Set(ids.flatMap((id) => this.preferenceList(id)).filter((n) => n !== this.nodeId && this.membership.isUp(n)));
    await Promise.all(
      [...members].map(async (node) => {
        const theirs = ids.filter((id) => this.preferenceList(id).includes(node));
        try {
          const answer = expect(await this.call(node, { type: 'vectors', partitions: theirs }, this.options.requestTimeoutMs), 'allVectors');
          for (const [id, vectors] of Object.entries(answer.partitions)) this.remember(node, id, vectors);
        } catch {
          // down: handed over in a later round
        }
      }),
    );
    for (const id of ids) {
      if (this.stopped) return;
      const partition = await this.engine.partitionById(id);
      const list = this.preferenceList(id);
      const mine = { changes: partition.vectorOf('changes'), events: partition.vectorOf('events') };
      const deadline = this.clock.now() + this.options.writeTimeoutMs;
      const behind: string[] = [];
      for (const node of list) {
        if (!this.membership.isUp(node)) {
          behind.push(node);
          continue;
        }
        const changes = await this.ensure(node, partition, 'changes', mine.changes, emptyVector, deadline);
        const events = await this.ensure(node, partition, 'events', mine.events, emptyVector, deadline);
        if (!(changes && events)) behind.push(node);
      }
      const all = behind.length === 0;
      for (const node of behind) byPeer.set(node, (byPeer.get(node) ?? 0) + 1);
      const use = this.cached.get(id);
      const inUse = use !== undefined && (use.followers > 0 || this.clock.now() - use.lastUse < this.options.cacheIdleMs);
      if (all && !inUse && partition.changeFeed.size + partition.eventFeed.size === 0 && list.length > 0) {
        await this.engine.purgeById(id);
        this.cached.delete(id);
        this.peerVectorsForget(id);
        this.handoff.moved++;
        this.handoff.pending--;
        this.logger.info({ partition: id, to: list }, 'partition handed over');
      } else pending++;
    }
    this.handoff.pending = pending;
    this.handoffByPeer = byPeer;
  }

  /** Per peer of a partition's list: records it lacked at the last exchange that this node holds (open partitions only). */
  partitionLag(id: string): Record<string, number> {
    const partition = this.engine.openedPartition(id);
    if (partition === undefined) return {};
    const lag: Record<string, number> = {};
    for (const node of this.preferenceList(id)) {
      const theirs = this.peerVectors.get(`${node}|${id}`);
      if (node === this.nodeId || theirs === undefined) continue;
      lag[node] =
        lagOf(theirs.changes, new Map(Object.entries(partition.vectorOf('changes')))) + lagOf(theirs.events, new Map(Object.entries(partition.vectorOf('events'))));
    }
    return lag;
  }

  /**
   * Per peer: records of the partitions both replicate, open here, that this node holds and the
   * peer lacked when it last told its vectors; and partitions held here for it.
   */
  peerStats(): Array<{ peer: string; lagRecords: number; handoffPartitions: number }> {
    const lag = new Map<string, number>();
    for (const [key, theirs] of this.peerVectors) {
      const bar = key.indexOf('|');
      const peer = key.slice(0, bar);
      const partition = this.engine.openedPartition(key.slice(bar + 1));
      if (partition === undefined) continue;
      const missing = lagOf(theirs.changes, new Map(Object.entries(partition.vectorOf('changes')))) + lagOf(theirs.events, new Map(Object.entries(partition.vectorOf('events'))));
      lag.set(peer, (lag.get(peer) ?? 0) + missing);
    }
    return this.membership
      .others()
      .sort()
      .map((peer) => ({ peer, lagRecords: lag.get(peer) ?? 0, handoffPartitions: this.handoffByPeer.get(peer) ?? 0 }));
  }

  // ------------------------------------------------------------------ helpers

  private async call(node: string, request: PeerRequest, timeoutMs: number): Promise<PeerResponse> {
    let answer: PeerResponse;
    try {
      answer = await this.transport.call(node, request, timeoutMs);
    } catch (error) {
      this.membership.failed(node);
      throw error;
    }
    this.membership.heard(node);
    if (answer.type === 'error') throw new RemoteError(answer.code, answer.message);
    return answer;
  }

  private remember(node: string, id: string, vectors: Vectors): void {
    this.peerVectors.set(`${node}|${id}`, vectors);
  }

  private peerVectorsForget(id: string): void {
    for (const key of [...this.peerVectors.keys()]) if (key.endsWith(`|${id}`)) this.peerVectors.delete(key);
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const tick = () => {
      if (this.stopped) return;
      void fn().finally(() => {
        if (!this.stopped) this.timers.push(this.clock.setTimeout(tick, ms));
      });
    };
    this.timers.push(this.clock.setTimeout(tick, ms));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.timers.push(this.clock.setTimeout(resolve, ms)));
  }
}

/** Most passes of a user's deletion (Cluster.purgeOwner) before it gives up. */
const PURGE_PASSES_MAX = 5;

function expect<T extends PeerResponse['type']>(answer: PeerResponse, type: T): Extract<PeerResponse, { type: T }> {
  if (answer.type !== type) throw new Error(`peer answered ${answer.type}, expected ${type}`);
  return answer as Extract<PeerResponse, { type: T }>;
}

function remoteToLocal(error: RemoteError): Error {
  return SYNC_CODES.has(error.code) && error.code !== ErrorCode.INTERNAL_SERVER_ERROR ? new SyncError(error.code as ErrorCode, error.message) : new Error(error.message);
}

/** Resolves true once `n` of the attempts resolved true, false once that became impossible. */
function atLeast(attempts: Array<Promise<boolean>>, n: number): Promise<boolean> {
  return new Promise((resolve) => {
    let ok = 0;
    let failed = 0;
    if (attempts.length < n) resolve(false);
    for (const attempt of attempts) {
      attempt.then(
        (success) => {
          if (success) ok++;
          else failed++;
          if (ok >= n) resolve(true);
          else if (attempts.length - failed < n) resolve(false);
        },
        () => {
          failed++;
          if (attempts.length - failed < n) resolve(false);
        },
      );
    }
  });
}

function lagOf(vector: VersionVector, newest: ReadonlyMap<string, number>): number {
  let lag = 0;
  for (const [origin, seq] of newest) lag += Math.max(0, seq - seqOf(vector, origin));
  return lag;
}
