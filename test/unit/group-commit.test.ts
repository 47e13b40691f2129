/**
 * Group commit: while one synced write is in flight, submissions queue; when it lands they all go
 * into the next single write, each whole and in submission order. The store's writes are held by
 * a gate, so "in flight" is a state the test holds, not a timing it hopes for.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupCommitter, type GroupCommitOptions } from '../../src/storage/group-commit.js';
import type { KeyValueStore, WriteOp } from '../../src/storage/store.js';
import { GatedStore, MemoryStore, settle } from './memory-store.js';

/** `count` distinct puts labelled by submission, so a batch shows whose ops it holds. */
function ops(label: string, count = 1): WriteOp[] {
  return Array.from({ length: count }, (_, i) => ({ type: 'put', key: `${label}/${i}`, value: JSON.stringify(label) }));
}

/** A committer over a gated memory store, recording failures and callback errors. */
function setup(options: GroupCommitOptions = {}) {
  const store = new GatedStore(new MemoryStore());
  const failures: unknown[] = [];
  const callbackErrors: unknown[] = [];
  const committer = new GroupCommitter(store, {
    onCallbackError: (error) => callbackErrors.push(error),
    ...options,
    onFailure: (error) => failures.push(error),
  });
  return { store, committer, failures, callbackErrors };
}

/** Tracks a submission's outcome without awaiting it. */
function track(promise: Promise<void>) {
  const state: { outcome: 'pending' | 'resolved' | 'rejected'; error?: unknown } = { outcome: 'pending' };
  promise.then(
    () => (state.outcome = 'resolved'),
    (error: unknown) => {
      state.outcome = 'rejected';
      state.error = error;
    },
  );
  return state;
}

describe('batching', () => {
  it('writes the first submission synced, without waiting for company', async () => {
    const { store, committer } = setup();
    const done = committer.submit(ops('a', 2));
    const write = await store.writeAt(0);
    expect(write.ops).toEqual(ops('a', 2));
    expect(write.options).toEqual({ sync: true });
    await write.succeed();
    await done;
  });

  it('gathers every submission made while a write is in flight into exactly one next write, in order', async () => {
    const { store, committer } = setup();
    const first = committer.submit(ops('a'));
    const inFlight = await store.writeAt(0);
    const queued = [committer.submit(ops('b', 2)), committer.submit(ops('c')), committer.submit(ops('d', 3))];
    await settle();
    expect(store.writes).toHaveLength(1);
    expect(committer.pending).toBe(3);

    await inFlight.succeed();
    await first;
    const next = await store.writeAt(1);
    expect(next.ops).toEqual([...ops('b', 2), ...ops('c'), ...ops('d', 3)]);
    expect(committer.pending).toBe(0);

    await next.succeed();
    await Promise.all(queued);
    expect(store.writes).toHaveLength(2);
  });

  it('holds for any number of submissions of any size', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 30 }), async (sizes) => {
        const { store, committer } = setup();
        const first = committer.submit(ops('first'));
        const inFlight = await store.writeAt(0);
        const queued = sizes.map((size, i) => committer.submit(ops(`s${i}`, size)));
        await inFlight.succeed();
        await first;
        const next = await store.writeAt(1);
        expect(next.ops).toEqual(sizes.flatMap((size, i) => ops(`s${i}`, size)));
        await next.succeed();
        await Promise.all(queued);
        expect(store.writes).toHaveLength(2);
      }),
    );
  });

  it('never splits a submission, and puts at most batchOpsMax ops in a batch unless one submission is larger', async () => {
    const { store, committer } = setup({ batchOpsMax: 3 });
    const all = [committer.submit(ops('a'))];
    await store.writeAt(0);
    all.push(committer.submit(ops('b', 2)), committer.submit(ops('c', 2)), committer.submit(ops('d', 1)), committer.submit(ops('e', 5)), committer.submit(ops('f')));
    for (let i = 0; i < 5; i++) await (await store.writeAt(i)).succeed();
    await Promise.all(all);
    expect(store.writes.map((w) => w.ops)).toEqual([ops('a'), ops('b', 2), [...ops('c', 2), ...ops('d')], ops('e', 5), ops('f')]);
  });

  it('reports each durable batch to onBatch', async () => {
    const batches: Array<[number, number, number]> = [];
    const { store, committer } = setup({ onBatch: (submissions, count, durationMs) => batches.push([submissions, count, durationMs]) });
    const all = [committer.submit(ops('a', 2))];
    const inFlight = await store.writeAt(0);
    all.push(committer.submit(ops('b', 3)), committer.submit(ops('c')));
    await inFlight.succeed();
    await (await store.writeAt(1)).succeed();
    await Promise.all(all);
    expect(batches.map(([submissions, count]) => [submissions, count])).toEqual([
      [1, 2],
      [2, 4],
    ]);
    expect(batches.every(([, , durationMs]) => durationMs >= 0)).toBe(true);
  });

  it('accepts an empty submission', async () => {
    const { store, committer } = setup();
    const done = committer.submit([]);
    await (await store.writeAt(0)).succeed();
    await expect(done).resolves.toBeUndefined();
  });
});

describe('durability order', () => {
  it('runs onDurable in submission order, after the write and before the next one starts', async () => {
    const { store, committer, callbackErrors } = setup();
    const seen: string[] = [];
    const onDurable = (label: string, batch: number) => () => {
      // The batch holding this submission is written; the next has not been issued yet.
      expect(store.writes).toHaveLength(batch + 1);
      seen.push(label);
    };
    const all = [committer.submit(ops('a'), onDurable('a', 0))];
    const inFlight = await store.writeAt(0);
    all.push(committer.submit(ops('b'), onDurable('b', 1)), committer.submit(ops('c')), committer.submit(ops('d'), onDurable('d', 1)));
    expect(seen).toEqual([]);
    await inFlight.succeed();
    expect(seen).toEqual(['a']);
    await (await store.writeAt(1)).succeed();
    await Promise.all(all);
    expect(seen).toEqual(['a', 'b', 'd']);
    expect(callbackErrors).toEqual([]); // the checks inside onDurable held
  });

  it('resolves a submission only after its onDurable ran', async () => {
    const { store, committer } = setup();
    let durable = false;
    const done = committer.submit(ops('a'), () => (durable = true)).then(() => expect(durable).toBe(true));
    await (await store.writeAt(0)).succeed();
    await done;
  });

  it('reports a throwing onDurable and carries on with the others', async () => {
    const { store, committer, callbackErrors } = setup();
    const boom = new Error('listener failed');
    const seen: string[] = [];
    committer.submit(ops('a'));
    const inFlight = await store.writeAt(0);
    const b = committer.submit(ops('b'), () => {
      throw boom;
    });
    const c = committer.submit(ops('c'), () => seen.push('c'));
    await inFlight.succeed();
    await (await store.writeAt(1)).succeed();
    await expect(b).resolves.toBeUndefined();
    await expect(c).resolves.toBeUndefined();
    expect(seen).toEqual(['c']);
    expect(callbackErrors).toEqual([boom]);
  });
});

describe('failure', () => {
  it('rejects the failed write and everything queued behind it, then calls onFailure once', async () => {
    const { store, committer, failures } = setup();
    const durable: string[] = [];
    const a = track(committer.submit(ops('a'), () => durable.push('a')));
    const inFlight = await store.writeAt(0);
    const b = track(committer.submit(ops('b'), () => durable.push('b')));
    const c = track(committer.submit(ops('c'), () => durable.push('c')));
    const disk = new Error('EIO');
    inFlight.fail(disk);
    await settle();
    expect([a, b, c].map((s) => s.outcome)).toEqual(['rejected', 'rejected', 'rejected']);
    expect([a, b, c].map((s) => s.error)).toEqual([disk, disk, disk]);
    expect(failures).toEqual([disk]);
    expect(durable).toEqual([]);
    expect(store.writes).toHaveLength(1); // the queued ops were computed on top of lost ones: never written
    expect(committer.pending).toBe(0);
  });

  it('keeps earlier durable submissions and fails only the batch in flight and the queue', async () => {
    const { store, committer, failures } = setup();
    const a = track(committer.submit(ops('a')));
    const first = await store.writeAt(0);
    const b = track(committer.submit(ops('b')));
    await first.succeed();
    const second = await store.writeAt(1);
    const c = track(committer.submit(ops('c'))); // queued behind b's write
    const disk = new Error('ENOSPC');
    second.fail(disk);
    await settle();
    expect([a.outcome, b.outcome, c.outcome]).toEqual(['resolved', 'rejected', 'rejected']);
    expect(failures).toEqual([disk]);
    expect(store.writes).toHaveLength(2);
  });

  it('recovers: a submission after a failure is written normally', async () => {
    const { store, committer } = setup();
    const lost = track(committer.submit(ops('a')));
    (await store.writeAt(0)).fail(new Error('EIO'));
    await settle();
    expect(lost.outcome).toBe('rejected');
    const next = committer.submit(ops('b'));
    const write = await store.writeAt(1);
    expect(write.ops).toEqual(ops('b'));
    await write.succeed();
    await next;
  });

  it('takes a submission made by onFailure into a new write', async () => {
    const store = new GatedStore(new MemoryStore());
    let retry: Promise<void> | undefined;
    const committer: GroupCommitter = new GroupCommitter(store, {
      onFailure: () => (retry ??= committer.submit(ops('retry'))),
    });
    const lost = committer.submit(ops('a')).catch(() => 'lost');
    (await store.writeAt(0)).fail(new Error('EIO'));
    expect(await lost).toBe('lost');
    const write = await store.writeAt(1);
    expect(write.ops).toEqual(ops('retry'));
    await write.succeed();
    await retry;
  });

  // A write that throws synchronously (instead of returning a rejected promise) must fail like any
  // other, and must not leave the committer believing a write is still in flight.
  it('is not wedged by a store whose write throws synchronously', async () => {
    const inner = new MemoryStore();
    let calls = 0;
    const store: KeyValueStore = {
      get: (key) => inner.get(key),
      getMany: (keys) => inner.getMany(keys),
      entries: (range) => inner.entries(range),
      page: (range) => inner.page(range),
      clear: (range) => inner.clear(range),
      close: () => inner.close(),
      write: (batch, options) => {
        calls++;
        if (calls === 1) throw new Error('refused synchronously');
        return inner.write(batch, options);
      },
    };
    const committer = new GroupCommitter(store, { onFailure: () => undefined });
    await expect(committer.submit(ops('a'))).rejects.toThrow();
    const next = track(committer.submit(ops('b')));
    await settle();
    expect(calls).toBe(2);
    expect(next.outcome).toBe('resolved');
    await committer.flush();
  });
});

describe('flush', () => {
  it('resolves at once when nothing is in flight', async () => {
    const { committer } = setup();
    await committer.flush();
  });

  it('resolves only when everything submitted so far is durable', async () => {
    const { store, committer } = setup();
    const all = [committer.submit(ops('a'))];
    const first = await store.writeAt(0);
    all.push(committer.submit(ops('b')));
    const flushed = track(committer.flush());
    await first.succeed();
    await settle();
    expect(flushed.outcome).toBe('pending'); // b is still in flight
    await (await store.writeAt(1)).succeed();
    await settle();
    expect(flushed.outcome).toBe('resolved');
    await Promise.all(all);
  });

  it('resolves (does not reject) when the writes failed', async () => {
    const { store, committer } = setup();
    const lost = committer.submit(ops('a')).catch(() => undefined);
    const flushed = committer.flush();
    (await store.writeAt(0)).fail(new Error('EIO'));
    await expect(flushed).resolves.toBeUndefined();
    await lost;
  });
});

describe('any interleaving of submissions, successes and failures', () => {
  type Step = { kind: 'submit'; size: number } | { kind: 'succeed' } | { kind: 'fail' };
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 3 }).map((size) => ({ kind: 'submit' as const, size })) },
    { weight: 2, arbitrary: fc.constant({ kind: 'succeed' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'fail' as const }) },
  );

  it('writes maximal batches in order, and settles every submission with its batch', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 40 }), async (steps) => {
        const { store, committer, failures } = setup();
        const durable: number[] = [];
        const outcomes: Array<ReturnType<typeof track>> = [];
        // The model: what is in flight and what waits, as submission indexes.
        let inFlight: number[] | undefined;
        let waiting: number[] = [];
        const expectedDurable: number[] = [];
        const expectedRejected = new Set<number>();
        const sizes: number[] = [];
        let writesIssued = 0;
        let failed = 0;

        for (const step of [...steps, { kind: 'succeed' } as Step, { kind: 'succeed' } as Step]) {
          if (step.kind === 'submit') {
            const index = sizes.length;
            sizes.push(step.size);
            outcomes.push(track(committer.submit(ops(`s${index}`, step.size), () => durable.push(index))));
            if (inFlight === undefined) {
              inFlight = [index];
              writesIssued++;
              await store.writeAt(writesIssued - 1); // now it is in flight
            } else waiting.push(index);
          } else if (inFlight !== undefined) {
            const write = store.writes.at(-1)!;
            expect(write.ops).toEqual(inFlight.flatMap((i) => ops(`s${i}`, sizes[i])));
            if (step.kind === 'succeed') {
              await write.succeed();
              expectedDurable.push(...inFlight);
              inFlight = waiting.length > 0 ? waiting : undefined;
              if (inFlight !== undefined) writesIssued++;
            } else {
              failed++;
              write.fail(new Error('EIO'));
              for (const i of [...inFlight, ...waiting]) expectedRejected.add(i);
              inFlight = undefined;
            }
            waiting = [];
            await settle();
          }
          expect(store.writes).toHaveLength(writesIssued);
        }
        expect(durable).toEqual(expectedDurable);
        outcomes.forEach((o, i) => {
          const expected = expectedDurable.includes(i) ? 'resolved' : expectedRejected.has(i) ? 'rejected' : 'pending';
          expect(o.outcome).toBe(expected);
        });
        expect(failures).toHaveLength(failed);
        expect(committer.pending).toBe(0);
      }),
    );
  });
});
