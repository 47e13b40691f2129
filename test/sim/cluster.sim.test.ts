/**
 * Deterministic simulation of the peer cluster (test/sim/world.ts): clients write through random
 * nodes while the network loses, delays, duplicates and reorders messages, nodes crash and
 * restart, pause and resume, and the network splits and heals. Then the faults stop, and the
 * invariants of DESIGN.md are checked on every partition's replicas:
 *   1. no acknowledged change is lost;   2. no ccid is listed twice;
 *   3. replicas hold identical entities (equal digests) and vectors;
 *   4. a reader moving between nodes with its cursor sees each record once, and all of them.
 *
 * `npm test` runs SIM_SEEDS seeds (default 200); `SIM_SEEDS=5000 npx vitest run test/sim` runs
 * more; `SIM_SEED=1234` replays one seed.
 */
import { describe, expect, it } from 'vitest';
import type { ChangeInput, Partition } from '../../src/engine/partition.js';
import { healAll, simSeeds, World, type SimNode } from './world.js';

const admin = { admin: true };
const BUCKETS = ['b0', 'b1', 'b2', 'b3'];
const KEYS = ['k0', 'k1', 'k2'];
const TIMEOUT = Symbol('timeout');

interface Outcome {
  seed: number;
  acked: Map<string, Set<string>>;
}

async function scenario(seed: number): Promise<void> {
  const probe = new World(seed, [], { loss: 0, duplicate: 0, delayMin: 0, delayMax: 0 }, {});
  const five = probe.rng.chance(0.3);
  const ids = five ? ['n1', 'n2', 'n3', 'n4', 'n5'] : ['n1', 'n2', 'n3'];
  const faults = {
    loss: probe.rng.pick([0, 0.01, 0.05, 0.15]),
    duplicate: probe.rng.pick([0, 0.05, 0.2]),
    delayMin: 1,
    delayMax: probe.rng.pick([5, 50, 400]),
  };
  const world = new World(seed, ids, faults, {
    replicas: 3,
    heartbeatMs: 500,
    suspectAfterMs: 1500,
    antiEntropyMs: 2000,
    requestTimeoutMs: 1000,
    writeTimeoutMs: 3000,
    batchMax: 7,
    cacheIdleMs: 4000,
  });
  const { time, rng } = world;
  await world.boot();
  const sleep = (ms: number) => new Promise<void>((resolve) => time.setTimeout(resolve, ms));
  const timed = <T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> =>
    Promise.race([promise, new Promise<typeof TIMEOUT>((resolve) => time.setTimeout(() => resolve(TIMEOUT), ms))]);
  const running = () => world.nodes.filter((n) => n.state === 'up');

  const outcome: Outcome = { seed, acked: new Map(BUCKETS.map((b) => [b, new Set<string>()])) };
  const chaosEnd = time.now() + 20_000;

  /**
   * Sends a request through random running nodes until `acknowledged` says it was (the same
   * request each time: same ccid, same uuid), pausing between attempts. A node that crashes or
   * stalls mid-request costs a timeout.
   */
  const untilAcknowledged = async <T>(bucket: string, send: (partition: Partition, node: SimNode) => Promise<T>, acknowledged: (result: T, node: SimNode) => boolean) => {
    for (;;) {
      const nodes = running();
      if (nodes.length > 0) {
        const node = rng.pick(nodes);
        const result = await timed(
          node.engine.partition('app', bucket).then((p) => send(p, node)),
          8000,
        ).catch(() => TIMEOUT);
        if (result !== TIMEOUT && acknowledged(result as T, node)) return;
      }
      await sleep(200 + rng.int(800));
    }
  };

  // Clients: each change retried (same ccid) on other nodes until acknowledged.
  const client = async (c: number) => {
    for (let k = 0; k < 8; k++) {
      const bucket = rng.pick(BUCKETS);
      const ccid = (seed * 64 + c * 16 + k).toString(16).padStart(10, '0');
      const change: ChangeInput = { ccid, key: rng.pick(KEYS), op: 'MODIFY', diff: { [`f${rng.int(3)}`]: { o: '+', v: rng.int(1000) } } };
      await untilAcknowledged(
        bucket,
        (partition, node) => node.cluster.submitChanges(partition, [change], null, admin),
        ([result], node) => {
          if (result!.error !== null) throw new Error(`change refused: ${JSON.stringify(result!.error)}`);
          // A no-op (the change altered nothing) leaves no record to find later.
          if (!result!.noop) outcome.acked.get(bucket)!.add(ccid);
          if (process.env.SIM_DEBUG) console.log(time.now() - chaosEnd, 'ack', bucket, ccid, 'via', node.id, result!.change?.origin, result!.change?.originSeq, result!.duplicate);
          return true;
        },
      );
      await sleep(rng.int(1500));
      if (rng.chance(0.3)) await pushEvent(c * 16 + k);
    }
  };

  // Events too: each pushed until acknowledged (a repeated uuid is stored once).
  const ackedEvents = new Map(BUCKETS.map((b) => [b, new Set<string>()]));
  const pushEvent = async (n: number) => {
    const bucket = rng.pick(BUCKETS);
    const uuid = `018b0000-0000-7000-8000-${(seed * 256 + n).toString(16).padStart(12, '0')}`;
    const event = { uuid, timestamp: String(0x018b00000000), user: 'u', item: 'i', action: 'a', payload: JSON.stringify({ n }) };
    await untilAcknowledged(
      bucket,
      (partition, node) => node.cluster.pushEvents(partition, [event], null, null),
      (result) => {
        if (result.rejected.length > 0) throw new Error(`event refused: ${JSON.stringify(result.rejected)}`);
        ackedEvents.get(bucket)!.add(uuid);
        return true;
      },
    );
  };

  // A reader of one bucket that moves between nodes with its cursor.
  const seen: string[] = [];
  let cursor: string | null = null;
  const readBucket = 'b0';
  const readOnce = async (node: SimNode) => {
    const result = await timed(
      (async () => {
        const partition = await node.engine.partition('app', readBucket);
        await node.cluster.beforeRead(partition);
        return partition.changes(cursor, 5);
      })(),
      5000,
    ).catch(() => TIMEOUT);
    if (typeof result === 'symbol') return false;
    if (process.env.SIM_DEBUG) console.log(node.id, JSON.stringify(cursor), result.changes.map((c) => `${c.origin}:${c.originSeq}`), result.cursor);
    for (const change of result.changes) seen.push(`${change.origin}:${change.originSeq}`);
    cursor = result.cursor;
    return result.hasMore;
  };
  const reader = async () => {
    while (time.now() < chaosEnd) {
      const nodes = running();
      if (nodes.length > 0) await readOnce(rng.pick(nodes));
      await sleep(300 + rng.int(700));
    }
  };

  // Faults: crashes, pauses and partitions, each healed after a while.
  const chaos = async () => {
    while (time.now() < chaosEnd - 3000) {
      await sleep(500 + rng.int(2500));
      const node = rng.pick(world.nodes);
      const what = rng.int(5);
      if (process.env.SIM_DEBUG) console.log(time.now() - chaosEnd, 'chaos', what, node.id, node.state);
      switch (what) {
        case 0:
          if (node.state !== 'up') break;
          node.crash();
          await sleep(500 + rng.int(4000));
          await node.restart();
          if (process.env.SIM_DEBUG) console.log(time.now() - chaosEnd, 'restarted', node.id);
          break;
        case 1:
          node.pause();
          await sleep(500 + rng.int(3000));
          node.resume();
          break;
        case 2: {
          const others = world.nodes.filter((n) => n !== node).map((n) => n.id);
          world.network.partition([node.id], others);
          await sleep(1000 + rng.int(4000));
          world.network.heal();
          break;
        }
        case 3: {
          // Membership: the node leaves the ring (its partitions move away), then joins again.
          if (world.nodes.length < 5) break;
          const admin = rng.pick(running().filter((n) => n !== node));
          if (admin === undefined) break;
          admin.cluster.setMemberStatus(node.id, 'left');
          await sleep(2000 + rng.int(4000));
          const back = rng.pick(running());
          if (back !== undefined) back.cluster.setMemberStatus(node.id, 'active');
          break;
        }
        default:
          break;
      }
    }
  };

  const clients = Promise.all([0, 1, 2].map(client));
  const background = Promise.all([reader(), chaos()]);
  await time.runUntil(chaosEnd);
  // Heal everything, stop the faults, and let the clients finish.
  await healAll(world);
  let done = false;
  void clients.then(() => (done = true));
  const debug = (...args: unknown[]) => process.env.SIM_DEBUG && console.log(time.now() - chaosEnd, ...args);
  debug('healed');
  for (let i = 0; i < 200 && !done; i++) await time.runFor(1000);
  expect(done, `seed ${seed}: clients did not finish`).toBe(true);
  debug('clients done');
  await time.runFor(5000);
  await background;
  debug('background done');
  // Anti-entropy rounds everywhere, until nothing differs.
  for (let i = 0; i < 3; i++) {
    for (const node of world.nodes) void node.cluster.runRound();
    await time.runFor(3000);
    debug('round', i);
  }

  // The checks below must have something to check.
  expect([...outcome.acked.values()].reduce((n, set) => n + set.size, 0), `seed ${seed}: nothing acknowledged`).toBeGreaterThan(10);
  for (const bucket of BUCKETS) {
    debug('check', bucket);
    const id = `app/${bucket}`;
    const list = world.nodes[0]!.cluster.preferenceList(id);
    for (const node of world.nodes) expect(node.cluster.preferenceList(id), `seed ${seed}: rings differ`).toEqual(list);
    const replicas = await Promise.all(list.map((n) => world.node(n).engine.partition('app', bucket)));
    const states = await Promise.all(
      replicas.map(async (p) => ({ vector: p.vectorOf('changes'), digest: await p.digest(), entities: await p.entities(1000, null, true) })),
    );
    if (process.env.SIM_DEBUG) {
      for (const [i, p] of replicas.entries()) {
        const page = await p.changes(null, 1000);
        console.log(list[i], id, JSON.stringify(page.changes.map((c) => [c.origin, c.originSeq, c.key, c.version, c.data])));
      }
    }
    for (const state of states.slice(1)) expect(state, `seed ${seed}: replicas of ${id} differ`).toEqual(states[0]);
    const eventVectors = replicas.map((p) => p.vectorOf('events'));
    for (const vector of eventVectors.slice(1)) expect(vector, `seed ${seed}: event logs of ${id} differ`).toEqual(eventVectors[0]);
    for (const partition of replicas) {
      const ccids: string[] = [];
      let since: string | null = null;
      for (;;) {
        const page = await partition.changes(since, 1000);
        ccids.push(...page.changes.map((c) => c.ccid));
        since = page.cursor;
        if (!page.hasMore) break;
      }
      expect(new Set(ccids).size, `seed ${seed}: a ccid listed twice in ${id}`).toBe(ccids.length);
      const uuids = (await partition.events(null, 1000)).events.map((e) => e.uuid);
      expect(new Set(uuids).size, `seed ${seed}: an event listed twice in ${id}`).toBe(uuids.length);
      for (const uuid of ackedEvents.get(bucket)!) expect(uuids, `seed ${seed}: acknowledged event ${uuid} lost from ${id}`).toContain(uuid);
      for (const ccid of outcome.acked.get(bucket)!) expect(ccids, `seed ${seed}: acknowledged ${ccid} lost from ${id}`).toContain(ccid);
    }
  }

  // The reader finishes on a replica: every record once.
  const list = world.nodes[0]!.cluster.preferenceList(`app/${readBucket}`);
  const last = world.node(rng.pick(list));
  for (;;) {
    // Virtual time must run while the reader waits on the network.
    const more = await world.within(readOnce(last), 10_000);
    if (more === undefined || !('value' in more) || !more.value) break;
  }
  expect(new Set(seen).size, `seed ${seed}: the reader saw a record twice`).toBe(seen.length);
  const partition = await last.engine.partition('app', readBucket);
  const all = await partition.changes(null, 1000);
  for (const change of all.changes) expect(seen, `seed ${seed}: the reader missed a record`).toContain(`${change.origin}:${change.originSeq}`);

  // Stopping waits for rounds in flight, which need virtual time to finish.
  await world.within(Promise.all(world.nodes.map((node) => node.cluster.stop())), 30_000);
}

const seeds = simSeeds('SIM_SEEDS', 200);

describe('cluster simulation', () => {
  it.each(seeds)('seed %i keeps the invariants', async (seed) => {
    await scenario(seed);
  }, 120_000);
});
