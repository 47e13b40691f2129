/**
 * Black-box: abuse limits of a node started with small ones. Hostile operations (too deep, too
 * many aliases, too long, too costly) are refused before they run; tokens and non-admin keys are
 * rate-limited and capped in live subscriptions; connections per address are capped. Each limit
 * answers LIMIT_EXCEEDED.
 */
import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { collect, gql, gqlData, rawPost, wsClient } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { Authorize, ChangesPage, ChangesSubscription, CreateApp, CreateUser } from '../support/operations.js';

let node: NodeProcess;
/** A node with tiny operation limits, talked to with raw queries only. */
let strict: NodeProcess;

beforeAll(async () => {
  [node, strict] = await Promise.all([
    startNodeProcess({
      args: ['--limit', 'requestsPerSecondMax=5', '--limit', 'subscriptionsPerCredentialMax=2', '--limit', 'connectionsPerAddressMax=100'],
    }),
    startNodeProcess({
      args: ['--limit', 'queryDepthMax=2', '--limit', 'queryAliasesMax=3', '--limit', 'queryTokensMax=200', '--limit', 'queryCostMax=15'],
    }),
  ]);
});
afterAll(cleanupNodes);

async function userToken(): Promise<string> {
  const app = (await gqlData(node, CreateApp, { id: `abuse${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}` })).createApp;
  await gql(node, CreateUser, { username: 'user', password: 'a fine password' }, { token: app.defaultKey });
  const signIn = await gql(node, Authorize, { username: 'user', password: 'a fine password' }, { token: app.defaultKey });
  return signIn.data!.authorize.token;
}

describe('hostile operations', () => {
  it.each([
    ['too deep', '{ bucket(name: "b") { config { conflictMode } } }'],
    ['too deep, through a fragment', 'query { bucket(name: "b") { ...F } } fragment F on Bucket { config { conflictMode } }'],
    ['too many aliases', '{ a: viewer { app } b: viewer { app } c: viewer { app } d: viewer { app } }'],
    ['too long', `{ viewer { ${'app '.repeat(300)} } }`],
    ['too costly', '{ e: entities(bucket: "b") { key version deleted data bucket } f: entities(bucket: "c") { key version deleted data bucket } }'],
  ])('refuses one %s with LIMIT_EXCEEDED, running nothing', async (_, query) => {
    const result = await rawPost(strict, { query });
    expect(result.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    expect(result.data).toBeUndefined();
  });

  it('runs what is within the limits', async () => {
    expect((await rawPost(strict, { query: '{ a: viewer { app } b: viewer { level } }' })).errors).toBeUndefined();
    expect((await rawPost(strict, { query: '{ entities(bucket: "b") { key } }' })).errors).toBeUndefined();
  });

  it('does not run a refused mutation', async () => {
    const aliases = Array.from({ length: 4 }, (_, i) => `m${i}: submitChanges(bucket: "hostile", changes: [{ ccid: "ab${i}", key: "k${i}", op: MODIFY, data: {} }]) { ccid }`).join(' ');
    const refused = await rawPost(strict, { query: `mutation { ${aliases} }` });
    expect(refused.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    const page = await rawPost(strict, { query: '{ entities(bucket: "hostile") { key } }' });
    expect(page.data).toEqual({ entities: [] });
  });
});

describe('per-credential quotas', () => {
  it('rate-limits a token (HTTP 429), not the admin key', async () => {
    const token = await userToken();
    const results = await Promise.all(Array.from({ length: 12 }, () => gql(node, ChangesPage, { bucket: 'notes', limit: 1 }, { token })));
    const limited = results.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]?.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(5);
    const admin = await Promise.all(Array.from({ length: 12 }, () => gql(node, ChangesPage, { bucket: 'notes', limit: 1 })));
    expect(admin.every((r) => r.status === 200)).toBe(true);
  });

  it('caps the live subscriptions of a token, and frees a place when one ends', async () => {
    const token = await userToken();
    const client = wsClient(node, token);
    try {
      // Three at once: the node handles them concurrently, so any one of them may be refused.
      const subs = ['a', 'b', 'c'].map((bucket) => collect(client, ChangesSubscription, { bucket, since: null }));
      const ended = await Promise.race([
        Promise.any(subs.map((sub, i) => sub.done.then(() => i, () => i))),
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error('no subscription was refused')), 5_000)),
      ]);
      expect(JSON.stringify(subs[ended]!.errors), JSON.stringify(subs.map((sub) => sub.errors))).toContain('LIMIT_EXCEEDED');
      const live = subs.filter((_, i) => i !== ended);
      live[0]!.stop();
      // The place is freed when the node has closed that stream: retry until it has (each retry
      // counts against the token's request rate too, hence the pauses).
      for (let attempt = 1; ; attempt++) {
        const again = collect(client, ChangesSubscription, { bucket: 'd', since: null });
        const outcome = await Promise.race([again.done.then(() => 'ended', () => 'ended'), new Promise((r) => setTimeout(() => r('live'), 300))]);
        if (outcome === 'live') {
          again.stop();
          break;
        }
        expect(attempt, JSON.stringify(again.errors)).toBeLessThan(20);
        await new Promise((r) => setTimeout(r, 250));
      }
      live[1]!.stop();
    } finally {
      await client.dispose();
    }
  });
});

describe('connections per address', () => {
  it('refuses the connection over the limit (WebSocket upgrade and HTTP), and accepts again once one closes', async () => {
    const open: WebSocket[] = [];
    const agent = new Agent({ keepAlive: true, maxSockets: 100 });
    try {
      // Up to the limit (other tests' connections may still be closing: fill until refused).
      let refused: number | undefined;
      for (let i = 0; i < 160 && refused === undefined; i++) {
        const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws');
        refused = await new Promise<number | undefined>((resolve) => {
          socket.once('open', () => resolve(undefined));
          socket.once('unexpected-response', (_, response) => resolve(response.statusCode));
          socket.once('error', () => resolve(-1));
        });
        if (refused === undefined) open.push(socket);
      }
      expect(refused).toBe(429);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(node.graphqlUrl, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${node.adminKey}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(JSON.stringify({ query: '{ viewer { app } }' }));
      });
      expect(status).toBe(429);
      const closed = new Promise((resolve) => open[0]!.once('close', resolve));
      open[0]!.close();
      await closed;
      open.shift();
      // Once the node has seen the close, a connection is accepted again.
      for (let attempt = 1; ; attempt++) {
        const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws');
        const accepted = await new Promise<boolean>((resolve) => {
          socket.once('open', () => resolve(true));
          socket.once('unexpected-response', () => resolve(false));
          socket.once('error', () => resolve(false));
        });
        if (accepted) {
          open.push(socket);
          break;
        }
        expect(attempt).toBeLessThan(50);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      for (const socket of open) socket.terminate();
      agent.destroy();
    }
  });
});
