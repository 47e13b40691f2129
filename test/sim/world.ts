/**
 * A deterministic world for the cluster simulation: virtual time, a seeded random source, a
 * network that loses, delays, duplicates and reorders messages and can be partitioned, and node
 * processes that can crash (their store stops mid-write; a restart reopens what was durable) or
 * pause (SIGSTOP: their timers and inbound messages wait). The replication code under test is the
 * real one (src/replication/cluster.ts over src/engine); only time, network and disk are ours.
 * Everything depends on the seed alone, so a failing seed replays exactly.
 */
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { defaultLimits } from '../../src/options.js';
import { defaultRetention } from '../../src/model/retention.js';
import { Cluster, type ClusterOptions } from '../../src/replication/cluster.js';
import type { PeerRequest, PeerResponse } from '../../src/replication/protocol.js';
import type { PeerTransport, Timers } from '../../src/replication/transport.js';
import type { KeyValueStore, RangeOptions, WriteOp } from '../../src/storage/store.js';
import { MemoryStore } from '../unit/memory-store.js';

/** mulberry32: small, fast, and the same everywhere. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Virtual time: timers fire in (time, creation) order; nothing waits for real time. */
export class VirtualTime implements Timers {
  private time = 1_700_000_000_000;
  private seq = 0;
  private readonly queue: Timer[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    // Sorted insert (the queue stays small).
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1]!.at > timer.at || (this.queue[i - 1]!.at === timer.at && this.queue[i - 1]!.seq > timer.seq))) i--;
    this.queue.splice(i, 0, timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    if (handle !== undefined && handle !== null) (handle as Timer).cancelled = true;
  }

  /** Runs timers (and the promise chains they start) until `until`. */
  async runUntil(until: number): Promise<void> {
    for (;;) {
      await drain();
      const next = this.queue[0];
      if (next === undefined || next.at > until) break;
      this.queue.shift();
      if (next.cancelled) continue;
      this.time = next.at;
      next.fn();
    }
    this.time = Math.max(this.time, until);
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(this.time + ms);
  }
}

/** Lets every pending promise continuation run (a few event-loop turns; no timers involved). */
export async function drain(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A store that can lose power: after `crash()`, nothing completes (in-flight writes are lost). */
class PoweredStore implements KeyValueStore {
  alive = true;
  constructor(private readonly disk: MemoryStore) {}
  private gate<T>(run: () => Promise<T>): Promise<T> {
    return this.alive ? run() : new Promise<T>(() => undefined);
  }
  get(key: string) {
    return this.gate(() => this.disk.get(key));
  }
  getMany(keys: string[]) {
    return this.gate(() => this.disk.getMany(keys));
  }
  write(ops: WriteOp[], options: { sync: boolean }) {
    return this.gate(() => this.disk.write(ops, options));
  }
  async *entries(range: RangeOptions): AsyncIterable<[string, string]> {
    if (!this.alive) await new Promise(() => undefined);
    yield* this.disk.entries(range);
  }
  page(range: RangeOptions & { limit: number }) {
    return this.gate(() => this.disk.page(range));
  }
  clear(range: RangeOptions) {
    return this.gate(() => this.disk.clear(range));
  }
  async close(): Promise<void> {}
}

export interface Faults {
  /** Probability that a message is lost. */
  loss: number;
  /** Probability that a request is delivered twice. */
  duplicate: number;
  /** Delivery delay, uniform in [min, max] ms (so messages overtake each other). */
  delayMin: number;
  delayMax: number;
}

/** One node process of the simulation. */
export class SimNode {
  engine!: Engine;
  cluster!: Cluster;
  state: 'up' | 'crashed' | 'paused' = 'up';
  private store!: PoweredStore;
  private readonly disk = new MemoryStore();
  private handler: ((from: string, request: PeerRequest) => Promise<PeerResponse>) | undefined;
  /** Timers and messages held while paused. */
  private held: Array<() => void> = [];
  private incarnation = 0;

  constructor(
    readonly id: string,
    private readonly world: World,
  ) {}

  async boot(): Promise<void> {
    this.incarnation++;
    const incarnation = this.incarnation;
    this.store = new PoweredStore(this.disk);
    let ids = 0;
    const time = this.world.time;
    this.engine = await Engine.open(this.store, {
      now: () => time.now(),
      newId: () => `0190a000-0000-7000-8${this.id.padStart(3, '0').slice(-3)}-${incarnation.toString(16).padStart(2, '0')}${(++ids).toString(16).padStart(10, '0')}`,
      newNodeId: () => `origin-${this.id}`,
      limits: defaultLimits,
      retention: defaultRetention,
      keepClearedLog: true,
      onBackgroundError: () => undefined,
      ...this.world.engineOptions,
    });
    const timers: Timers = {
      now: () => time.now(),
      setTimeout: (fn, ms) => time.setTimeout(() => this.whenRunning(incarnation, fn), ms),
      clearTimeout: (handle) => time.clearTimeout(handle),
    };
    const transport: PeerTransport = {
      call: (to, request, timeoutMs) => this.world.network.call(this.id, to, request, timeoutMs),
      serve: (handler) => {
        this.handler = handler;
      },
    };
    this.cluster = new Cluster(this.engine, transport, timers, { ...this.world.clusterOptions, nodeId: this.id, address: this.id }, quietLogger);
    for (const peer of this.world.ids) if (peer !== this.id) this.cluster.peerConnected(peer, peer);
    this.cluster.start();
    this.state = 'up';
  }

  /** Runs `fn` now, later if paused, never if this incarnation crashed. */
  private whenRunning(incarnation: number, fn: () => void): void {
    if (incarnation !== this.incarnation || this.state === 'crashed') return;
    if (this.state === 'paused') this.held.push(fn);
    else fn();
  }

  /** An inbound request, as the process would see it. */
  receive(from: string, request: PeerRequest): Promise<PeerResponse> | undefined {
    if (this.state === 'crashed' || this.handler === undefined) return undefined;
    const handler = this.handler;
    const incarnation = this.incarnation;
    if (this.state === 'paused') {
      return new Promise((resolve) => this.held.push(() => void (incarnation === this.incarnation ? handler(from, request).then(resolve) : undefined)));
    }
    return handler(from, request);
  }

  crash(): void {
    this.state = 'crashed';
    this.store.alive = false;
    this.held = [];
    void this.cluster.stop();
  }

  async restart(): Promise<void> {
    await this.boot();
  }

  /** What is on the node's disk now: a backup. */
  async backup(): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for await (const entry of this.disk.entries({})) out.push(entry);
    return out;
  }

  /** The node stops, its disk is replaced by `backup` (an old one, say), and it starts again. */
  async restore(backup: ReadonlyArray<[string, string]>): Promise<void> {
    this.crash();
    await this.disk.clear({});
    this.disk.apply(backup.map(([key, value]) => ({ type: 'put' as const, key, value })));
    await this.restart();
  }

  pause(): void {
    if (this.state === 'up') this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.state = 'up';
    const held = this.held;
    this.held = [];
    for (const fn of held) fn();
  }
}

export class SimNetwork {
  /** Pairs `a|b` that cannot talk (a network partition). */
  readonly blocked = new Set<string>();

  constructor(
    private readonly world: World,
    public faults: Faults,
  ) {}

  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) for (const b of groupB) this.blocked.add(`${a}|${b}`).add(`${b}|${a}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  call(from: string, to: string, request: PeerRequest, timeoutMs: number): Promise<PeerResponse> {
    const { time, rng } = this.world;
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = time.setTimeout(() => {
        if (settled) return;
        settled = true;
        reject(new Error(`${to} did not answer`));
      }, timeoutMs);
      const send = (answerIt: boolean) =>
        this.deliver(from, to, () => {
          const answer = this.world.node(to).receive(from, structuredClone(request));
          if (answer === undefined || !answerIt) return;
          void answer.then((response) =>
            this.deliver(to, from, () => {
              if (settled) return;
              settled = true;
              time.clearTimeout(timer);
              resolve(structuredClone(response));
            }),
          );
        });
      send(true);
      if (rng.chance(this.faults.duplicate)) send(false);
    });
  }

  private deliver(from: string, to: string, fn: () => void): void {
    const { time, rng } = this.world;
    if (this.blocked.has(`${from}|${to}`) || rng.chance(this.faults.loss)) return;
    const delay = this.faults.delayMin + rng.int(this.faults.delayMax - this.faults.delayMin + 1);
    time.setTimeout(() => {
      // The network may have split while the message travelled.
      if (!this.blocked.has(`${from}|${to}`)) fn();
    }, delay);
  }
}

export class World {
  readonly time = new VirtualTime();
  readonly rng: Rng;
  readonly network: SimNetwork;
  readonly nodes: SimNode[];
  readonly clusterOptions: Omit<ClusterOptions, 'nodeId' | 'address'>;
  readonly ids: string[];

  constructor(
    seed: number,
    ids: readonly string[],
    faults: Faults,
    clusterOptions: Omit<ClusterOptions, 'nodeId' | 'address'>,
    /** Engine options of every node (e.g. `history`). */
    readonly engineOptions: Partial<EngineOptions> = {},
  ) {
    this.rng = new Rng(seed);
    this.network = new SimNetwork(this, faults);
    this.clusterOptions = clusterOptions;
    this.ids = [...ids];
    this.nodes = ids.map((id) => new SimNode(id, this));
  }

  /** A node that joins the running cluster: it connects to every other, and gossip does the rest. */
  async addNode(id: string): Promise<SimNode> {
    const node = new SimNode(id, this);
    this.ids.push(id);
    this.nodes.push(node);
    await node.boot();
    return node;
  }

  async boot(): Promise<void> {
    for (const node of this.nodes) await node.boot();
  }

  node(id: string): SimNode {
    return this.nodes.find((n) => n.id === id)!;
  }

  /** Settles `promise` within `ms` of virtual time, or undefined. */
  async within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | undefined> {
    let result: { value: T } | { error: unknown } | undefined;
    promise.then(
      (value) => (result = { value }),
      (error: unknown) => (result = { error }),
    );
    const until = this.time.now() + ms;
    while (result === undefined && this.time.now() < until) await this.time.runUntil(Math.min(until, this.time.now() + 50));
    return result;
  }
}

const quietLogger = { info: () => undefined, warn: () => undefined };

/** The seeds a simulation runs: `SIM_SEED` alone when set, else 1 to N (`countVariable`, or `fallback`). */
export function simSeeds(countVariable: string, fallback: number): number[] {
  const only = process.env['SIM_SEED'];
  const count = Number(process.env[countVariable] ?? fallback);
  return only !== undefined ? [Number(only)] : Array.from({ length: count }, (_, i) => i + 1);
}

/** Ends the faults: the network healed and quiet, paused nodes resumed, crashed ones restarted. */
export async function healAll(world: World): Promise<void> {
  world.network.heal();
  world.network.faults = { loss: 0, duplicate: 0, delayMin: 1, delayMax: 5 };
  for (const node of world.nodes) {
    if (node.state === 'paused') node.resume();
    if (node.state === 'crashed') await node.restart();
  }
}
