/** Runs async sections one at a time, in call order (a bucket's state changes, its requests). */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(section);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** A promise to wait on that something else wakes early (a reconnect cutting a backoff short). */
export class Wakeup {
  private wakers = new Set<() => void>();

  /** Resolves after `ms`, or at the next `wake()`, whichever is first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  /** Resolves at the next `wake()`. */
  next(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.wakers.delete(done);
        resolve();
      };
      this.wakers.add(done);
    });
  }

  wake(): void {
    for (const waker of [...this.wakers]) waker();
  }
}
