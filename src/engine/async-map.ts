/**
 * Async iterators for subscriptions: mapping that closes its source at once, and a synchronous
 * fast path ("push") beside the usual pull.
 *
 * Pulling costs a chain of promises per value through every layer (the log's queue, the
 * resolver's mapping, the shared execution, the protocol server): several microseconds, which
 * for a change fanned out to thousands of live subscribers is most of the work. A stream that is
 * `Pushable` accepts a synchronous sink from its consumer and, while the consumer is waiting
 * anyway, hands values straight to it. The sink may refuse a value (a socket backed up, a result
 * only computable asynchronously); the value is then delivered by pull, in order, and the fast
 * path resumes when the consumer waits again. Pull stays the semantics; push only saves work.
 */
export const PUSH = Symbol('push');

/** Returned by a synchronous mapping that cannot produce its value now. */
export const LATER = Symbol('later');

/** Takes a value now, or refuses it (false) and leaves it to pull. */
export type PushSink<T> = (value: T) => boolean;

export interface Pushable<T> {
  /** Installs the consumer's sink; call before the first `next()`. */
  [PUSH](sink: PushSink<T>): void;
}

export function isPushable<T>(value: unknown): value is Pushable<T> {
  return typeof value === 'object' && value !== null && PUSH in value;
}

/**
 * Fusing: the push path of a whole chain of streams, flattened into one step per subscriber.
 *
 * Pushed through the chain, a live change visits every layer's closures once per subscriber:
 * with a thousand subscribers those are thousands of cold objects per change, which measured
 * at three to six times the cost of the work itself (W2). But every layer maps a live item the
 * same way for all its subscribers (the payload, the shared result, its bytes), so a chain whose
 * every layer says so (a `SharedStep`, named by a key) is composed once per distinct chain; the
 * source then hands each item to a subscriber's `FusedTarget` directly, the value computed once
 * for all of them. Anything the fused path cannot do (a step answers LATER, the target refuses,
 * a step throws) takes the push chain, then pull, in order, as before: fusing only saves work.
 */
export const FUSE = Symbol('fuse');

/** One layer's mapping of a live item, the same for every stream of this `key`. */
export interface SharedStep {
  key: string;
  map: (value: never) => unknown;
}

/** Where a fused chain delivers, per subscriber: false refuses the value. */
export interface FusedTarget {
  deliver(value: unknown): boolean;
}

export interface Fusable {
  /**
   * Asks the source to deliver live items through `steps` (innermost first) to `target`; false
   * when some layer's mapping is not shared, and nothing was installed. Call after PUSH.
   */
  [FUSE](steps: readonly SharedStep[], target: FusedTarget): boolean;
}

export function isFusable(value: unknown): value is Fusable {
  return typeof value === 'object' && value !== null && FUSE in value;
}

/**
 * Mapping an async iterator so that closing the result closes the source at once. An async
 * generator written as `for await (...) yield map(x)` cannot do that: while it waits for the
 * source, a `return()` is queued until the source produces a value, so an idle subscription
 * would outlive its client.
 *
 * With `mapNow` (the same mapping, or LATER when it cannot be done synchronously without side
 * effects) the result is Pushable when the source is. A value refused downstream is mapped again
 * by pull, so both mappings must be repeatable. With `shared` too (the same mapping again, which
 * every stream given that key computes alike, whoever made it), it is Fusable when the source is.
 */
export function mapAsyncIterator<T, U>(
  source: AsyncIterator<T>,
  map: (value: T) => U | Promise<U>,
  mapNow?: (value: T) => U | typeof LATER,
  shared?: { key: string; map: (value: T) => U | typeof LATER },
): AsyncGenerator<U, void, undefined> & Partial<Pushable<U>> & Partial<Fusable> {
  const done: IteratorResult<U, void> = { value: undefined, done: true };
  const mapped = {
    async next() {
      const step = await source.next();
      if (step.done === true) return done;
      try {
        return { value: await map(step.value), done: false };
      } catch (error) {
        await source.return?.();
        throw error;
      }
    },
    async return() {
      await source.return?.();
      return done;
    },
    async throw(error: unknown) {
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]: () => mapped,
  } as AsyncGenerator<U, void, undefined> & Partial<Pushable<U>> & Partial<Fusable>;
  if (mapNow !== undefined && isPushable<T>(source)) {
    mapped[PUSH] = (sink) =>
      source[PUSH]((value) => {
        const result = mapNow(value);
        return result !== LATER && sink(result);
      });
    // `shared.map` must give what `mapNow` gives, for any stream of the same key.
    if (shared !== undefined && isFusable(source)) {
      mapped[FUSE] = (steps, target) => source[FUSE]([shared as SharedStep, ...steps], target);
    }
  }
  return mapped;
}

/**
 * A chain of shared steps composed once, with the last item's value remembered: a change is
 * offered to its subscribers one after the other, so every subscriber of the chain after the
 * first finds it computed. LATER from a step stops the chain (the item takes the push path).
 */
export class Composition {
  users = 0;
  private lastItem: unknown;
  private lastValue: unknown;

  constructor(
    readonly key: string,
    private readonly maps: ReadonlyArray<(value: never) => unknown>,
  ) {}

  apply(item: unknown): unknown {
    if (item === this.lastItem && item !== undefined) return this.lastValue;
    let value = item;
    for (const map of this.maps) {
      value = map(value as never);
      if (value === LATER) break;
    }
    this.lastItem = item;
    this.lastValue = value;
    return value;
  }
}

/** The compositions in use on one source, one per distinct chain, dropped with their last user. */
export class Compositions {
  private readonly byKey = new Map<string, Composition>();

  acquire(steps: readonly SharedStep[]): Composition {
    const key = JSON.stringify(steps.map((step) => step.key));
    let composition = this.byKey.get(key);
    if (composition === undefined) {
      composition = new Composition(
        key,
        steps.map((step) => step.map),
      );
      this.byKey.set(key, composition);
    }
    composition.users++;
    return composition;
  }

  release(composition: Composition): void {
    if (--composition.users === 0 && this.byKey.get(composition.key) === composition) this.byKey.delete(composition.key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
