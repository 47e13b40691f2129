/**
 * A Transport wrapper for tests that ends live subscriptions on demand, as the node does with
 * SLOW_CONSUMER, and records what each subscription was started with.
 */
import { ClientError, type ClientErrorCode, type SubscriptionSink, type Transport } from '../../src/client/index.js';
import type { TypedDocumentString } from '../../src/client/generated/graphql.js';

export class FaultyTransport implements Transport {
  readonly subscriptions: Array<{ variables: unknown }> = [];
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  private readonly active = new Set<{ stop: () => void; sink: SubscriptionSink<unknown> }>();

  constructor(private readonly inner: Transport) {}

  get connected(): boolean {
    return this.inner.connected;
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    return this.inner.onConnection(listener);
  }

  request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables: TVariables): Promise<TResult> {
    return this.inner.request(document, variables);
  }

  subscribe<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables: TVariables, sink: SubscriptionSink<TResult>): () => void {
    this.subscriptions.push({ variables });
    for (const w of this.waiters.filter((w) => this.active.size + 1 >= w.n)) w.resolve();
    this.waiters = this.waiters.filter((w) => this.active.size + 1 < w.n);
    let ended = false;
    const entry = {
      stop: () => undefined as void,
      sink: sink as SubscriptionSink<unknown>,
    };
    const guarded: SubscriptionSink<TResult> = {
      next: (data) => {
        if (!ended) sink.next(data);
      },
      error: (error) => {
        if (ended) return;
        ended = true;
        this.active.delete(entry);
        sink.error(error);
      },
      complete: () => {
        if (ended) return;
        ended = true;
        this.active.delete(entry);
        sink.complete();
      },
    };
    const stop = this.inner.subscribe(document, variables, guarded);
    entry.stop = () => {
      ended = true;
      stop();
    };
    this.active.add(entry);
    return () => {
      this.active.delete(entry);
      entry.stop();
    };
  }

  /** Resolves when `n` subscriptions are live. */
  live(n = 1): Promise<void> {
    if (this.active.size >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  /** Ends every live subscription with `code`, as a server-side end would. */
  endSubscriptions(code: ClientErrorCode): number {
    const entries = [...this.active];
    this.active.clear();
    for (const entry of entries) {
      entry.stop();
      entry.sink.error(new ClientError(code, `ended by the test (${code})`));
    }
    return entries.length;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
