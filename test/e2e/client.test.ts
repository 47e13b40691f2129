/**
 * Black-box: the client SDK (src/client) against real node processes, over real HTTP and
 * graphql-ws (the `ws` package). Two clients converge after one edited offline; a client
 * restarted mid-queue resends its changes exactly once; an expiring token is refreshed across a
 * reconnect; a client resumes from its cursor after the node restarts; selective sync; events.
 */
import { ClassicLevel } from 'classic-level';
import { MemoryLevel } from 'memory-level';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Bucket, SyncClient } from '../../src/client/index.js';
import { gqlData } from '../support/client.js';
import { closeClients, createTestApp, lossyFetch, sdkClient, startLink, until, watch, type Link, type TestApp } from '../support/client-harness.js';
import { cleanupNodes, startNodeProcess, tempDataDir, type NodeProcess } from '../support/node-process.js';
import { ChangesPage, SubmitChanges } from '../support/operations.js';
import { FaultyTransport } from '../support/client-faulty-transport.js';
import { GraphQLTransport } from '../../src/client/graphql-transport.js';
import WebSocket from 'ws';

let node: NodeProcess;
let app: TestApp;
let token: string;
const links: Link[] = [];

beforeAll(async () => {
  node = await startNodeProcess();
  app = await createTestApp(node);
  token = (await app.token()).token;
});
afterEach(closeClients);
afterAll(async () => {
  await closeClients();
  for (const link of links) await link.proxy.close();
  await cleanupNodes();
});

let bucketSeq = 0;
const freshBucket = () => `notes${++bucketSeq}`;

async function link(target: () => number = () => node.port): Promise<Link> {
  const l = await startLink(target);
  links.push(l);
  return l;
}

/** The server's change log of a bucket, as the user sees it. */
async function serverLog(bucket: string, userToken = token, on: NodeProcess = node) {
  const page = await gqlData({ ...on, adminKey: userToken }, ChangesPage, { bucket, since: null, limit: 1000, keyPrefix: null });
  return page.changes.changes;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function converged(buckets: Bucket[]): Promise<boolean> {
  const lists = await Promise.all(buckets.map((b) => b.list()));
  return lists.every((l) => same(l, lists[0]));
}

describe('live sync', () => {
  it('moves local writes to another client at once, and reports them acknowledged', async () => {
    const name = freshBucket();
    const a = sdkClient({ url: node.graphqlUrl, token });
    const b = sdkClient({ url: node.graphqlUrl, token: async () => token });
    const na = watch(a, a.bucket(name));
    const nb = watch(b, b.bucket(name));
    await na.set('n1', { title: 'Hello' });
    expect(await na.get('n1')).toEqual({ title: 'Hello' }); // optimistic, before any answer
    await until('b sees n1', [a, b], async () => same(await nb.get('n1'), { title: 'Hello' }));
    await nb.update('n1', (n) => ({ ...n, done: true }));
    await until('a sees the update and nothing is pending', [a, b], async () => same(await na.get('n1'), { title: 'Hello', done: true }) && a.status.pending === 0 && b.status.pending === 0);
    expect(a.status).toMatchObject({ online: true, pending: 0, lastAcknowledged: { bucket: name, key: 'n1', version: 1 } });
    expect(a.status.lastSyncedAt).toEqual(expect.any(Number));
    // pull() while live: the subscription steps aside for a catch-up and resumes.
    await gqlData({ ...node, adminKey: token }, SubmitChanges, { bucket: name, clientId: null, changes: [{ ccid: 'feed01', key: 'n2', op: 'MODIFY', data: { via: 'http' } }] });
    await nb.pull();
    expect(await nb.get('n2')).toEqual({ via: 'http' });
    await na.sync();
    expect(await na.get('n2')).toEqual({ via: 'http' });
    await na.delete('n1');
    await na.delete('n2');
    await until('b sees the deletes', [a, b], async () => (await nb.get('n1')) === undefined && (await nb.list()).length === 0);
    expect((await serverLog(name)).map((c) => [c.key, c.op, c.version])).toEqual([
      ['n1', 'MODIFY', 1],
      ['n1', 'MODIFY', 2],
      ['n2', 'MODIFY', 1],
      ['n1', 'DELETE', 3],
      ['n2', 'DELETE', 2],
    ]);
  });
});

describe('offline', () => {
  it('an offline client and an online one edit the same notes; after reconnecting both hold the merge, each change once', async () => {
    const name = freshBucket();
    const l = await link();
    const a = sdkClient({ url: l.url, token });
    const b = sdkClient({ url: node.graphqlUrl, token });
    const na = watch(a, a.bucket(name));
    const nb = watch(b, b.bucket(name));
    await na.set('n1', { title: 'Shopping', body: 'milk eggs bread' });
    await na.set('n2', { title: 'Todo', items: ['call'] });
    await until('b has both notes', [a, b], async () => (await nb.list()).length === 2 && a.status.pending === 0);

    l.cut();
    await until('a is offline', [a], () => !a.status.online);
    // Offline: a edits the start of the body and the title, adds a note, edits n2 twice.
    await na.update('n1', (n) => ({ ...n, title: 'Shopping list', body: 'fresh milk eggs bread' }));
    await na.set('n3', { title: 'Written offline' });
    await na.update('n2', (n) => ({ ...n, items: [...(n!['items'] as string[]), 'write'] }));
    await na.update('n2', (n) => ({ ...n, pinned: true }));
    expect(a.status.pending).toBeGreaterThanOrEqual(3);
    // Meanwhile b edits the end of the same body, and another field of n2.
    await nb.update('n1', (n) => ({ ...n, body: 'milk eggs bread butter' }));
    await nb.update('n2', (n) => ({ ...n, items: ['call', 'shop'], color: 'red' }));
    await until('b is acknowledged', [b], () => b.status.pending === 0);
    expect(await na.get('n1')).toEqual({ title: 'Shopping list', body: 'fresh milk eggs bread' });

    l.restore();
    await until('both converge with nothing pending', [a, b], async () => a.status.pending === 0 && b.status.pending === 0 && (await converged([na, nb])));
    const merged = await nb.list();
    expect(merged).toEqual([
      { key: 'n1', data: { title: 'Shopping list', body: 'fresh milk eggs bread butter' } },
      { key: 'n2', data: { title: 'Todo', items: ['call', 'write', 'shop'], color: 'red', pinned: true } },
      { key: 'n3', data: { title: 'Written offline' } },
    ]);
    const log = await serverLog(name);
    expect(new Set(log.map((c) => c.ccid)).size).toBe(log.length);
    // a's two offline edits of n2 went as one change (edits not sent yet are coalesced).
    expect(log.filter((c) => c.key === 'n2').length).toBe(3);
  });

  it('a client restarted mid-queue (answer lost, more edits queued) resends its changes exactly once', async () => {
    const name = freshBucket();
    const dir = join(tempDataDir(), 'client-db');
    const db1 = new ClassicLevel<string, string>(dir);
    const lossy = lossyFetch();
    const c1 = sdkClient({ url: node.graphqlUrl, token, store: db1, live: false, fetch: lossy.fetch });
    const n1 = c1.bucket(name);
    await n1.set('k1', { text: 'one' });
    await n1.set('k2', { count: 1 });
    lossy.loseNextAnswer();
    await expect(n1.push()).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    // The server applied both; this client does not know. More edits, on top of the sent ones:
    await n1.update('k1', (v) => ({ ...v, text: 'one two' }));
    await n1.set('k3', { new: true });
    const sent = JSON.parse(lossy.bodies.at(-1)!) as { variables: { changes: Array<{ ccid: string }> } };
    const firstCcids = sent.variables.changes.map((c) => c.ccid);
    expect(firstCcids).toHaveLength(2);
    await c1.close();
    await db1.close();

    const db2 = new ClassicLevel<string, string>(dir);
    const again = lossyFetch();
    const c2 = sdkClient({ url: node.graphqlUrl, token, store: db2, live: false, fetch: again.fetch });
    expect(await c2.clientId).toBe(await c1.clientId);
    const n2 = c2.bucket(name);
    expect(await n2.get('k1')).toEqual({ text: 'one two' });
    expect(n2.pendingChanges).toBe(4);
    await n2.push();
    const resent = JSON.parse(again.bodies[0]!) as { variables: { changes: Array<{ ccid: string }> } };
    // The two sent before the restart, first and under their ccids; then k3 (k1's later edit waits for k1's answer).
    expect(resent.variables.changes.map((c) => c.ccid).slice(0, 2)).toEqual(firstCcids);
    expect(resent.variables.changes).toHaveLength(3);
    expect(n2.pendingChanges).toBe(0);
    await n2.pull();
    expect(await n2.list()).toEqual([
      { key: 'k1', data: { text: 'one two' } },
      { key: 'k2', data: { count: 1 } },
      { key: 'k3', data: { new: true } },
    ]);
    const log = await serverLog(name);
    expect(log.map((c) => [c.key, c.version])).toEqual([
      ['k1', 1],
      ['k2', 1],
      ['k3', 1],
      ['k1', 2],
    ]);
    expect(log.slice(0, 2).map((c) => c.ccid)).toEqual(firstCcids);
    await c2.close();
    await db2.close();
  });
});

describe('credentials', () => {
  it('an expiring token is refreshed at the reconnect the node forces, and the live subscription carries on', async () => {
    const name = freshBucket();
    let current = await app.token(2);
    let issued = 1;
    const tokenFn = async () => {
      if (Date.parse(current.expiresAt) - Date.now() < 1000) {
        current = await app.token();
        issued++;
      }
      return current.token;
    };
    const a = sdkClient({ url: node.graphqlUrl, token: tokenFn });
    const b = sdkClient({ url: node.graphqlUrl, token });
    const na = watch(a, a.bucket(name));
    const nb = watch(b, b.bucket(name));
    await until('a is online', [a], () => a.status.online);
    await nb.set('before', { n: 1 });
    await until('a got the first note', [a], async () => (await na.get('before')) !== undefined);
    // The node closes the socket when the first token expires (4403); a reconnects with a new one.
    await until('a went offline', [a], () => !a.status.online);
    await until('a is back online', [a], () => a.status.online);
    expect(issued).toBeGreaterThanOrEqual(2);
    await nb.set('after', { n: 2 });
    await na.set('from-a', { n: 3 });
    await until('both have all three notes', [a, b], async () => (await na.list()).length === 3 && (await nb.list()).length === 3);
    expect(a.status.pending).toBe(0);
  });
});

describe('resume', () => {
  it('after the node restarts, a client resumes from its cursor: later changes arrive once, nothing is replayed', async () => {
    const dataDir = tempDataDir();
    let n = await startNodeProcess({ dataDir });
    const restartApp = await createTestApp(n);
    const userToken = (await restartApp.token()).token;
    const l = await link(() => n.port);
    const requests = lossyFetch();
    const a = sdkClient({ url: l.url, token: userToken, fetch: requests.fetch });
    const name = freshBucket();
    const na = watch(a, a.bucket(name));
    const remoteEvents: string[] = [];
    na.subscribe((change) => {
      if (change.source === 'remote') remoteEvents.push(change.key);
    });
    let seq = 0;
    const submit = (key: string) =>
      gqlData({ ...n, adminKey: userToken }, SubmitChanges, { bucket: name, clientId: 'other', changes: [{ ccid: `c0ffee${++seq}`, key, op: 'MODIFY', data: { key } }] });
    await submit('r1');
    await submit('r2');
    await until('a has r1 and r2', [a], async () => (await na.list()).length === 2);

    const log = await serverLog(name, userToken, n);
    await n.stop('SIGTERM');
    await until('a is offline', [a], () => !a.status.online);
    const sentBefore = requests.bodies.length;
    n = await startNodeProcess({ dataDir, adminKey: n.adminKey });
    await until('a is online again', [a], () => a.status.online);
    await submit('r3');
    await until('a has r3', [a], async () => (await na.list()).length === 3);
    // Each remote change reached the app once, and the catch-ups after the restart started at
    // the cursor of the last change a had (r2), not at the beginning.
    expect(remoteEvents).toEqual(['r1', 'r2', 'r3']);
    const pages = requests.bodies
      .slice(sentBefore)
      .map((body) => JSON.parse(body) as { query: string; variables: { since: string | null } })
      .filter((body) => body.query.includes('ClientChangesPage'));
    expect(pages.length).toBeGreaterThan(0);
    expect(pages[0]!.variables.since).toBe(log[1]!.cursor);
    await a.close();
    await n.stop();
  });
});

describe('subscriptions ended by the server', () => {
  it('SLOW_CONSUMER: the bucket resubscribes from its cursor; every later change arrives once', async () => {
    const name = freshBucket();
    const transport = new FaultyTransport(
      new GraphQLTransport({
        url: node.graphqlUrl,
        credential: token,
        live: true,
        webSocketImpl: WebSocket,
        backoff: { initialMs: 50, maxMs: 500 },
        random: Math.random,
        requestTimeoutMs: 10_000,
        pingIntervalMs: 10_000,
      }),
    );
    const a = sdkClient({ url: node.graphqlUrl, transport });
    const writer = sdkClient({ url: node.graphqlUrl, token, live: false });
    const na = watch(a, a.bucket(name));
    const w = writer.bucket(name);
    const arrivals: string[] = [];
    na.subscribe((change) => {
      if (change.source === 'remote') arrivals.push(change.key);
    });
    const errors: string[] = [];
    a.on('error', (e) => errors.push(e.error.code));
    for (let i = 0; i < 5; i++) await w.set(`r${i}`, { i });
    await w.push();
    await until('a has the first five', [a], async () => (await na.list()).length === 5);
    await transport.live();
    const log = await serverLog(name);

    expect(transport.endSubscriptions('SLOW_CONSUMER')).toBe(1);
    for (let i = 5; i < 10; i++) await w.set(`r${i}`, { i });
    await w.push();
    await until('a has all ten', [a], async () => (await na.list()).length === 10);
    expect(errors).toContain('SLOW_CONSUMER');
    expect(arrivals).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    // Resumed where it was: the subscription after the fault starts at the fifth change's cursor.
    const resumed = transport.subscriptions.at(-1)!.variables as { since: string | null };
    expect(transport.subscriptions.length).toBeGreaterThanOrEqual(2);
    expect(resumed.since === log[4]!.cursor || (await serverLog(name)).some((c, i) => i >= 4 && c.cursor === resumed.since)).toBe(true);
  });
});

describe('selective and initial sync', () => {
  it('syncs only the keys under a prefix, in pages with progress', async () => {
    const name = freshBucket();
    const writer = sdkClient({ url: node.graphqlUrl, token, live: false });
    const w = writer.bucket(name);
    for (let i = 0; i < 12; i++) await w.set(`p1.${i}`, { i });
    for (let i = 0; i < 5; i++) await w.set(`p2.${i}`, { i });
    await w.push();

    const reader = sdkClient({ url: node.graphqlUrl, token, pageSize: 5 });
    const progress: Array<{ received: number; done: boolean }> = [];
    reader.on('progress', (p) => {
      if (p.bucket === name) progress.push({ received: p.received, done: p.done });
    });
    const r = watch(reader, reader.bucket(name, { keyPrefix: 'p1.' }));
    await until('the reader has the 12 p1 keys', [reader], async () => (await r.list()).length === 12 && progress.some((p) => p.done));
    expect((await r.list()).every((e) => e.key.startsWith('p1.'))).toBe(true);
    expect(progress.slice(0, 3)).toEqual([
      { received: 5, done: false },
      { received: 10, done: false },
      { received: 12, done: true },
    ]);
    await expect(r.set('p2.9', { no: true })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    // Live: a new p1 key arrives, a p2 key does not.
    await w.set('p2.new', { x: 1 });
    await w.set('p1.new', { x: 1 });
    await w.push();
    await until('p1.new arrives', [reader], async () => (await r.get('p1.new')) !== undefined);
    expect(await r.get('p2.new')).toBeUndefined();
  });
});

describe('events', () => {
  it('appends locally, pushes, and takes the server history', async () => {
    const name = freshBucket();
    const a = sdkClient({ url: node.graphqlUrl, token, live: false, eventUser: app.user });
    const b = sdkClient({ url: node.graphqlUrl, token, live: false, eventUser: app.user });
    const ea = a.events(name);
    const eb = b.events(name);
    await ea.append({ item: 'n1', action: 'open', payload: { at: 1 } });
    await eb.append({ item: 'n1', action: 'close', payload: '{"at":2}' });
    expect((await ea.list()).map((e) => [e.action, e.pending])).toEqual([['open', true]]);
    expect(await ea.push()).toEqual({ rejected: [] });
    await eb.push();
    const history = await eb.list();
    expect(history.map((e) => [e.action, e.pending])).toEqual([
      ['open', false],
      ['close', false],
    ]);
    await ea.push();
    expect(await ea.list()).toEqual(history);
    await expect(ea.append({ item: 'n1', action: 'x', payload: 'not json' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});

describe('stores', () => {
  it('keeps the app out of the way: a memory-level store shared with app data', async () => {
    const store = new MemoryLevel<string, string>();
    await store.put('app-key', 'app-value');
    const c: SyncClient = sdkClient({ url: node.graphqlUrl, token, store, live: false });
    await c.bucket(freshBucket()).set('k', { v: 1 });
    expect(await store.get('app-key')).toBe('app-value');
  });
});
