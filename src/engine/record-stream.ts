/**
 * Replay-then-live streaming of one log, with no gap and no duplicate (invariant 4).
 *
 * The live queue is attached *before* the first disk read. A record is published only after it
 * is durable, and a LevelDB iterator sees everything durable when it was created; so every record
 * is either read from disk or published to the queue after attaching (or both: duplicates are
 * dropped by sequence number). If the queue overflows while we are still reading from disk, we
 * simply read on from disk: a catching-up subscriber is paced by the disk, not by memory.
 */
import { PUSH, type Pushable, type PushSink } from './async-map.js';
import { CLOSED, OVERFLOW, type FeedQueue, type LiveFeed } from './live-feed.js';

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
): AsyncGenerator<T | typeof OVERFLOW, void, undefined> & Pushable<T> {
  const queue = options.feed.attach(options.queueMax, options.onClose);
  const fast: { sink?: PushSink<T> } = {};
  const inner = stream(options, queue, fast);
  const outer: AsyncGenerator<T | typeof OVERFLOW, void, undefined> & Pushable<T> = {
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
      fast.sink = sink;
    },
  } as AsyncGenerator<T | typeof OVERFLOW, void, undefined> & Pushable<T>;
  return outer;
}

async function* stream<T extends Sequenced>(
  options: RecordStreamOptions<T>,
  queue: FeedQueue<T>,
  fast: { sink?: PushSink<T> },
): AsyncGenerator<T | typeof OVERFLOW, void, undefined> {
  const { readPage, pageSize = 500, accept } = options;
  let next = options.fromSeq;
  /** Passes over the next record when the subscriber may not see it. */
  const skipped = (record: T): boolean => {
    if (accept === undefined || accept(record)) return false;
    next = record.seq + 1;
    return true;
  };
  // Offers the next record to the sink; a sink that throws refuses, and pull reports the error.
  const offer = (record: T): boolean => {
    if (fast.sink === undefined || record.seq !== next) return false;
    if (skipped(record)) return true;
    try {
      if (!fast.sink(record)) return false;
    } catch {
      return false;
    }
    next = record.seq + 1;
    return true;
  };
  try {
    for (;;) {
      const page = await readPage(next, pageSize);
      for (const record of page) {
        if (record.seq < next || offer(record) || skipped(record)) continue;
        yield record;
        next = record.seq + 1;
      }
      if (page.length < pageSize) {
        if (!queue.overflowed) break;
        queue.reset();
      }
    }
    // What was queued during the replay and also read from disk must not count against the
    // live bound: only records the subscriber has not seen measure how far behind it is.
    queue.dropWhile((record) => record.seq < next);
    for (;;) {
      if (fast.sink !== undefined) queue.listen(offer);
      const item = await queue.next();
      queue.listen(undefined);
      if (item === CLOSED) return;
      if (item === OVERFLOW) {
        yield OVERFLOW;
        return;
      }
      if (item.seq < next) continue;
      if (item.seq > next) {
        // Not expected (see above), but the disk is the truth: fill any hole from it.
        for (const record of await readPage(next, item.seq - next)) {
          if (record.seq < next || record.seq >= item.seq || skipped(record)) continue;
          yield record;
          next = record.seq + 1;
        }
      }
      if (skipped(item)) continue;
      yield item;
      next = item.seq + 1;
    }
  } finally {
    queue.close();
  }
}
