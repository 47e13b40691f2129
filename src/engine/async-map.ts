/**
 * Mapping an async iterator so that closing the result closes the source at once. An async
 * generator written as `for await (...) yield map(x)` cannot do that: while it waits for the
 * source, a `return()` is queued until the source produces a value, so an idle subscription
 * would outlive its client.
 */
export function mapAsyncIterator<T, U>(
  source: AsyncIterator<T>,
  map: (value: T) => U | Promise<U>,
): AsyncGenerator<U, void, undefined> {
  const done: IteratorResult<U, void> = { value: undefined, done: true };
  const mapped: AsyncGenerator<U, void, undefined> = {
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
  } as AsyncGenerator<U, void, undefined>;
  return mapped;
}
