/**
 * Black-box: history collection on a real node (`--history-horizon-seconds 1`): superseded
 * change records and tombstones go, a cursor from before them expires (INVALID_CURSOR), and a
 * reader from the start still gets every live entity at its latest version. The SDK client whose
 * cursor expired while it was away starts over and ends with the node's state.
 */
import { MemoryLevel } from 'memory-level';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { collect, gql, gqlData, wsClient } from '../support/client.js';
import { metric, scrape } from '../support/metrics.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { ChangesPage, ChangesSubscription, SubmitChanges } from '../support/operations.js';

let node: NodeProcess;
let seq = 0;
const ccid = () => (++seq).toString(16).padStart(10, '0') + 'aa';

beforeAll(async () => {
  node = await startNodeProcess({ args: ['--history-horizon-seconds', '1', '--ccid-window-seconds', '1', '--history-interval-seconds', '1'] });
});
afterAll(cleanupNodes);

async function write(bucket: string, key: string, op: 'MODIFY' | 'DELETE', data?: Record<string, unknown>) {
  const [result] = (await gqlData(node, SubmitChanges, { bucket, changes: [{ ccid: ccid(), key, op, ...(data ? { data } : {}) }] })).submitChanges;
  expect(result!.error).toBeNull();
  return result!;
}

async function allChanges(bucket: string) {
  const page = await gqlData(node, ChangesPage, { bucket, limit: 1000 });
  return page.changes.changes.map((c) => [c.key, c.op, c.version]);
}

describe('history collection', () => {
  it('leaves the latest record of each live entity; old cursors expire; an SDK client away meanwhile converges', async () => {
    const bucket = 'todo';
    const store = new MemoryLevel<string, unknown>();
    const client = createClient({ url: node.graphqlUrl, apiKey: node.adminKey, store, webSocketImpl: WebSocket });
    const todo = client.bucket(bucket);
    for (let round = 1; round <= 3; round++) for (const key of ['a', 'b', 'c']) await write(bucket, key, 'MODIFY', { round });
    await todo.sync();
    expect((await todo.list()).map((e) => e.key)).toEqual(['a', 'b', 'c']);
    const oldCursor = (await gqlData(node, ChangesPage, { bucket, limit: 2 })).changes.cursor;
    await client.close();

    // While the client is away: c is deleted, a changes again; then the history ages.
    await write(bucket, 'c', 'DELETE');
    await write(bucket, 'a', 'MODIFY', { round: 4 });
    const collected = async () => metric(await scrape(node.url, node.adminKey), 'syncgraph_history_collected_total', { kind: 'tombstones' });
    // Wait until the rounds ran past the horizon (each records what it removed).
    await expect.poll(collected, { timeout: 15_000, interval: 250 }).toBeGreaterThanOrEqual(1);
    // Then one more entry is the head (kept), so c's tombstone was collected, not kept as the head.
    expect(await allChanges(bucket)).toEqual([
      ['b', 'MODIFY', 3],
      ['a', 'MODIFY', 4],
    ]);
    const expired = await gql(node, ChangesPage, { bucket, since: oldCursor });
    expect(expired.errors?.[0]?.extensions?.code).toBe('INVALID_CURSOR');

    // The client comes back with its expired cursor: it starts over and drops what is gone.
    const back = createClient({ url: node.graphqlUrl, apiKey: node.adminKey, store, webSocketImpl: WebSocket });
    const again = back.bucket(bucket);
    await expect.poll(async () => (await again.list()).map((e) => [e.key, e.data]), { timeout: 15_000 }).toEqual([
      ['a', { round: 4 }],
      ['b', { round: 3 }],
    ]);
    await back.close();
  });
});

describe("a node's history rounds", () => {
  it('close the buckets they opened, and those idle for an interval: a node holds in memory the buckets in use', async () => {
    const first = await startNodeProcess();
    for (const bucket of ['p1', 'p2', 'p3']) {
      for (const n of [1, 2]) {
        const [result] = (await gqlData(first, SubmitChanges, { bucket, changes: [{ ccid: ccid(), key: 'k', op: 'MODIFY', data: { n } }] })).submitChanges;
        expect(result!.error).toBeNull();
      }
    }
    expect(await first.stop()).toBe(0);
    // Restarted with collection on: every round opens the three buckets to look at their history.
    const again = await startNodeProcess({
      dataDir: first.dataDir,
      adminKey: first.adminKey,
      args: ['--history-horizon-seconds', '1', '--ccid-window-seconds', '1', '--history-interval-seconds', '1'],
    });
    const metrics = async () => scrape(again.url, again.adminKey);
    // Each bucket's first record, superseded by its second (the head, kept).
    await expect.poll(async () => metric(await metrics(), 'syncgraph_history_collected_total', { kind: 'superseded' }), { timeout: 15_000, interval: 250 }).toBe(3);
    expect(metric(await metrics(), 'syncgraph_partitions_open')).toBe(0);
    const page = await gqlData(again, ChangesPage, { bucket: 'p2', limit: 10 });
    expect(page.changes.changes.map((c) => c.version)).toEqual([2]);
    expect(metric(await metrics(), 'syncgraph_partitions_open')).toBe(1);

    // A bucket with a live subscriber stays open; one no one uses for a whole interval is closed.
    const client = wsClient(again);
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'p1', since: null });
      await sub.until(1);
      expect(metric(await metrics(), 'syncgraph_partitions_open')).toBe(2);
      await expect.poll(async () => metric(await metrics(), 'syncgraph_partitions_open'), { timeout: 15_000, interval: 250 }).toBe(1);
      // The one left open is p1's, still live: a write reaches its subscriber.
      const [written] = (await gqlData(again, SubmitChanges, { bucket: 'p1', changes: [{ ccid: ccid(), key: 'k', op: 'MODIFY', data: { n: 3 } }] })).submitChanges;
      expect(written!.change?.version).toBe(3);
      expect((await sub.until(2)).map((item) => item.changes.version)).toEqual([2, 3]);
      expect(sub.errors).toEqual([]);
    } finally {
      await client.dispose();
    }
    // And p2, closed, opens again as it was.
    expect((await gqlData(again, ChangesPage, { bucket: 'p2', limit: 10 })).changes.changes.map((c) => c.version)).toEqual([2]);
  });
});
