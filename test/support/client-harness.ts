/**
 * Helpers for end-to-end tests of the client SDK against real node processes: an app with a
 * user and tokens, SDK clients over `ws` (optionally behind a TCP proxy that can cut them off,
 * and a fetch that can lose answers), and waiting on conditions re-checked at every client
 * event (never a sleep; the bound only turns a hang into a failure that says what it waited for).
 */
import { MemoryLevel } from 'memory-level';
import WebSocket from 'ws';
import { createClient, type ClientOptions, type SyncClient } from '../../src/client/index.js';
import { gqlData, rawPost } from './client.js';
import type { NodeProcess } from './node-process.js';
import { CreateApp, CreateUser } from './operations.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface TestApp {
  id: string;
  defaultKey: string;
  adminKey: string;
  /** A fresh access token of `user` (ttl in seconds, the node's default when omitted). */
  token(ttlSeconds?: number): Promise<{ token: string; expiresAt: string }>;
  user: string;
}

let appSeq = 0;

export async function createTestApp(node: NodeProcess, user = 'alice'): Promise<TestApp> {
  const id = `app${++appSeq}${Date.now().toString(36)}`;
  const { createApp } = await gqlData(node, CreateApp, { id });
  const password = 'correct horse battery staple';
  await gqlData({ ...node, adminKey: createApp.defaultKey }, CreateUser, { username: user, password });
  return {
    id,
    user,
    defaultKey: createApp.defaultKey,
    adminKey: createApp.adminKey,
    async token(ttlSeconds?: number) {
      const result = await rawPost(
        node,
        {
          query: 'mutation($u: String!, $p: String!, $t: Int) { authorize(username: $u, password: $p, ttlSeconds: $t) { token expiresAt } }',
          variables: { u: user, p: password, t: ttlSeconds ?? null },
        },
        { token: createApp.defaultKey },
      );
      const data = result.data as { authorize: { token: string; expiresAt: string } } | null | undefined;
      if (!data) throw new Error(`authorize failed: ${JSON.stringify(result.errors)}`);
      return data.authorize;
    },
  };
}

/** A proxy in front of a node (whose port may change across restarts): cut() takes a client offline. */
export interface Link {
  proxy: TcpProxy;
  url: string;
  cut(): void;
  restore(): void;
}

export async function startLink(targetPort: () => number): Promise<Link> {
  const proxy = await startTcpProxy({ targetPort });
  return {
    proxy,
    url: `http://127.0.0.1:${proxy.port}/graphql`,
    cut: () => proxy.setFilter(() => false),
    restore: () => proxy.setFilter(() => true),
  };
}

/** A fetch that, when armed, lets the request reach the server and then loses the answer. */
export function lossyFetch(): { fetch: typeof fetch; loseNextAnswer(): void; bodies: string[] } {
  let lose = false;
  const bodies: string[] = [];
  return {
    bodies,
    loseNextAnswer: () => {
      lose = true;
    },
    fetch: (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      if (typeof init?.body === 'string') bodies.push(init.body);
      const response = await fetch(input, init);
      if (lose && typeof init?.body === 'string' && init.body.includes('submitChanges')) {
        lose = false;
        await response.text();
        throw new TypeError('fetch failed: answer lost');
      }
      return response;
    }) as typeof fetch,
  };
}

const clients = new Set<SyncClient>();

export function sdkClient(options: Partial<ClientOptions> & Pick<ClientOptions, 'url'>): SyncClient {
  const client = createClient({
    store: new MemoryLevel(),
    webSocketImpl: WebSocket,
    backoff: { initialMs: 50, maxMs: 500 },
    ...options,
  });
  clients.add(client);
  return client;
}

export async function closeClients(): Promise<void> {
  await Promise.all([...clients].map((c) => c.close()));
  clients.clear();
}

/**
 * Resolves once `check` holds, re-checking it at every status, progress and error event of the
 * clients and every change of their open buckets' keys. Rejects after `timeoutMs` naming `what`.
 */
export function until(what: string, clientsToWatch: SyncClient[], check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const unlisten: Array<() => void> = [];
    let done = false;
    let checking = false;
    let again = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const u of unlisten) u();
      if (error) reject(error);
      else resolve();
    };
    const evaluate = async () => {
      if (done) return;
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          if (await check()) return finish();
        } while (again && !done);
      } catch (error) {
        finish(error as Error);
      } finally {
        checking = false;
      }
    };
    const timer = setTimeout(() => finish(new Error(`timed out waiting until ${what}`)), timeoutMs);
    for (const client of clientsToWatch) {
      unlisten.push(client.on('status', () => void evaluate()));
      unlisten.push(client.on('progress', () => void evaluate()));
      unlisten.push(client.on('error', () => void evaluate()));
      for (const bucket of watchedBuckets.get(client) ?? []) unlisten.push(bucket.subscribe(() => void evaluate()));
    }
    void evaluate();
  });
}

const watchedBuckets = new WeakMap<SyncClient, Array<{ subscribe: (l: () => void) => () => void }>>();

/** `until` also re-checks at every change of this bucket's keys. */
export function watch<B extends { subscribe: (l: () => void) => () => void }>(client: SyncClient, bucket: B): B {
  const list = watchedBuckets.get(client) ?? [];
  list.push(bucket);
  watchedBuckets.set(client, list);
  return bucket;
}
