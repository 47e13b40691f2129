/**
 * Deterministic simulation of history collection in a cluster (test/sim/world.ts): clients update
 * and delete a few entities through random nodes while the network loses, delays, duplicates and
 * reorders messages, a replica is down for a while and comes back, and every node collects its
 * history at random moments (horizon and ccid window: 10 s of virtual time). After the faults, a
 * replica is restored from a backup taken mid-run (behind what the others collected), and a
 * fourth node joins: partitions move to it from copies whose history was collected. Then:
 *   - every replica of every partition holds the same entities (digests) and vectors;
 *   - each entity is as its last acknowledged write left it (every key has one writer, writes are
 *     full objects, so the last in the total order wins);
 *   - each live entity's latest record is still listed, and no ccid is listed twice;
 *   - collection removed records: the logs hold little more than one record per live entity.
 *
 * `HISTORY_SIM_SEEDS` seeds run (default 12); `SIM_SEED=1234` replays one.
 */
import { describe, expect, it } from 'vitest';
import type { ChangeInput, Partition } from '../../src/engine/partition.js';
import type { HistoryCollected } from '../../src/engine/partition.js';
import { healAll, simSeeds, World, type SimNode } from './world.js';

const admin = { admin: true };
const BUCKETS = ['h0', 'h1'];
const TIMEOUT = Symbol('timeout');
const WINDOW_MS = 10_000;

async function scenario(seed: number): Promise<void> {
  const probe = new World(seed, [], { loss: 0, duplicate: 0, delayMin: 0, delayMax: 0 }, {});
  const faults = {
    loss: probe.rng.pick([0, 0.01, 0.05]),
    duplicate: probe.rng.pick([0, 0.05, 0.2]),
    delayMin: 1,
    delayMax: probe.rng.pick([5, 50, 300]),
  };
  const world = new World(
    seed,
    ['n1', 'n2', 'n3'],
    faults,
    { replicas: 3, heartbeatMs: 500, suspectAfterMs: 1500, antiEntropyMs: 1000, requestTimeoutMs: 1000, writeTimeoutMs: 3000, batchMax: 7, cacheIdleMs: 4000 },
    { history: { horizonMs: WINDOW_MS, ccidWindowMs: WINDOW_MS } },
  );
  const { time, rng } = world;
  await world.boot();
  const sleep = (ms: number) => new Promise<void>((resolve) => time.setTimeout(resolve, ms));
  const timed = <T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> =>
    Promise.race([promise, new Promise<typeof TIMEOUT>((resolve) => time.setTimeout(() => resolve(TIMEOUT), ms))]);
  const running = () => world.nodes.filter((n) => n.state === 'up');
  const chaosEnd = time.now() + 40_000;
  const collected: HistoryCollected = { scanned: 0, superseded: 0, tombstones: 0, cleared: 0, ccids: 0, done: true };
  const collect = async (node: SimNode) => {
    const round = await node.engine.collectHistory(time.now(), Number.POSITIVE_INFINITY, (id) => node.cluster.stableVector(id));
    collected.superseded += round.superseded;
    collected.tombstones += round.tombstones;
    collected.ccids += round.ccids;
  };

  // What each key should end as: the last acknowledged write (null: deleted).
  const expected = new Map<string, Record<string, unknown> | null>();
  const ccids: string[] = [];
  let made = 0;

  /** One change, retried with its ccid through random nodes until acknowledged. */
  const submit = async (bucket: string, change: ChangeInput): Promise<'ok' | 'missing' | 'duplicate'> => {
    for (;;) {
      const nodes = running();
      if (nodes.length > 0) {
        const node = rng.pick(nodes);
        const result = await timed(
          node.engine.partition('app', bucket).then((p: Partition) => node.cluster.submitChanges(p, [change], null, admin)),
          8000,
        ).catch(() => TIMEOUT);
        if (typeof result !== 'symbol') {
          const [outcome] = result;
          // A coordinator that has not caught up yet may not know the entity: try again later.
          if (outcome!.error?.code === 'MISSING_ENTITY') return 'missing';
          if (outcome!.error !== null) throw new Error(`seed ${seed}: change refused: ${JSON.stringify(outcome!.error)}`);
          if (process.env.SIM_DEBUG) console.log(time.now() - chaosEnd, 'ack', bucket, change.key, change.op, change.ccid, node.id, outcome!.change?.origin, outcome!.change?.originSeq, outcome!.change?.version, outcome!.duplicate, outcome!.noop);
          return outcome!.duplicate ? 'duplicate' : 'ok';
        }
      }
      await sleep(200 + rng.int(800));
    }
  };

  // Each client owns its keys: writes of a key are sequential, full objects.
  const client = async (c: number) => {
    const alive = new Set<string>();
    for (let k = 0; k < 25; k++) {
      const bucket = rng.pick(BUCKETS);
      const key = `c${c}k${rng.int(3)}`;
      const id = `${bucket}/${key}`;
      const ccid = (seed * 4096 + c * 256 + k).toString(16).padStart(10, '0');
      ccids.push(ccid);
      if (alive.has(id) && rng.chance(0.2)) {
        for (let tries = 0; tries < 20; tries++) {
          if ((await submit(bucket, { ccid, key, op: 'DELETE' })) !== 'missing') {
            alive.delete(id);
            expected.set(id, null);
            break;
          }
          if (process.env.SIM_DEBUG) console.log('delete refused', id, ccid);
          await sleep(500);
        }
      } else {
        const data = { v: k, by: c };
        await submit(bucket, { ccid, key, op: 'MODIFY', data });
        alive.add(id);
        expected.set(id, data);
      }
      made++;
      await sleep(rng.int(1200));
    }
  };

  // Collection at random moments on every node that is up.
  const collector = async () => {
    while (time.now() < chaosEnd + 20_000) {
      await sleep(500 + rng.int(2500));
      const node = rng.pick(running());
      if (node !== undefined) await timed(collect(node), 5000);
    }
  };

  // A replica down for a while (behind everything collected meanwhile? no: it blocks collection
  // while it has not reported), pauses, a network split.
  const chaos = async () => {
    while (time.now() < chaosEnd - 5000) {
      await sleep(2000 + rng.int(4000));
      const node = rng.pick(world.nodes);
      switch (rng.int(3)) {
        case 0:
          if (node.state !== 'up') break;
          node.crash();
          await sleep(2000 + rng.int(15_000));
          await node.restart();
          break;
        case 1:
          node.pause();
          await sleep(500 + rng.int(3000));
          node.resume();
          break;
        default: {
          world.network.partition([node.id], world.nodes.filter((n) => n !== node).map((n) => n.id));
          await sleep(1000 + rng.int(4000));
          world.network.heal();
        }
      }
    }
  };

  const clients = Promise.all([0, 1, 2].map(client));
  const background = Promise.all([collector(), chaos()]);
  // A backup of a replica in the middle of the run, restored after collection (below).
  await time.runUntil(chaosEnd - 25_000);
  const restored = rng.pick(world.nodes);
  const backup = restored.state === 'crashed' ? undefined : await restored.backup();
  await time.runUntil(chaosEnd);
  await healAll(world);
  let done = false;
  void clients.then(() => (done = true));
  for (let i = 0; i < 200 && !done; i++) await time.runFor(1000);
  expect(done, `seed ${seed}: clients did not finish`).toBe(true);
  await time.runFor(25_000);
  await background;

  // A retry of an old change after the ccid window is a new change on every replica, whether
  // it still remembers the ccid or not (model/replica-history.ts).
  const lateKey = 'c0k0';
  const late: ChangeInput = { ccid: ccids[0]!, key: lateKey, op: 'MODIFY', data: { v: -1, by: 0, late: true } };
  const answer = await world.within(submit('h0', late), 30_000);
  expect(answer !== undefined && 'value' in answer, `seed ${seed}: the late retry was not answered`).toBe(true);
  // A coordinator whose history of that record is not collected yet still answers a duplicate.
  if (answer !== undefined && 'value' in answer && answer.value === 'ok') {
    expected.set(`h0/${lateKey}`, { v: -1, by: 0, late: true });
    made++;
  }

  // Settle and collect everywhere, a few times (a node's stable vector moves a step per round).
  const settle = async (rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      for (const node of world.nodes) void node.cluster.runRound();
      await time.runFor(2000);
      for (const node of world.nodes) await world.within(collect(node), 10_000);
    }
  };
  await time.runFor(WINDOW_MS + 1000);
  await settle(5);
  const before = collected.superseded + collected.tombstones;

  // The replica restored from its old backup is behind what the others collected: its copies
  // are rebuilt from theirs (what it held that they lack goes to them first).
  if (backup !== undefined) await restored.restore(backup);
  await settle(3);

  // A fourth node joins after collection: partitions whose list now includes it reach it from
  // copies that no longer hold their whole history.
  await world.addNode('n4');
  for (let i = 0; i < 6; i++) {
    await settle(1);
    if (process.env.SIM_DEBUG) {
      for (const node of world.nodes) {
        const p = await node.engine.partition('app', 'h0');
        console.log('after', i, node.id, node.cluster.preferenceList('app/h0').join(','), JSON.stringify(p.vectorOf('changes')), JSON.stringify(node.cluster.stableVector('app/h0')), (await p.changes(null, 1000)).changes.map((c) => `${c.originSeq}`).join(' '));
      }
    }
  }

  expect(before, `seed ${seed}: nothing was collected`).toBeGreaterThan(0);
  const kept = new Map<Partition, number>();
  for (const bucket of BUCKETS) {
    const id = `app/${bucket}`;
    const list = world.nodes[0]!.cluster.preferenceList(id);
    for (const node of world.nodes) expect(node.cluster.preferenceList(id), `seed ${seed}: rings differ`).toEqual(list);
    const replicas = await Promise.all(list.map((n) => world.node(n).engine.partition('app', bucket)));
    const states = await Promise.all(
      replicas.map(async (p) => ({ vector: p.vectorOf('changes'), digest: await p.digest(), entities: await p.entities(1000, null, true) })),
    );
    if (process.env.SIM_DEBUG) {
      for (const [i, p] of replicas.entries()) {
        console.log(list[i], id, JSON.stringify(p.vectorOf('changes')), JSON.stringify((await p.changes(null, 1000)).changes.map((c) => [c.origin, c.originSeq, c.key, c.version, c.op, c.ccid])));
      }
    }
    for (const [i, state] of states.entries()) expect(state, `seed ${seed}: ${list[i]} differs from ${list[0]} on ${id}`).toEqual(states[0]);
    for (const [key, data] of expected) {
      if (!key.startsWith(`${bucket}/`)) continue;
      const entity = states[0]!.entities.find((e) => `${bucket}/${e.key}` === key);
      if (data === null) expect(entity === undefined || entity.deleted, `seed ${seed}: ${key} should be deleted`).toBe(true);
      else expect(entity?.data, `seed ${seed}: ${key}`).toEqual(data);
    }
    for (const partition of replicas) {
      const listed = (await partition.changes(null, 1000)).changes;
      const live = (await partition.entities(1000, null, false)).map((e) => [e.key, e.version, e.data]);
      for (const [key, version, data] of live) {
        expect(listed.some((c) => c.key === key && c.version === version), `seed ${seed}: ${id}/${String(key)}'s latest record is gone`).toBe(true);
        expect(listed.findLast((c) => c.key === key)?.data, `seed ${seed}: ${id}/${String(key)}`).toEqual(data);
      }
      const listedCcids = listed.map((c) => c.ccid).filter((c) => c !== late.ccid);
      expect(new Set(listedCcids).size, `seed ${seed}: a ccid listed twice in ${id}`).toBe(listedCcids.length);
      kept.set(partition, listed.length);
    }
  }
  // Little is left of the `made` changes: one record per live entity, and the records of keys
  // whose concurrent heads no later write merged (those stay until one does).
  const left = [...kept.values()].reduce((a, b) => a + b, 0) / 3;
  expect(left, `seed ${seed}: ${left} records per replica kept of ${made}`).toBeLessThanOrEqual(made / 2);
  await world.within(Promise.all(world.nodes.map((node) => node.cluster.stop())), 30_000);
}

const seeds = simSeeds('HISTORY_SIM_SEEDS', 12);

describe('cluster history collection (simulation)', () => {
  it.each(seeds)('seed %i converges with collection, a replica down and a late replica', async (seed) => {
    await scenario(seed);
  }, 120_000);
});
