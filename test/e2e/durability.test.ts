/**
 * Black-box: durability and lifecycle of a real node process. An acknowledged change survives
 * SIGKILL; SIGTERM finishes in-flight writes and exits 0; the admin key is generated once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collect, gql, gqlData, wsClient, deferred } from '../support/client.js';
import { cleanupNodes, startNodeProcess } from '../support/node-process.js';
import { ChangesPage, GetEntity, ListEntities, SubmitChanges, ChangesSubscription } from '../support/operations.js';
import WebSocket from 'ws';

afterAll(cleanupNodes);

const hex = (prefix: number, i: number) => prefix.toString(16) + i.toString(16).padStart(10, '0');

describe('durability', () => {
  it.each([
    { reads: 'synchronous point reads', args: [] },
    { reads: '--async-reads', args: ['--async-reads'] },
  ])('a node killed with SIGKILL right after acknowledging batches has them all after restart ($reads)', async ({ args }) => {
    const node = await startNodeProcess({ args });
    const bucket = 'durable';
    // Eight concurrent requests of 100 changes each (group-committed together).
    const requests = Array.from({ length: 8 }, (_, r) =>
      gqlData(node, SubmitChanges, {
        bucket,
        changes: Array.from({ length: 100 }, (_, i) => ({
          ccid: hex(r + 1, i),
          key: `r${r}-k${i}`,
          op: 'MODIFY' as const,
          data: { r, i, text: `request ${r} change ${i}` },
        })),
      }),
    );
    const acknowledged = (await Promise.all(requests)).flatMap((d) => d.submitChanges);
    node.child.kill('SIGKILL');
    await node.exited;
    expect(acknowledged.every((r) => r.error === null && r.change !== null)).toBe(true);

    const restarted = await startNodeProcess({ dataDir: node.dataDir, adminKey: node.adminKey, args });
    const entities = await gqlData(restarted, ListEntities, { bucket, first: 1000 });
    expect(entities.entities).toHaveLength(800);
    const page = await gqlData(restarted, ChangesPage, { bucket, limit: 1000 });
    expect(page.changes.changes.map((c) => c.cursor).sort()).toEqual(acknowledged.map((r) => r.change!.cursor).sort());
    // And their ccids: a retry after the crash is a duplicate, not a second change.
    const retry = await gqlData(restarted, SubmitChanges, {
      bucket,
      changes: [{ ccid: hex(3, 7), key: 'r2-k7', op: 'MODIFY', data: { r: 99 } }],
    });
    expect(retry.submitChanges[0]!.duplicate).toBe(true);
    await restarted.stop();
  });

  it('SIGTERM finishes in-flight writes, closes LevelDB and exits 0', async () => {
    const node = await startNodeProcess();
    const client = wsClient(node);
    const sub = collect(client, ChangesSubscription, { bucket: 'term', since: null });
    const first = await gql(node, SubmitChanges, { bucket: 'term', changes: [{ ccid: 'aa01', key: 'k0', op: 'MODIFY', data: { n: 0 } }] });
    expect(first.data?.submitChanges[0]?.error).toBeNull();
    await sub.until(1);
    // Requests racing the signal: each either completes (and then must be durable) or is refused.
    const racing = Array.from({ length: 20 }, (_, i) =>
      gql(node, SubmitChanges, { bucket: 'term', changes: [{ ccid: hex(9, i), key: `k${i + 1}`, op: 'MODIFY', data: { n: i } }] }).catch(
        () => null,
      ),
    );
    const code = node.stop('SIGTERM');
    const results = await Promise.all(racing);
    expect(await code).toBe(0);
    await sub.done.catch(() => undefined);
    await client.dispose();
    const done = results.filter((r) => r?.data?.submitChanges[0]?.change).map((r) => r!.data!.submitChanges[0]!.change!.key!);
    const restarted = await startNodeProcess({ dataDir: node.dataDir, adminKey: node.adminKey });
    for (const key of ['k0', ...done]) {
      const entity = await gqlData(restarted, GetEntity, { bucket: 'term', key });
      expect(entity.entity?.version).toBe(1);
    }
    await restarted.stop();
  });
});

describe('admin key and health', () => {
  it('generates an admin key on first start, prints it once, and keeps it', async () => {
    const node = await startNodeProcess({ adminKey: null });
    const key = readFileSync(join(node.dataDir, 'admin-key'), 'utf8').trim();
    expect(key.length).toBeGreaterThanOrEqual(40);
    await node.waitForOutput((line) => line.includes(key));
    const ok = await gql({ graphqlUrl: node.graphqlUrl, adminKey: key }, ListEntities, { bucket: 'x' });
    expect(ok.errors).toBeUndefined();
    expect(await node.stop()).toBe(0);
    const again = await startNodeProcess({ dataDir: node.dataDir, adminKey: null });
    const stillOk = await gql({ graphqlUrl: again.graphqlUrl, adminKey: key }, ListEntities, { bucket: 'x' });
    expect(stillOk.errors).toBeUndefined();
    // The banner would have been written before the node served anything: it was not.
    expect(again.output.some((line) => line.includes(key))).toBe(false);
    await again.stop();
  });

  it('takes the admin key from SYNCGRAPH_ADMIN_KEY', async () => {
    const node = await startNodeProcess({ adminKey: null, env: { SYNCGRAPH_ADMIN_KEY: 'from-the-environment-1234' } });
    const ok = await gql({ graphqlUrl: node.graphqlUrl, adminKey: 'from-the-environment-1234' }, ListEntities, { bucket: 'x' });
    expect(ok.errors).toBeUndefined();
    await node.stop();
  });

  it('rejects missing or wrong credentials over HTTP and over graphql-ws', async () => {
    const node = await startNodeProcess();
    for (const token of [null, 'wrong-key']) {
      const result = await gql(node, ListEntities, { bucket: 'x' }, { token });
      expect(result.status).toBe(401);
      expect(result.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws');
    const closed = deferred<number>();
    socket.on('close', (code) => closed.resolve(code));
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer wrong' } })));
    expect(await closed.promise).toBe(4403);
    const health = await fetch(`${node.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    await node.stop();
  });
});
