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
 * Mapping an async iterator so that closing the result closes the source at once. An async
 * generator written as `for await (...) yield map(x)` cannot do that: while it waits for the
 * source, a `return()` is queued until the source produces a value, so an idle subscription
 * would outlive its client.
 *
 * With `mapNow` (the same mapping, or LATER when it cannot be done synchronously without side
 * effects) the result is Pushable when the source is. A value refused downstream is mapped again
 * by pull, so both mappings must be repeatable.
 */
export function mapAsyncIterator<T, U>(
  source: AsyncIterator<T>,
  map: (value: T) => U | Promise<U>,
  mapNow?: (value: T) => U | typeof LATER,
): AsyncGenerator<U, void, undefined> & Partial<Pushable<U>> {
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
  } as AsyncGenerator<U, void, undefined> & Partial<Pushable<U>>;
  if (mapNow !== undefined && isPushable<T>(source)) {
    mapped[PUSH] = (sink) =>
      source[PUSH]((value) => {
        const result = mapNow(value);
        return result !== LATER && sink(result);
      });
  }
  return mapped;
}
