/**
 * Replay-then-live streaming of one log, with no gap and no duplicate (invariant 4).
 *
 * The live queue is attached *before* the first disk read. A record is published only after it
 * is durable, and a LevelDB iterator sees everything durable when it was created; so every record
 * is either read from disk or published to the queue after attaching (or both: duplicates are
 * dropped by sequence number). If the queue overflows while we are still reading from disk, we
 * simply read on from disk: a catching-up subscriber is paced by the disk, not by memory.
 */
import { Compositions, FUSE, LATER, PUSH, type Composition, type Fusable, type FusedTarget, type Pushable, type PushSink, type SharedStep } from './async-map.js';
import { CLOSED, OVERFLOW, type DirectDelivery, type FeedQueue, type LiveFeed } from './live-feed.js';

export interface Sequenced {
  seq: number;
}

export interface RecordStreamOptions<T extends Sequenced> {
  /** First sequence number to deliver. */
  fromSeq: number;
  /** Durable records with seq >= fromSeq, in order, at most `limit`. */
  readPage: (fromSeq: number, limit: number) => Promise<T[]>;
  feed: LiveFeed<T>;
  queueMax: number;
  /** Records per disk read during catch-up. @default 500 */
  pageSize?: number;
  /** Runs once when the stream ends, however it ends. */
  onClose?: () => void;
  /** Records the subscriber may not see (an ACL) are skipped, in order. */
  accept?: (record: T) => boolean;
}

/**
 * Yields records in order; yields OVERFLOW (and ends) when the live subscriber falls behind.
 *
 * Pushable (async-map.ts): with a sink installed, records read from disk are offered to it as
 * they are read, and live records as they are published while the stream waits for them; only
 * what the sink refuses is yielded. The sink sees records in order, each once, with no gap.
 *
 * Closing the stream (`return()`) ends it at once, even while it waits for the next live record:
 * an async generator would queue the request until a record arrives, which for a quiet bucket is
 * never, leaving the subscription's queue attached after the client has gone.
 */
export function recordStream<T extends Sequenced>(
  options: RecordStreamOptions<T>,
): AsyncGenerator<T | typeof OVERFLOW, void, undefined> & Pushable<T> & Fusable {
  const queue = options.feed.attach(options.queueMax, options.onClose);
  const position = new Position<T>(options.fromSeq, options.accept);
  const inner = stream(options, queue, position);
  const outer: AsyncGenerator<T | typeof OVERFLOW, void, undefined> & Pushable<T> & Fusable = {
    next: () => inner.next(),
    return: (value) => {
      queue.close();
      return inner.return(value);
    },
    throw: (error) => {
      queue.close();
      return inner.throw(error);
    },
    [Symbol.asyncIterator]: () => outer,
    [PUSH]: (sink: PushSink<T>) => {
      position.sink = sink;
    },
    [FUSE]: (steps: readonly SharedStep[], target: FusedTarget) => {
      if (position.sink === undefined) return false;
      queue.deliverDirectly(new FusedDelivery(position, compositionsOf(options.feed), steps, target));
      return true;
    },
  } as AsyncGenerator<T | typeof OVERFLOW, void, undefined> & Pushable<T> & Fusable;
  return outer;
}

/** Where a stream stands: the next record it owes its subscriber, and who takes it. */
class Position<T extends Sequenced> {
  sink: PushSink<T> | undefined;

  constructor(
    public next: number,
    readonly accept: ((record: T) => boolean) | undefined,
  ) {}

  /** Passes over the next record when the subscriber may not see it. */
  skipped(record: T): boolean {
    if (this.accept === undefined || this.accept(record)) return false;
    this.next = record.seq + 1;
    return true;
  }
}

const compositions = new WeakMap<LiveFeed<Sequenced>, Compositions>();
function compositionsOf<T extends Sequenced>(feed: LiveFeed<T>): Compositions {
  let found = compositions.get(feed as unknown as LiveFeed<Sequenced>);
  if (found === undefined) compositions.set(feed as unknown as LiveFeed<Sequenced>, (found = new Compositions()));
  return found;
}

/** How many distinct fused chains the feed's subscribers use now (for tests). */
export function fusedChains(feed: LiveFeed<Sequenced>): number {
  return compositions.get(feed)?.size ?? 0;
}

/**
 * The fused push path (async-map.ts): a live record goes from the queue to the subscriber's
 * target with the value its chain computes, once for every subscriber of that chain. What it
 * refuses goes the usual way; both move the one position, so nothing is seen twice or missed.
 */
class FusedDelivery<T extends Sequenced> implements DirectDelivery<T> {
  private composition: Composition | undefined;

  constructor(
    private readonly position: Position<T>,
    private readonly compositions: Compositions,
    steps: readonly SharedStep[],
    private readonly target: FusedTarget,
  ) {
    this.composition = compositions.acquire(steps);
  }

  offer(record: T): boolean {
    const position = this.position;
    if (record.seq !== position.next || this.composition === undefined) return false;
    if (position.skipped(record)) return true;
    try {
      const value = this.composition.apply(record);
      if (value === LATER || !this.target.deliver(value)) return false;
    } catch {
      // The push path computes it again, and pull reports the error.
      return false;
    }
    position.next = record.seq + 1;
    return true;
  }

  detach(): void {
    if (this.composition === undefined) return;
    this.compositions.release(this.composition);
    this.composition = undefined;
  }
}

async function* stream<T extends Sequenced>(
  options: RecordStreamOptions<T>,
  queue: FeedQueue<T>,
  position: Position<T>,
): AsyncGenerator<T | typeof OVERFLOW, void, undefined> {
  const { readPage, pageSize = 500 } = options;
  // Offers the next record to the sink; a sink that throws refuses, and pull reports the error.
  const offer = (record: T): boolean => {
    if (position.sink === undefined || record.seq !== position.next) return false;
    if (position.skipped(record)) return true;
    try {
      if (!position.sink(record)) return false;
    } catch {
      return false;
    }
    position.next = record.seq + 1;
    return true;
  };
  try {
    for (;;) {
      const page = await readPage(position.next, pageSize);
      for (const record of page) {
        if (record.seq < position.next || offer(record) || position.skipped(record)) continue;
        yield record;
        position.next = record.seq + 1;
      }
      if (page.length < pageSize) {
        if (!queue.overflowed) break;
        queue.reset();
      }
    }
    // What was queued during the replay and also read from disk must not count against the
    // live bound: only records the subscriber has not seen measure how far behind it is.
    queue.dropWhile((record) => record.seq < position.next);
    for (;;) {
      if (position.sink !== undefined) queue.listen(offer);
      const item = await queue.next();
      queue.listen(undefined);
      if (item === CLOSED) return;
      if (item === OVERFLOW) {
        yield OVERFLOW;
        return;
      }
      if (item.seq < position.next) continue;
      if (item.seq > position.next) {
        // Not expected (see above), but the disk is the truth: fill any hole from it.
        const next = position.next;
        for (const record of await readPage(next, item.seq - next)) {
          if (record.seq < position.next || record.seq >= item.seq || position.skipped(record)) continue;
          yield record;
          position.next = record.seq + 1;
        }
      }
      if (position.skipped(item)) continue;
      yield item;
      position.next = item.seq + 1;
    }
  } finally {
    queue.close();
  }
}
