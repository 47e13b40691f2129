/**
 * In-memory fan-out of durable records to live subscribers. Each subscriber has its own bounded
 * queue: a subscriber that does not keep up is cut off (`overflowed`), never buffered without
 * bound. Records are shared objects: publishing costs one array push per subscriber.
 */
export class LiveFeed<T extends object> {
  private readonly queues = new Set<FeedQueue<T>>();
  private closed = false;

  publish(item: T): void {
    if (this.queues.size > 1) published.add(item);
    for (const queue of this.queues) queue.push(item);
  }

  /** A new subscriber's queue; `onDetach` runs once, when it is closed. */
  attach(capacity: number, onDetach?: () => void): FeedQueue<T> {
    const queue = new FeedQueue<T>(capacity, () => {
      this.queues.delete(queue);
      onDetach?.();
    });
    this.queues.add(queue);
    // A subscriber that took the partition just before it was closed must not wait for records
    // that now go to the partition's next instance: it ends, and resumes from its cursor.
    if (this.closed) queue.close();
    return queue;
  }

  /** Ends every subscription, and any attached later: the partition is closed (shutdown, purge, released). */
  closeAll(): void {
    this.closed = true;
    for (const queue of [...this.queues]) queue.close();
  }

  get size(): number {
    return this.queues.size;
  }

  /** How many records wait in each subscriber's queue (for metrics). */
  *depths(): Iterable<number> {
    for (const queue of this.queues) yield queue.depth;
  }
}

/** Records handed to more than one subscriber. */
const published = new WeakSet<object>();

/**
 * Whether this very object went to several subscribers: worth sharing work on (a record read from
 * disk for one subscriber's replay is a fresh object, seen once).
 */
export function isShared(record: object): boolean {
  return published.has(record);
}

/** A subscriber's direct delivery (record-stream.ts, fused): tried before the listener. */
export interface DirectDelivery<T> {
  /** Takes the item, or refuses it (false): it then goes to the listener, as usual. */
  offer(item: T): boolean;
  /** The queue is closed. */
  detach(): void;
}

export const OVERFLOW = Symbol('overflow');
export const CLOSED = Symbol('closed');

export class FeedQueue<T> {
  private items: T[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  private state: 'open' | 'overflowed' | 'closed' = 'open';
  /** Offered each item pushed while nothing is queued; an item it refuses is queued. */
  private listener: ((item: T) => boolean) | undefined;
  /** Offered an item first, while the listener is installed and nothing is queued. */
  private direct: DirectDelivery<T> | undefined;

  constructor(
    private readonly capacity: number,
    private readonly onDetach: () => void,
  ) {}

  push(item: T): void {
    if (this.state !== 'open') return;
    if (this.listener !== undefined && this.head === this.items.length) {
      if (this.direct?.offer(item) === true || this.listener(item)) return;
      // Refused: this item and the ones after it wait in the queue, in order.
      this.listener = undefined;
    }
    if (this.items.length - this.head >= this.capacity) {
      this.state = 'overflowed';
      this.items = [];
      this.head = 0;
    } else {
      this.items.push(item);
    }
    this.signal();
  }

  /** Records waiting to be taken. */
  get depth(): number {
    return this.items.length - this.head;
  }

  get overflowed(): boolean {
    return this.state === 'overflowed';
  }

  /**
   * Offers items to `listener` as they are pushed, as long as nothing is queued, instead of
   * queueing them (the consumer's synchronous fast path; see async-map.ts). Undefined removes it.
   */
  listen(listener: ((item: T) => boolean) | undefined): void {
    this.listener = this.state === 'closed' ? undefined : listener;
  }

  /**
   * Installs a direct delivery, offered each item before the listener (and only while one is
   * installed). It stays until the queue is closed, which detaches it.
   */
  deliverDirectly(direct: DirectDelivery<T>): void {
    if (this.state === 'closed') return direct.detach();
    this.direct?.detach();
    this.direct = direct;
  }

  /** Drops queued items the caller already has (read from disk while they were being queued). */
  dropWhile(stale: (item: T) => boolean): void {
    while (this.head < this.items.length && stale(this.items[this.head] as T)) {
      this.items[this.head] = undefined as T;
      this.head++;
    }
  }

  /** Forget everything queued and the overflow; the caller re-reads what it missed from disk. */
  reset(): void {
    if (this.state === 'closed') return;
    this.items = [];
    this.head = 0;
    this.state = 'open';
  }

  /** The next item, waiting for one; OVERFLOW once the queue overflowed, CLOSED once closed. */
  async next(): Promise<T | typeof OVERFLOW | typeof CLOSED> {
    for (;;) {
      if (this.state === 'closed') return CLOSED;
      if (this.state === 'overflowed') return OVERFLOW;
      if (this.head < this.items.length) {
        const item = this.items[this.head] as T;
        this.items[this.head] = undefined as T;
        this.head++;
        if (this.head > 1024 && this.head * 2 > this.items.length) {
          this.items = this.items.slice(this.head);
          this.head = 0;
        }
        return item;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.items = [];
    this.listener = undefined;
    this.direct?.detach();
    this.direct = undefined;
    this.onDetach();
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
