/**
 * A real three-node cluster with two replicas per bucket, so that each node holds copies of only
 * some buckets: what spans buckets must ask every member. An app's bucket list and its export,
 * asked of a node, include the buckets that node holds no copy of, and so do the changes of a
 * bucket across its users; deleting a user removes every
 * copy of their private buckets, on every node, and later anti-entropy rounds do not bring them
 * back; with a member down, both refuse (UNAVAILABLE) rather than answer for part of the app.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawPost } from '../support/client.js';
import { replicaStatus, startCluster, until, type TestCluster } from '../support/cluster.js';
import { metric, scrape } from '../support/metrics.js';
import { cleanupNodes, type NodeProcess } from '../support/node-process.js';

const APP = 'crm';
const APP_BUCKETS = ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'];
let cluster: TestCluster;
let seq = 0;
const ccid = () => (++seq).toString(16).padStart(10, '0') + 'c1';

/** As the app's admin, acting as `user` on their private instance, or as the app itself. */
const as = (node: NodeProcess, user?: string) => ({ token: node.adminKey, headers: { 'x-syncgraph-app': APP, ...(user ? { 'x-syncgraph-user': user } : {}) } });

async function write(node: NodeProcess, bucket: string, keys: string[], user?: string): Promise<void> {
  const changes = keys.map((key) => ({ ccid: ccid(), key, op: 'MODIFY', data: { key, user: user ?? null } }));
  const result = await rawPost(node, { query: 'mutation($b: String!, $c: [ChangeInput!]!) { submitChanges(bucket: $b, changes: $c) { error { code } } }', variables: { b: bucket, c: changes } }, as(node, user));
  expect(result.errors).toBeUndefined();
  const outcomes = (result.data as unknown as { submitChanges: Array<{ error: unknown }> }).submitChanges;
  expect(outcomes.every((o) => o.error === null)).toBe(true);
}

async function buckets(node: NodeProcess, user?: string): Promise<Awaited<ReturnType<typeof rawPost>>> {
  return rawPost(node, { query: 'query($u: String) { buckets(user: $u) }', variables: { u: user ?? null } }, as(node));
}

/** The entities each replica of `user`'s `bucket` holds, as `node` sees them. */
async function copies(node: NodeProcess, bucket: string, user: string): Promise<Array<number | null>> {
  const result = await rawPost(node, { query: 'query($b: String!, $u: String) { replicaStatus(bucket: $b, user: $u) { entities } }', variables: { b: bucket, u: user } }, as(node));
  expect(result.errors).toBeUndefined();
  return (result.data as unknown as { replicaStatus: Array<{ entities: number | null }> }).replicaStatus.map((r) => r.entities);
}

const rounds = async (node: NodeProcess) => metric(await scrape(node.url, node.adminKey), 'syncgraph_anti_entropy_rounds_total');

beforeAll(async () => {
  cluster = await startCluster({ size: 3, replicas: 2 });
  const node = cluster.node(0);
  expect((await rawPost(node, { query: `mutation { createApp(id: "${APP}") { defaultKey } }` })).errors).toBeUndefined();
  for (const i of [0, 1, 2]) await until(async () => (await buckets(cluster.node(i))).errors === undefined, `node${i + 1} to know the app`);
  for (const user of ['ann', 'bob']) {
    const created = await rawPost(node, { query: `mutation { createUser(username: "${user}", password: "correct horse battery") { username } }` }, as(node));
    expect(created.errors).toBeUndefined();
  }
  for (const bucket of APP_BUCKETS) await write(node, bucket, [`${bucket}-a`, `${bucket}-b`]);
  await write(node, 'notes', ['n1', 'n2', 'n3'], 'ann');
  await write(node, 'todo', ['t1'], 'ann');
  await write(node, 'notes', ['n1'], 'bob');
}, 60_000);
afterAll(cleanupNodes);

// In this order: an export leaves the node it ran on with read copies of every partition.
describe('a cluster, across buckets', () => {
  it("lists a bucket's changes across users on every node, also from the instances it holds no copy of", async () => {
    for (const node of cluster.running()) {
      const result = await rawPost(node, { query: '{ changesAcrossUsers(bucket: "notes", limit: 100) { changes { user change { key } } hasMore } }' }, as(node));
      expect(result.errors).toBeUndefined();
      const page = (result.data as unknown as { changesAcrossUsers: { changes: Array<{ user: string; change: { key: string } }>; hasMore: boolean } }).changesAcrossUsers;
      expect(page.changes.map((c) => `${c.user}/${c.change.key}`).sort()).toEqual(['ann/n1', 'ann/n2', 'ann/n3', 'bob/n1']);
      expect(page.hasMore).toBe(false);
    }
  });

  it("lists and exports every bucket of an app from any node, also those it holds no copy of", async () => {
    // With two replicas of three, each bucket is missing on one node: find one such pair.
    let reader: NodeProcess | undefined;
    let missing = '';
    for (const bucket of APP_BUCKETS) {
      const holders = (await replicaStatus(cluster.node(0), bucket)).map((r) => r.nodeId);
      const index = cluster.nodes.findIndex((n) => !holders.includes(n.nodeId));
      if (index >= 0) {
        reader = cluster.node(index);
        missing = bucket;
        break;
      }
    }
    expect(reader, 'a node without a copy of some bucket').toBeDefined();
    const listed = await buckets(reader!);
    expect(listed.errors).toBeUndefined();
    expect((listed.data as unknown as { buckets: string[] }).buckets).toEqual([...APP_BUCKETS, 'notes', 'todo']);
    const own = await buckets(reader!, 'ann');
    expect((own.data as unknown as { buckets: string[] }).buckets).toEqual(['notes', 'todo']);

    const response = await fetch(`${reader!.url}/admin/export?app=${APP}`, { headers: { authorization: `Bearer ${reader!.adminKey}` } });
    expect(response.status).toBe(200);
    const lines = (await response.text()).trim().split('\n').map((line) => JSON.parse(line) as { type?: string; bucket?: string; owner?: string | null; key?: string; end?: boolean; entities?: number });
    const entities = lines.filter((l) => l.type === 'entity').map((l) => `${l.bucket}/${l.owner ?? ''}/${l.key}`).sort();
    const expected = [
      ...APP_BUCKETS.flatMap((b) => [`${b}//${b}-a`, `${b}//${b}-b`]),
      'notes/ann/n1', 'notes/ann/n2', 'notes/ann/n3', 'notes/bob/n1', 'todo/ann/t1',
    ].sort();
    expect(entities).toEqual(expected);
    expect(entities.some((e) => e.startsWith(`${missing}/`))).toBe(true);
    expect(lines.at(-1)).toMatchObject({ end: true, entities: expected.length });
  });

  it("deletes every copy of a user's buckets on every node, for good", async () => {
    for (const bucket of ['notes', 'todo']) expect(await copies(cluster.node(0), bucket, 'ann')).not.toContain(0);
    const deleted = await rawPost(cluster.node(2), { query: 'mutation { deleteUser(username: "ann") }' }, as(cluster.node(2)));
    expect(deleted.errors).toBeUndefined();
    const gone = async () => {
      for (const node of cluster.running()) {
        for (const bucket of ['notes', 'todo']) expect(await copies(node, bucket, 'ann')).toEqual([0, 0]);
        expect((await buckets(node, 'ann')).data).toEqual({ buckets: [] });
      }
    };
    await gone();
    // Two more anti-entropy rounds on every node: nothing comes back from a peer.
    const before = await Promise.all(cluster.running().map(rounds));
    await until(async () => (await Promise.all(cluster.running().map(rounds))).every((n, i) => n >= before[i]! + 2), 'two anti-entropy rounds on every node');
    await gone();
    // Bob's instance of the same bucket is untouched.
    expect(await copies(cluster.node(1), 'notes', 'bob')).toEqual([1, 1]);
  });

  it('refuses to list or delete across buckets while a member is down', async () => {
    await cluster.kill(2);
    await until(async () => (await buckets(cluster.node(0))).errors !== undefined, 'node1 to notice node3 is down');
    const listed = await buckets(cluster.node(0));
    expect(listed.errors?.[0]?.extensions?.['code']).toBe('UNAVAILABLE');
    const deleted = await rawPost(cluster.node(0), { query: 'mutation { deleteUser(username: "bob") }' }, as(cluster.node(0)));
    expect(deleted.errors?.[0]?.extensions?.['code']).toBe('UNAVAILABLE');
    // Nothing of bob's was lost to the refused deletion.
    expect((await copies(cluster.node(0), 'notes', 'bob')).filter((n) => n === 1).length).toBeGreaterThanOrEqual(1);
  });
});
