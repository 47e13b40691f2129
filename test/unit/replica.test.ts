/**
 * Replicas of one partition on several engines (in-memory stores): each accepts client changes,
 * and they exchange records (`recordsSince` / `applyChanges`) in any order, any amount, with
 * gaps. Once all have exchanged everything they must hold the same entities (versions
 * included), list each ccid once, and a cursor of one must resume on another with every later
 * change exactly once (DESIGN invariants 2, 3 and 4).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import type { Partition } from '../../src/engine/partition.js';
import type { ChangeView } from '../../src/engine/records.js';
import { defaultLimits } from '../../src/options.js';
import { defaultRetention } from '../../src/model/retention.js';
import { MemoryStore } from './memory-store.js';

const admin = { admin: true };

async function openReplica(origin: string, clock: { now: number }, skew: number, compacting?: boolean): Promise<{ engine: Engine; notes: Partition }> {
  let id = 0;
  const engine = await Engine.open(new MemoryStore(), {
    now: () => clock.now + skew,
    newId: () => `0190a000-0000-7000-8000-${origin}${(++id).toString(16).padStart(10, '0')}`.slice(0, 36),
    newNodeId: () => origin,
    limits: defaultLimits,
    retention: defaultRetention,
    keepClearedLog: compacting !== true,
    onBackgroundError: (error) => {
      throw error;
    },
  });
  return { engine, notes: await engine.partition('app', 'notes') };
}

async function allChanges(p: Partition, since: string | null = null): Promise<{ changes: ChangeView[]; cursor: string }> {
  const out: ChangeView[] = [];
  let cursor = since;
  for (;;) {
    const page = await p.changes(cursor, 1000);
    out.push(...page.changes);
    cursor = page.cursor;
    if (!page.hasMore) return { changes: out, cursor: cursor ?? '' };
  }
}

async function sync(to: Partition, from: Partition, limit = 10_000): Promise<void> {
  const { records, compacted } = await from.recordsSince('changes', to.vectorOf('changes'), limit);
  await to.applyChanges(records, { compacted });
  const events = await from.recordsSince('events', to.vectorOf('events'), limit);
  await to.applyEvents(events.records);
}

async function syncAll(replicas: Partition[]): Promise<void> {
  for (let round = 0; round < 3; round++) {
    for (const a of replicas) for (const b of replicas) if (a !== b) await sync(a, b);
  }
}

async function state(p: Partition) {
  return { entities: await p.entities(1000, null, true), digest: await p.digest() };
}

type Step =
  | { kind: 'modify'; at: number; key: string; field: string; value: string | number; ccid: number; stale: boolean; asDiff: boolean }
  | { kind: 'delete'; at: number; key: string; ccid: number }
  | { kind: 'empty'; at: number; ccid: number }
  | { kind: 'event'; at: number; n: number }
  | { kind: 'sync'; to: number; from: number; limit: number; reversed: boolean }
  | { kind: 'tick'; ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('modify' as const),
      at: fc.nat(2),
      key: fc.constantFrom('a', 'b', 'c'),
      field: fc.constantFrom('title', 'body', 'n'),
      value: fc.oneof(fc.string({ unit: fc.constantFrom('x', 'y', 'z', ' '), maxLength: 6 }), fc.integer({ min: 0, max: 5 })),
      ccid: fc.nat(30),
      stale: fc.boolean(),
      asDiff: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(2), key: fc.constantFrom('a', 'b', 'c'), ccid: fc.nat(30) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('empty' as const), at: fc.nat(2), ccid: fc.integer({ min: 100, max: 103 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('event' as const), at: fc.nat(2), n: fc.nat(20) }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('sync' as const), to: fc.nat(2), from: fc.nat(2), limit: fc.integer({ min: 1, max: 5 }), reversed: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 3 }) }) },
);

/** What each ccid means: a retry (on any node) sends the same change again. */
function changeFor(step: Extract<Step, { kind: 'modify' | 'delete' }>) {
  return step;
}

describe('replicas of a partition', () => {
  it('converge to the same entities and change lists, whatever was exchanged in which order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 40 }), fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 3, maxLength: 3 }), async (steps, skews) => {
        const clock = { now: 1_700_000_000_000 };
        const nodes = await Promise.all(['n1', 'n2', 'n3'].map((o, i) => openReplica(o, clock, skews[i]!)));
        const replicas = nodes.map((n) => n.notes);
        const meaning = new Map<number, ReturnType<typeof changeFor>>();
        const acknowledged = new Set<string>();
        const pushedEvents = new Set<string>();
        try {
          for (const step of steps) {
            switch (step.kind) {
              case 'tick':
                clock.now += step.ms;
                break;
              case 'sync': {
                if (step.to === step.from) break;
                const from = replicas[step.from]!;
                const to = replicas[step.to]!;
                const { records, compacted } = await from.recordsSince('changes', to.vectorOf('changes'), step.limit);
                // Out of order: records after a gap are skipped, and come again later.
                await to.applyChanges(step.reversed ? [...records].reverse() : records, { compacted });
                break;
              }
              case 'event': {
                const uuid = `018b0000-0000-7000-8000-${step.n.toString().padStart(12, '0')}`;
                const pushed = await replicas[step.at]!.pushEvents([{ uuid, timestamp: String(0x018b00000000), user: 'u', item: 'i', action: 'a', payload: '{}' }], null);
                expect(pushed.rejected).toEqual([]);
                pushedEvents.add(uuid);
                break;
              }
              case 'empty': {
                const [outcome] = await replicas[step.at]!.submitChanges([{ ccid: `c${step.ccid}`, op: 'EMPTY' }], null, admin);
                if (outcome!.change !== null) acknowledged.add(outcome!.ccid);
                break;
              }
              case 'modify':
              case 'delete': {
                // A ccid always means the same change: the first step that used it.
                const change = meaning.get(step.ccid) ?? changeFor(step);
                meaning.set(step.ccid, change);
                const replica = replicas[step.at]!;
                const current = await replica.entity(change.key, null);
                const version = current === null ? 0 : change.kind === 'modify' && change.stale ? Math.max(0, current.version - 1) : current.version;
                const input =
                  change.kind === 'delete'
                    ? { ccid: `c${step.ccid}`, key: change.key, op: 'DELETE' as const }
                    : change.asDiff
                      ? { ccid: `c${step.ccid}`, key: change.key, op: 'MODIFY' as const, baseVersion: version, diff: { [change.field]: { o: '+', v: change.value } } }
                      : { ccid: `c${step.ccid}`, key: change.key, op: 'MODIFY' as const, baseVersion: version, data: { ...(current?.deleted === false ? current.data : {}), [change.field]: change.value } };
                const [outcome] = await replica.submitChanges([input], null, admin);
                if (outcome!.change !== null) acknowledged.add(outcome!.ccid);
                break;
              }
            }
          }
          // A cursor taken on one replica before the final exchange.
          const early = await allChanges(replicas[0]!);
          await syncAll(replicas);

          const vectors = replicas.map((r) => r.vectorOf('changes'));
          expect(vectors[1]).toEqual(vectors[0]);
          expect(vectors[2]).toEqual(vectors[0]);
          const states = await Promise.all(replicas.map(state));
          expect(states[1]).toEqual(states[0]);
          expect(states[2]).toEqual(states[0]);

          for (const replica of replicas) {
            const { changes } = await allChanges(replica);
            const ccids = changes.map((c) => c.ccid);
            // Each ccid once; every acknowledged one present (unless an EMPTY cleared it).
            expect(new Set(ccids).size).toBe(ccids.length);
            for (const ccid of acknowledged) expect(ccids).toContain(ccid);
            // The last change of each entity names the entity's version.
            const entities = await replica.entities(1000, null, true);
            for (const entity of entities) {
              const last = changes.filter((c) => c.key === entity.key).at(-1);
              expect(last?.version).toBe(entity.version);
              expect(last?.data ?? null).toEqual(entity.deleted ? null : entity.data);
            }
            // Resuming replica 0's early cursor here: exactly the records it had not seen.
            const seen = new Set(early.changes.map((c) => `${c.origin}:${c.originSeq}`));
            const rest = await allChanges(replica, early.cursor);
            const later = rest.changes.map((c) => `${c.origin}:${c.originSeq}`);
            expect(later.filter((r) => seen.has(r))).toEqual([]);
            expect(new Set(later).size).toBe(later.length);
            const all = (await allChanges(replica)).changes.map((c) => `${c.origin}:${c.originSeq}`);
            for (const ref of all) expect(seen.has(ref) || later.includes(ref)).toBe(true);
          }
          // Every acknowledged ccid is known everywhere: retried anywhere, it is a duplicate.
          for (const replica of replicas) {
            for (const ccid of acknowledged) {
              const [retry] = await replica.submitChanges([{ ccid, op: 'EMPTY' }], null, admin);
              expect(retry!.duplicate).toBe(true);
            }
          }
          const events = await Promise.all(replicas.map(async (r) => (await r.events(null, 1000)).events.map((e) => e.uuid).sort()));
          expect(events[0]).toEqual([...pushedEvents].sort());
          expect(events[1]).toEqual(events[0]);
          expect(events[2]).toEqual(events[0]);
        } finally {
          await Promise.all(nodes.map((n) => n.engine.close()));
        }
      }),
      { numRuns: Number(process.env.REPLICA_RUNS ?? 150) },
    );
  }, 120_000);

  it('a retried ccid on another replica, then exchanged, is one change', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = await Promise.all(['n1', 'n2'].map((o) => openReplica(o, clock, 0)));
    const change = { ccid: 'abcdef01', key: 'k', op: 'MODIFY' as const, data: { title: 'hello' } };
    const [first] = await a!.notes.submitChanges([change], null, admin);
    clock.now += 1;
    const [second] = await b!.notes.submitChanges([change], null, admin);
    expect(second!.duplicate).toBe(false);
    await syncAll([a!.notes, b!.notes]);
    for (const replica of [a!.notes, b!.notes]) {
      const { changes } = await allChanges(replica);
      expect(changes.map((c) => c.ccid)).toEqual(['abcdef01']);
      expect(changes[0]!.id).toBe(first!.change!.id);
      const [retry] = await replica.submitChanges([change], null, admin);
      expect(retry).toMatchObject({ duplicate: true, change: { id: first!.change!.id, version: 1 } });
      expect(await replica.entity('k', null)).toMatchObject({ version: 1, data: { title: 'hello' } });
    }
    await Promise.all([a!.engine.close(), b!.engine.close()]);
  });

  it('a single node that compacted its log after an EMPTY seeds a new replica', async () => {
    const clock = { now: 1_700_000_000_000 };
    const single = await openReplica('n1', clock, 0, true);
    const fresh = await openReplica('n2', clock, 0);
    await single.notes.submitChanges([{ ccid: 'a1', key: 'k', op: 'MODIFY', data: { n: 1 } }], null, admin);
    await single.notes.submitChanges([{ ccid: 'a2', op: 'EMPTY' }], null, admin);
    await single.notes.submitChanges([{ ccid: 'a3', key: 'j', op: 'MODIFY', data: { n: 2 } }], null, admin);
    await single.notes.settle();
    await sync(fresh.notes, single.notes);
    expect(fresh.notes.vectorOf('changes')).toEqual(single.notes.vectorOf('changes'));
    expect(await state(fresh.notes)).toEqual(await state(single.notes));
    await Promise.all([single.engine.close(), fresh.engine.close()]);
  });

  it('keeps the latest bucket settings on every replica, a DROP resetting them', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = await Promise.all(['n1', 'n2'].map((o) => openReplica(o, clock, 0)));
    await a!.notes.configure({ versionMax: 5 }, admin);
    clock.now += 1;
    await b!.notes.configure({ versionMax: 7 }, admin);
    // Exchanged both ways, in either order: the later setting wins on both.
    await a!.notes.adoptConfig((await b!.notes.storedConfig())!);
    await b!.notes.adoptConfig((await a!.notes.storedConfig())!);
    expect((await a!.notes.config()).versionMax).toBe(7);
    expect(await a!.notes.storedConfig()).toEqual(await b!.notes.storedConfig());
    // A DROP resets them, as a setting of its own time.
    clock.now += 1;
    await a!.notes.submitChanges([{ ccid: 'd0', op: 'DROP' }], null, admin);
    await syncAll([a!.notes, b!.notes]);
    await b!.notes.adoptConfig((await a!.notes.storedConfig())!);
    await a!.notes.adoptConfig((await b!.notes.storedConfig())!);
    expect((await a!.notes.config()).versionMax).toBe(defaultRetention.versionMax);
    expect(await a!.notes.storedConfig()).toEqual(await b!.notes.storedConfig());
    await Promise.all([a!.engine.close(), b!.engine.close()]);
  });

  it('concurrent edits of different fields and of one string both survive on every replica', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = await Promise.all(['n1', 'n2'].map((o) => openReplica(o, clock, 0)));
    await a!.notes.submitChanges([{ ccid: 'c1', key: 'k', op: 'MODIFY', data: { title: 'hello world', n: 1 } }], null, admin);
    await sync(b!.notes, a!.notes);
    await a!.notes.submitChanges([{ ccid: 'c2', key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'hello big world', n: 1 } }], null, admin);
    clock.now += 1;
    await b!.notes.submitChanges([{ ccid: 'c3', key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'hello world!', n: 2 } }], null, admin);
    await syncAll([a!.notes, b!.notes]);
    for (const replica of [a!.notes, b!.notes]) {
      expect(await replica.entity('k', null)).toMatchObject({ version: 3, data: { title: 'hello big world!', n: 2 } });
    }
    await Promise.all([a!.engine.close(), b!.engine.close()]);
  });
});
