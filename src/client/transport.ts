/**
 * How the client reaches a node: the interface the sync engine talks to, so that what carries
 * the requests can change without touching it (one WebSocket per tab today; a connection shared
 * by the tabs of an origin, behind a BroadcastChannel and a Web Lock, tomorrow; an in-memory
 * node in tests).
 */
import type { ClientError } from './errors.js';
import type { TypedDocumentString } from './generated/graphql.js';

export interface SubscriptionSink<T> {
  next(data: T): void;
  /**
   * The subscription ended: refused or ended by the server (its code), or cut with the
   * connection (NETWORK_ERROR). Nothing follows; resubscribe from the last cursor.
   */
  error(error: ClientError): void;
  complete(): void;
}

export interface Transport {
  /** One query or mutation. Rejects with a ClientError (NETWORK_ERROR when nothing came back). */
  request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables: TVariables): Promise<TResult>;
  /** A subscription over the live connection; returns a function that ends it (silently). */
  subscribe<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    variables: TVariables,
    sink: SubscriptionSink<TResult>,
  ): () => void;
  /** Whether the live connection is up. */
  readonly connected: boolean;
  /** Called with the new state when the live connection comes up or goes down. */
  onConnection(listener: (connected: boolean) => void): () => void;
  close(): Promise<void>;
}
