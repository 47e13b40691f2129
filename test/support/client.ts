/**
 * Real clients for black-box tests: `fetch` for HTTP and graphql-ws (over `ws`) for subscriptions,
 * typed by the documents in operations.ts.
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type ExecutionResult } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { deferred } from './deferred.js';
import type { NodeProcess } from './node-process.js';

export interface GraphQLErrorShape {
  message: string;
  path?: Array<string | number>;
  extensions?: { code?: string; [key: string]: unknown };
}

export interface Result<T> {
  status: number;
  data?: T | null;
  errors?: GraphQLErrorShape[];
}

export async function gql<T, V>(
  node: Pick<NodeProcess, 'graphqlUrl' | 'adminKey'>,
  document: TypedDocumentNode<T, V>,
  variables: V,
  options: { token?: string | null; headers?: Record<string, string> } = {},
): Promise<Result<T>> {
  return rawPost(node, { query: print(document), variables }, options);
}

export async function rawPost(
  node: Pick<NodeProcess, 'graphqlUrl' | 'adminKey'>,
  body: unknown,
  options: { token?: string | null; contentType?: string; headers?: Record<string, string> } = {},
): Promise<Result<never> & Record<string, unknown>> {
  const token = options.token === undefined ? node.adminKey : options.token;
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json', accept: 'application/json', ...options.headers };
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const response = await fetch(node.graphqlUrl, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  return { status: response.status, ...json };
}

/** `gql` that fails the test on any GraphQL error and returns the data. */
export async function gqlData<T, V>(node: Pick<NodeProcess, 'graphqlUrl' | 'adminKey'>, document: TypedDocumentNode<T, V>, variables: V): Promise<T> {
  const result = await gql(node, document, variables);
  if (result.errors?.length || !result.data) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}

export function wsClient(
  node: Pick<NodeProcess, 'wsUrl' | 'adminKey'>,
  token: string | null = node.adminKey,
  options: { params?: Record<string, string>; onClosed?: (code: number, reason: string) => void } = {},
): Client {
  return createClient({
    url: node.wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...options.params },
    onNonLazyError: () => undefined,
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        options.onClosed?.(code, String(reason));
      },
    },
  });
}

export { deferred } from './deferred.js';

export interface Collector<T> {
  items: T[];
  /** Resolves when at least `n` items arrived. */
  until(n: number): Promise<T[]>;
  /** Resolves when the subscription completes; rejects with its error. */
  done: Promise<void>;
  errors: unknown[];
  stop(): void;
}

/** Subscribes and collects every `data` payload. */
export function collect<T, V extends Record<string, unknown>>(client: Client, document: TypedDocumentNode<T, V>, variables: V): Collector<T> {
  const items: T[] = [];
  const errors: unknown[] = [];
  const waiters: Array<{ n: number; resolve: (items: T[]) => void; reject: (e: unknown) => void }> = [];
  const done = deferred();
  const settle = () => {
    for (const w of [...waiters]) {
      if (items.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(items);
      }
    }
  };
  const stop = client.subscribe<T, Record<string, unknown>>(
    { query: print(document), variables },
    {
      next: (result: ExecutionResult<T>) => {
        if (result.errors?.length) errors.push(...result.errors);
        if (result.data) items.push(result.data);
        settle();
      },
      error: (error) => {
        errors.push(error);
        done.reject(error);
        for (const w of waiters.splice(0)) w.reject(error);
      },
      complete: () => {
        done.resolve();
        for (const w of waiters.splice(0)) w.reject(new Error(`completed after ${items.length} of ${w.n} items`));
      },
    },
  );
  done.promise.catch(() => undefined);
  return {
    items,
    errors,
    done: done.promise,
    stop,
    until(n: number) {
      if (items.length >= n) return Promise.resolve(items);
      return new Promise<T[]>((resolve, reject) => {
        waiters.push({ n, resolve, reject });
      });
    },
  };
}
