/**
 * Replay-then-live streaming of one log (invariant 4: no gap, no duplicate). The log is an array
 * with the engine's two promises: a record is durable (readable) before it is published, and a
 * page is a snapshot. Concurrency is simulated by publishing from inside `readPage` (before or
 * after its snapshot) and, in the property, by fast-check's scheduler.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { CLOSED, LiveFeed, OVERFLOW } from '../../src/engine/live-feed.js';
import { Compositions, FUSE, LATER, mapAsyncIterator, PUSH, type SharedStep } from '../../src/engine/async-map.js';
import { fusedChains, recordStream, type RecordStreamOptions } from '../../src/engine/record-stream.js';
import { settle } from './memory-store.js';

// A stream that fails to deliver hangs: fail fast instead of at the suite's 60 s.
vi.setConfig({ testTimeout: 5_000 });

interface Rec {
  seq: number;
}

/** An in-memory log and its live feed. */
class Log {
  readonly records: Rec[] = [];
  readonly feed = new LiveFeed<Rec>();
  readonly reads: Array<[from: number, limit: number]> = [];
  /** Runs inside readPage, before the snapshot is taken (read index from 0). */
  beforeSnapshot: (read: number) => void = () => undefined;
  /** Runs inside readPage, after the snapshot and before the page is returned. */
  afterSnapshot: (read: number) => void = () => undefined;

  /** Makes the next record durable without publishing it. */
  append(): Rec {
    const record = { seq: this.records.length + 1 };
    this.records.push(record);
    return record;
  }

  /** Makes `count` records durable and publishes each, as the engine's onDurable does. */
  commit(count = 1): void {
    for (let i = 0; i < count; i++) this.feed.publish(this.append());
  }

  /** The durable records with seq >= from, at most `limit`: a snapshot. */
  page(from: number, limit: number): Rec[] {
    return this.records.slice(from - 1, from - 1 + limit);
  }

  readonly readPage = async (from: number, limit: number): Promise<Rec[]> => {
    const read = this.reads.push([from, limit]) - 1;
    await Promise.resolve(); // a disk read is never synchronous
    this.beforeSnapshot(read);
    const page = this.page(from, limit);
    this.afterSnapshot(read);
    return page;
  };

  stream(options: Partial<RecordStreamOptions<Rec>> = {}) {
    return recordStream<Rec>({ fromSeq: 1, readPage: this.readPage, feed: this.feed, queueMax: 100, pageSize: 500, ...options });
  }
}

type Stream = ReturnType<Log['stream']>;

/** The next `count` items, as seqs (or 'OVERFLOW'); fails if the stream ends first. */
async function take(stream: Stream, count: number): Promise<Array<number | 'OVERFLOW'>> {
  const out: Array<number | 'OVERFLOW'> = [];
  for (let i = 0; i < count; i++) {
    const next = await stream.next();
    if (next.done === true) throw new Error(`stream ended after ${out.length} of ${count} items`);
    out.push(next.value === OVERFLOW ? 'OVERFLOW' : next.value.seq);
  }
  return out;
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe('replay', () => {
  it('replays the log from disk, page by page, then goes live', async () => {
    const log = new Log();
    for (let i = 0; i < 5; i++) log.append();
    const stream = log.stream({ pageSize: 2 });
    expect(await take(stream, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(log.reads).toEqual([
      [1, 2],
      [3, 2],
      [5, 2],
    ]);
    log.commit(2);
    expect(await take(stream, 2)).toEqual([6, 7]);
    expect(log.reads).toHaveLength(3); // live records come from the feed, not the disk
    expect(log.feed.size).toBe(1);
    await stream.return();
    expect(log.feed.size).toBe(0);
  });

  it('starts at fromSeq', async () => {
    const log = new Log();
    for (let i = 0; i < 5; i++) log.append();
    const stream = log.stream({ fromSeq: 4 });
    expect(await take(stream, 2)).toEqual([4, 5]);
    log.commit();
    expect(await take(stream, 1)).toEqual([6]);
    await stream.return();
  });

  it('goes live at once on an empty log', async () => {
    const log = new Log();
    const stream = log.stream();
    const first = stream.next();
    log.commit(3);
    expect((await first).value).toEqual({ seq: 1 });
    expect(await take(stream, 2)).toEqual([2, 3]);
    await stream.return();
  });

  it('reads on when a page comes back exactly full', async () => {
    const log = new Log();
    for (let i = 0; i < 4; i++) log.append();
    const stream = log.stream({ pageSize: 2 });
    expect(await take(stream, 4)).toEqual([1, 2, 3, 4]);
    const next = stream.next();
    log.commit();
    expect((await next).value).toEqual({ seq: 5 });
    expect(log.reads.map(([from]) => from)).toEqual([1, 3, 5]);
    await stream.return();
  });
});

describe('records published while the replay runs', () => {
  it('delivers records published after a page snapshot exactly once, in order', async () => {
    const log = new Log();
    for (let i = 0; i < 5; i++) log.append();
    log.afterSnapshot = (read) => {
      if (read < 3) log.commit(2); // not in this page, in the queue
    };
    const stream = log.stream({ pageSize: 2 });
    expect(await take(stream, 11)).toEqual(range(1, 11));
    log.commit();
    expect(await take(stream, 1)).toEqual([12]);
    await stream.return();
  });

  it('delivers records published before a page snapshot exactly once (they are in the page and the queue)', async () => {
    const log = new Log();
    for (let i = 0; i < 3; i++) log.append();
    log.beforeSnapshot = (read) => {
      if (read < 3) log.commit(2);
    };
    const stream = log.stream({ pageSize: 3 });
    expect(await take(stream, 9)).toEqual(range(1, 9));
    log.commit();
    expect(await take(stream, 1)).toEqual([10]);
    await stream.return();
  });

  it('delivers records made durable during the replay but published only later, once', async () => {
    const log = new Log();
    log.append();
    const unpublished: Rec[] = [];
    log.afterSnapshot = (read) => {
      if (read === 0) unpublished.push(log.append(), log.append()); // durable, onDurable not yet run
    };
    const stream = log.stream({ pageSize: 1 });
    expect(await take(stream, 3)).toEqual([1, 2, 3]); // the later pages read them from disk
    for (const record of unpublished) log.feed.publish(record); // now in the queue too
    log.commit();
    expect(await take(stream, 1)).toEqual([4]);
    await stream.return();
  });

  it('waits for the publication of a record that was durable too late for the last page', async () => {
    const log = new Log();
    log.append();
    const late: Rec[] = [];
    log.afterSnapshot = (read) => {
      if (read === 0) late.push(log.append());
    };
    const stream = log.stream({ pageSize: 2 });
    expect(await take(stream, 1)).toEqual([1]); // a short page: the stream is live
    const next = stream.next();
    for (const record of late) log.feed.publish(record);
    expect((await next).value).toEqual({ seq: 2 });
    await stream.return();
  });

  it('delivers records published between the consumer\'s pulls during the replay', async () => {
    const log = new Log();
    for (let i = 0; i < 6; i++) log.append();
    const stream = log.stream({ pageSize: 4 });
    const seen: Array<number | 'OVERFLOW'> = [];
    for (let i = 0; i < 6; i++) {
      seen.push(...(await take(stream, 1)));
      log.commit(); // the consumer is busy with a disk record when this arrives
    }
    seen.push(...(await take(stream, 6)));
    expect(seen).toEqual(range(1, 12));
    await stream.return();
  });
});

describe('live', () => {
  it('fills a hole from disk if a record is published before one it follows', async () => {
    const log = new Log();
    for (let i = 0; i < 3; i++) log.append();
    const stream = log.stream();
    expect(await take(stream, 3)).toEqual([1, 2, 3]);
    log.append(); // 4 is durable, its publication is late
    log.commit(); // 5 is published
    expect(await take(stream, 2)).toEqual([4, 5]);
    await stream.return();
  });

  it('skips a record published twice', async () => {
    const log = new Log();
    const stream = log.stream();
    const first = stream.next();
    log.commit();
    log.feed.publish(log.records[0]!);
    log.commit();
    expect((await first).value).toEqual({ seq: 1 });
    expect(await take(stream, 1)).toEqual([2]);
    await stream.return();
  });

  it('yields OVERFLOW and ends when the live subscriber falls more than queueMax behind', async () => {
    const log = new Log();
    for (let i = 0; i < 5; i++) log.append();
    const stream = log.stream({ queueMax: 2 });
    expect(await take(stream, 5)).toEqual([1, 2, 3, 4, 5]);
    log.commit();
    expect(await take(stream, 1)).toEqual([6]); // from the queue: the stream is live
    log.commit(3); // one more than the queue holds
    expect(await take(stream, 1)).toEqual(['OVERFLOW']);
    expect((await stream.next()).done).toBe(true);
    expect(log.feed.size).toBe(0);
  });

  it('does not overflow while the subscriber is at most queueMax behind', async () => {
    const log = new Log();
    const stream = log.stream({ queueMax: 3 });
    const first = stream.next();
    log.commit(1);
    expect((await first).value).toEqual({ seq: 1 });
    log.commit(3);
    expect(await take(stream, 3)).toEqual([2, 3, 4]);
    await stream.return();
  });

  it('does not count records queued during the replay and also read from disk against the live bound', async () => {
    const log = new Log();
    log.append();
    // Published before the first snapshot: in the page and in the queue.
    log.beforeSnapshot = (read) => {
      if (read === 0) log.commit(2);
    };
    const stream = log.stream({ queueMax: 2, pageSize: 5 });
    expect(await take(stream, 3)).toEqual([1, 2, 3]);
    const pending = stream.next();
    log.commit(2); // exactly queueMax behind: allowed
    expect((await pending).value).toEqual({ seq: 4 });
    expect(await take(stream, 1)).toEqual([5]);
    await stream.return();
  });

  it('ends without OVERFLOW when the feed is closed', async () => {
    const log = new Log();
    log.commit(2);
    const stream = log.stream();
    expect(await take(stream, 2)).toEqual([1, 2]);
    const next = stream.next();
    log.feed.closeAll();
    expect(await next).toEqual({ done: true, value: undefined });
  });
});

describe('overflow during catch-up', () => {
  it('re-reads from disk instead of yielding OVERFLOW when the queue overflows mid-replay', async () => {
    const log = new Log();
    for (let i = 0; i < 4; i++) log.append();
    log.afterSnapshot = (read) => {
      if (read === 0) log.commit(4); // twice what the queue holds
    };
    const stream = log.stream({ pageSize: 2, queueMax: 2 });
    expect(await take(stream, 8)).toEqual(range(1, 8));
    log.commit();
    expect(await take(stream, 1)).toEqual([9]); // and live afterwards
    await stream.return();
  });

  it('re-reads when the queue overflows during the last, short page', async () => {
    const log = new Log();
    for (let i = 0; i < 3; i++) log.append();
    log.afterSnapshot = (read) => {
      if (read === 0) log.commit(3);
    };
    const stream = log.stream({ pageSize: 5, queueMax: 2 });
    expect(await take(stream, 6)).toEqual(range(1, 6));
    expect(log.reads.map(([from]) => from)).toEqual([1, 4]);
    log.commit();
    expect(await take(stream, 1)).toEqual([7]);
    await stream.return();
  });

  it('re-reads when the queue overflows while the consumer holds a disk record', async () => {
    const log = new Log();
    for (let i = 0; i < 3; i++) log.append();
    const stream = log.stream({ pageSize: 10, queueMax: 2 });
    expect(await take(stream, 3)).toEqual([1, 2, 3]); // suspended on record 3, still replaying
    log.commit(5);
    expect(await take(stream, 5)).toEqual(range(4, 8));
    await stream.return();
  });
});

describe('ending', () => {
  it('detaches at once when closed while waiting for a live record (a quiet bucket)', async () => {
    const log = new Log();
    const stream = log.stream();
    const waiting = stream.next();
    await settle();
    expect(log.feed.size).toBe(1);
    await stream.return();
    expect(log.feed.size).toBe(0);
    expect((await waiting).done).toBe(true);
  });

  it('detaches from the feed when the consumer stops early', async () => {
    const log = new Log();
    log.commit(5);
    for await (const record of log.stream()) {
      if (record !== OVERFLOW && record.seq === 2) break;
    }
    expect(log.feed.size).toBe(0);
  });

  it('passes a disk error through and detaches', async () => {
    const log = new Log();
    const disk = new Error('EIO');
    const stream = recordStream<Rec>({
      fromSeq: 1,
      readPage: async () => {
        throw disk;
      },
      feed: log.feed,
      queueMax: 10,
    });
    await expect(stream.next()).rejects.toBe(disk);
    expect(log.feed.size).toBe(0);
  });
});

describe('push (the synchronous fast path)', () => {
  /** A stream with a sink that accepts unless `refuse` says otherwise, and what each path got. */
  function pushed(log: Log, refuse: (seq: number) => boolean = () => false, options: Partial<RecordStreamOptions<Rec>> = {}) {
    const stream = log.stream(options);
    const got: Array<[path: 'push' | 'pull', seq: number]> = [];
    stream[PUSH]((record) => {
      if (refuse(record.seq)) return false;
      got.push(['push', record.seq]);
      return true;
    });
    return { stream, got };
  }

  it('hands replayed and live records to the sink; pull only sees the end', async () => {
    const log = new Log();
    for (let i = 0; i < 5; i++) log.append();
    const { stream, got } = pushed(log, () => false, { pageSize: 2 });
    const pulled = stream.next(); // drives the replay; waits, since the sink takes everything
    await settle();
    expect(got).toEqual(range(1, 5).map((seq) => ['push', seq]));
    log.commit(3); // synchronously, in publish
    expect(got).toHaveLength(8);
    expect(got.at(-1)).toEqual(['push', 8]);
    await stream.return();
    expect(await pulled).toEqual({ done: true, value: undefined });
    expect(log.feed.size).toBe(0);
    log.commit(); // detached: nothing more is pushed
    expect(got).toHaveLength(8);
  });

  it('leaves a refused record and the ones after it to pull, in order, then pushes again', async () => {
    const log = new Log();
    for (let i = 0; i < 4; i++) log.append();
    const { stream, got } = pushed(log, (seq) => seq === 3 || seq === 6);
    const pull = async (count: number) => {
      for (const seq of await take(stream, count)) got.push(['pull', seq as number]);
    };
    await pull(1); // 1 and 2 pushed, 3 refused and pulled
    expect(got).toEqual([['push', 1], ['push', 2], ['pull', 3]]);
    const waiting = pull(1); // 4 pushed during the replay; then live: 5 pushed, 6 refused
    await settle();
    log.commit(3); // 5 pushed, 6 refused (queued, wakes the puller), 7 queued behind it
    await waiting;
    await pull(1);
    const last = stream.next();
    await settle();
    log.commit(); // the consumer waits again: pushed
    log.commit();
    expect(got.slice(3)).toEqual([['push', 4], ['push', 5], ['pull', 6], ['pull', 7], ['push', 8], ['push', 9]]);
    await stream.return();
    expect((await last).done).toBe(true);
  });

  it('treats a sink that throws as a refusal: the record is pulled', async () => {
    const log = new Log();
    log.append();
    const stream = log.stream();
    stream[PUSH](() => {
      throw new Error('socket gone');
    });
    expect(await take(stream, 1)).toEqual([1]);
    const next = stream.next();
    log.commit();
    expect((await next).value).toEqual({ seq: 2 });
    await stream.return();
  });

  it('does not push a record out of order (a late publication): pull fills the hole from disk', async () => {
    const log = new Log();
    const { stream, got } = pushed(log);
    const pulled = stream.next();
    await settle();
    log.append(); // 1 is durable, its publication late
    log.commit(); // 2 published first: refused by the stream itself, pulled after 1
    expect(got).toEqual([]);
    expect((await pulled).value).toEqual({ seq: 1 });
    expect(await take(stream, 1)).toEqual([2]);
    await stream.return();
  });
});

describe('recordStream fused (the live push path flattened)', () => {
  /** A stream with a push sink and a fused target; every record is recorded with its path. */
  function fused(
    log: Log,
    steps: readonly SharedStep[],
    refuse: (value: unknown) => boolean = () => false,
    options: Partial<RecordStreamOptions<Rec>> = {},
    refusePush: (seq: number) => boolean = () => false,
  ) {
    const stream = log.stream(options);
    const got: Array<[path: 'push' | 'fused' | 'pull', value: unknown]> = [];
    stream[PUSH]((record) => {
      if (refusePush(record.seq)) return false;
      got.push(['push', record.seq]);
      return true;
    });
    const installed = stream[FUSE](steps, {
      deliver: (value) => {
        if (refuse(value)) return false;
        got.push(['fused', value]);
        return true;
      },
    });
    return { stream, got, installed };
  }

  it('computes each live record once for every subscriber of one chain, and delivers it to each', async () => {
    const log = new Log();
    let computed = 0;
    const label: SharedStep = { key: 'label', map: (r: Rec) => (computed++, `r${r.seq}`) };
    const upper: SharedStep = { key: 'upper', map: (s: string) => s.toUpperCase() };
    const a = fused(log, [label, upper]);
    const b = fused(log, [label, upper]);
    const c = fused(log, [label]); // another chain: computed on its own
    expect([a.installed, b.installed, c.installed]).toEqual([true, true, true]);
    const pulls = [a, b, c].map(({ stream }) => stream.next());
    await settle();
    log.commit(3);
    expect(a.got).toEqual([['fused', 'R1'], ['fused', 'R2'], ['fused', 'R3']]);
    expect(b.got).toEqual(a.got);
    expect(c.got).toEqual([['fused', 'r1'], ['fused', 'r2'], ['fused', 'r3']]);
    expect(computed).toBe(6); // 3 records x 2 chains, not x 3 subscribers
    expect(fusedChains(log.feed)).toBe(2);
    await a.stream.return();
    expect(fusedChains(log.feed)).toBe(2);
    for (const { stream } of [b, c]) await stream.return();
    expect(fusedChains(log.feed)).toBe(0); // nothing of the subscribers' chains is kept
    for (const pulled of pulls) expect((await pulled).done).toBe(true);
    expect(log.feed.size).toBe(0);
  });

  it('sends what the target refuses, or a step cannot do now (LATER) or throws on, the usual way, in order, then resumes', async () => {
    const log = new Log();
    const step: SharedStep = {
      key: 'step',
      map: (r: Rec) => {
        if (r.seq === 4) throw new Error('cannot');
        return r.seq === 3 ? LATER : r.seq;
      },
    };
    const { stream, got } = fused(log, [step], (value) => value === 6);
    const pulled = stream.next();
    await settle();
    log.commit(7);
    // 3 (LATER), 4 (throws) and 6 (refused by the target) take the push path; nothing twice.
    expect(got).toEqual([
      ['fused', 1],
      ['fused', 2],
      ['push', 3],
      ['push', 4],
      ['fused', 5],
      ['push', 6],
      ['fused', 7],
    ]);
    await stream.return();
    expect((await pulled).done).toBe(true);
  });

  it('leaves a record neither path takes to pull, then fuses again, with no gap and no duplicate', async () => {
    const log = new Log();
    const { stream, got } = fused(
      log,
      [{ key: 'seq', map: (r: Rec) => r.seq }],
      (seq) => seq === 2 || seq === 3,
      {},
      (seq) => seq === 2,
    );
    const first = stream.next();
    await settle();
    log.commit(4); // 1 fused; 2 refused by both: queued with 3 and 4 behind it, for pull
    expect((await first).value).toEqual({ seq: 2 });
    got.push(['pull', 2]);
    for (const seq of await take(stream, 2)) got.push(['pull', seq]);
    const last = stream.next();
    await settle();
    log.commit(2); // the consumer waits again: fused
    expect(got).toEqual([
      ['fused', 1],
      ['pull', 2],
      ['pull', 3],
      ['pull', 4],
      ['fused', 5],
      ['fused', 6],
    ]);
    await stream.return();
    expect((await last).done).toBe(true);
  });

  it('skips records the subscriber may not see, as the other paths do', async () => {
    const log = new Log();
    const { stream, got } = fused(log, [{ key: 'seq', map: (r: Rec) => r.seq }], () => false, { accept: (r) => r.seq % 2 === 1 });
    const pulled = stream.next();
    await settle();
    log.commit(5);
    expect(got).toEqual([
      ['fused', 1],
      ['fused', 3],
      ['fused', 5],
    ]);
    await stream.return();
    expect((await pulled).done).toBe(true);
  });

  it('is not installed without a push sink, and a layer without a shared step is not fusable', async () => {
    const log = new Log();
    const bare = log.stream();
    expect(bare[FUSE]([], { deliver: () => true })).toBe(false);
    await bare.return();
    const source = log.stream();
    const perSubscriber = mapAsyncIterator(source, (r) => r, (r) => r);
    const shared = mapAsyncIterator(source, (r) => r, (r) => r, { key: 'same', map: (r) => r });
    expect(FUSE in perSubscriber).toBe(false);
    expect(FUSE in shared).toBe(true);
    await source.return();
  });
});

describe('Compositions', () => {
  it('shares one composition per chain of keys and drops it with its last user', () => {
    const compositions = new Compositions();
    const calls: string[] = [];
    const step = (key: string): SharedStep => ({ key, map: (v: string) => (calls.push(key), `${v}.${key}`) });
    const a = compositions.acquire([step('x'), step('y')]);
    const b = compositions.acquire([step('x'), step('y')]);
    const c = compositions.acquire([step('x,y')]); // not the same chain as ['x', 'y']
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(compositions.size).toBe(2);
    expect(a.apply('v')).toBe('v.x.y');
    expect(b.apply('v')).toBe('v.x.y');
    expect(calls).toEqual(['x', 'y']); // the last item's value is remembered
    compositions.release(a);
    expect(compositions.size).toBe(2);
    compositions.release(b);
    compositions.release(c);
    expect(compositions.size).toBe(0);
  });
});

describe('LiveFeed', () => {
  it('fans each record out to every subscriber, each with its own bound', async () => {
    const feed = new LiveFeed<Rec>();
    const small = feed.attach(1);
    const large = feed.attach(10);
    feed.publish({ seq: 1 });
    feed.publish({ seq: 2 });
    expect(small.overflowed).toBe(true);
    expect(await small.next()).toBe(OVERFLOW);
    expect(await large.next()).toEqual({ seq: 1 });
    expect(await large.next()).toEqual({ seq: 2 });
  });

  it('forgets queued records and the overflow on reset', async () => {
    const feed = new LiveFeed<Rec>();
    const queue = feed.attach(1);
    feed.publish({ seq: 1 });
    feed.publish({ seq: 2 });
    queue.reset();
    expect(queue.overflowed).toBe(false);
    feed.publish({ seq: 3 });
    expect(await queue.next()).toEqual({ seq: 3 });
  });

  it('wakes a waiting reader, and answers CLOSED once closed', async () => {
    const feed = new LiveFeed<Rec>();
    const queue = feed.attach(4);
    const waiting = queue.next();
    feed.publish({ seq: 1 });
    expect(await waiting).toEqual({ seq: 1 });
    const pending = queue.next();
    feed.closeAll();
    expect(await pending).toBe(CLOSED);
    expect(await queue.next()).toBe(CLOSED);
    expect(feed.size).toBe(0);
    queue.reset();
    expect(await queue.next()).toBe(CLOSED); // reset does not reopen a closed queue
  });

  it('keeps order across many records (the queue compacts as it goes)', async () => {
    const feed = new LiveFeed<Rec>();
    const queue = feed.attach(5000);
    const seen: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3000; i++) feed.publish({ seq: round * 3000 + i + 1 });
      for (let i = 0; i < 3000; i++) seen.push(((await queue.next()) as Rec).seq);
    }
    expect(seen).toEqual(range(1, 9000));
  });
});

describe('any interleaving of appends, publications, disk reads and pulls', () => {
  const configArb = fc.record({
    initial: fc.integer({ min: 0, max: 12 }),
    from: fc.nat(),
    pageSize: fc.integer({ min: 1, max: 5 }),
    queueMax: fc.integer({ min: 1, max: 8 }),
    batches: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 12 }),
    // A push sink (engine/async-map.ts) accepting or refusing records in this pattern, or none.
    push: fc.option(fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }), { nil: undefined }),
    // Records the subscriber may not see (seq % hide === 0), or none hidden.
    hide: fc.option(fc.integer({ min: 2, max: 4 }), { nil: undefined }),
  });

  it('delivers exactly fromSeq..N in order, or a gapless prefix then OVERFLOW; never OVERFLOW if the queue can hold everything', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), configArb, async (s, { initial, from, pageSize, queueMax, batches, push, hide }) => {
        const log = new Log();
        for (let i = 0; i < initial; i++) log.append();
        const fromSeq = 1 + (from % (initial + 1));

        // Disk reads pause (at the scheduler's choice) before and after taking their snapshot.
        const readPage = async (start: number, limit: number) => {
          await s.schedule(Promise.resolve(), 'read: before snapshot');
          const page = log.page(start, limit);
          await s.schedule(Promise.resolve(), 'read: after snapshot');
          return page;
        };

        // Each batch becomes durable, then later is published (in durability order, as onDurable is).
        const unpublished: Rec[] = [];
        for (const size of batches) {
          void s.schedule(Promise.resolve(), `append ${size}`).then(() => {
            for (let i = 0; i < size; i++) unpublished.push(log.append());
            void s.schedule(Promise.resolve(), `publish ${size}`).then(() => {
              for (const record of unpublished.splice(0, size)) log.feed.publish(record);
            });
          });
        }

        const delivered: Array<number | 'OVERFLOW'> = [];
        const visible = (seq: number) => hide === undefined || seq % hide !== 0;
        const stream = recordStream<Rec>({
          fromSeq,
          readPage,
          feed: log.feed,
          queueMax,
          pageSize,
          ...(hide !== undefined ? { accept: (record: Rec) => visible(record.seq) } : {}),
        });
        if (push !== undefined) {
          let offers = 0;
          stream[PUSH]((record) => {
            const accept = push[offers++ % push.length]!;
            if (accept) delivered.push(record.seq);
            return accept;
          });
        }
        const consumer = (async () => {
          for await (const item of stream) {
            delivered.push(item === OVERFLOW ? 'OVERFLOW' : item.seq);
            await s.schedule(Promise.resolve(), 'consumer: busy');
          }
        })();

        await s.waitIdle();
        log.feed.closeAll(); // everything is published: let a live stream end
        await consumer;

        const total = log.records.length;
        const overflowAt = delivered.indexOf('OVERFLOW');
        const seqs = overflowAt < 0 ? delivered : delivered.slice(0, overflowAt);
        const last = (seqs.at(-1) as number | undefined) ?? fromSeq - 1;
        expect(seqs).toEqual(range(fromSeq, last).filter(visible));
        if (overflowAt < 0) expect(seqs).toEqual(range(fromSeq, total).filter(visible));
        else expect(overflowAt).toBe(delivered.length - 1);
        const published = total - initial;
        if (queueMax >= published) expect(overflowAt).toBe(-1);
      }),
      { numRuns: 300 },
    );
  });
});
