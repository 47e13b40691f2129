/**
 * Black-box: history collection on a real three-node cluster (`--history-horizon-seconds 1
 * --ccid-window-seconds 1 --history-interval-seconds 1`). Many updates of a few entities, then:
 * every node's collection metric shows records removed, every node serves the same latest
 * entities, about one change record per live entity is left, and a fourth node that joins
 * afterwards (a replica of the bucket on the ring of four) converges to the same data from
 * copies that no longer hold the whole history.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Ring } from '../../src/replication/ring.js';
import { rawPost } from '../support/client.js';
import { allChanges, freePorts, replicaStatus, startCluster, until, waitForRing, type ClusterNode, type TestCluster } from '../support/cluster.js';
import { metric, scrape } from '../support/metrics.js';
import { cleanupNodes, tempDataDir, type NodeProcess } from '../support/node-process.js';

afterAll(cleanupNodes);

const HISTORY = ['--history-horizon-seconds', '1', '--ccid-window-seconds', '1', '--history-interval-seconds', '1'];
const SUBMIT = `mutation($bucket: String!, $changes: [ChangeInput!]!) { submitChanges(bucket: $bucket, changes: $changes) { error { code } } }`;
const ENTITIES = `query($bucket: String!) { entities(bucket: $bucket, first: 100, includeDeleted: true) { key version data deleted } }`;

// A bucket that node4 replicates once it joins (the ring is a function of the node ids).
const ringOfFour = new Ring(['node1', 'node2', 'node3', 'node4']);
const bucket = ['hist-a', 'hist-b', 'hist-c', 'hist-d', 'hist-e', 'hist-f'].find((b) => ringOfFour.preferenceList(`default/${b}`, 3).includes('node4'))!;

let seq = 0;
const ccid = () => `${(++seq).toString(16).padStart(8, '0')}${Date.now().toString(16)}`;

async function entities(node: NodeProcess): Promise<unknown> {
  const result = await rawPost(node, { query: ENTITIES, variables: { bucket } });
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return (result.data as unknown as { entities: unknown[] }).entities;
}

const removed = async (node: NodeProcess) => metric(await scrape(node.url, node.adminKey), 'syncgraph_history_collected_total', { kind: 'superseded' });

describe('history collection in a cluster', () => {
  let cluster: TestCluster;

  it('removes superseded records on every replica, serves the same entities, and a node joining later converges', async () => {
    cluster = await startCluster({ size: 3, args: HISTORY });
    const keys = ['a', 'b', 'c', 'd'];
    // 40 rounds of updates of 4 entities, 4 changes per request, through every node in turn.
    for (let round = 0; round < 40; round++) {
      const changes = keys.map((key) => ({ ccid: ccid(), key, op: 'MODIFY', data: { key, round } }));
      const result = await rawPost(cluster.node(round % 3), { query: SUBMIT, variables: { bucket, changes } });
      expect(result.errors).toBeUndefined();
    }
    const gone = await rawPost(cluster.node(0), { query: SUBMIT, variables: { bucket, changes: [{ ccid: ccid(), key: 'd', op: 'DELETE' }] } });
    expect(gone.errors).toBeUndefined();
    // One more write: the deletion is then not the log's head, which always stays.
    await rawPost(cluster.node(1), { query: SUBMIT, variables: { bucket, changes: [{ ccid: ccid(), key: 'e', op: 'MODIFY', data: { key: 'e' } }] } });

    // Every replica collects once every replica holds the records (anti-entropy tells them so).
    for (const node of cluster.running()) await until(async () => (await removed(node)) >= 100, `collection on ${node.url}`, 40_000);
    // About one record per live entity is left, on every node.
    for (const node of cluster.running()) {
      await until(async () => (await allChanges(node, bucket)).length <= 5, `the history of ${node.url} to shrink`, 20_000);
      const left = await allChanges(node, bucket);
      expect(left.map((c) => [c.key, c.version]).sort()).toEqual([
        ['a', 40],
        ['b', 40],
        ['c', 40],
        ['e', 1],
      ]);
    }
    const expected = await entities(cluster.node(0));
    expect(expected).toEqual([
      { key: 'a', version: 40, data: { key: 'a', round: 39 }, deleted: false },
      { key: 'b', version: 40, data: { key: 'b', round: 39 }, deleted: false },
      { key: 'c', version: 40, data: { key: 'c', round: 39 }, deleted: false },
      { key: 'e', version: 1, data: { key: 'e' }, deleted: false },
    ]);
    for (const node of cluster.running()) expect(await entities(node)).toEqual(expected);

    // A fourth node joins: the bucket moves to it from copies whose history was collected.
    const [port] = await freePorts(1);
    const node4: ClusterNode = {
      nodeId: 'node4',
      port: port!,
      dataDir: tempDataDir(),
      args: ['--port', String(port), '--node-id', 'node4', '--peers', cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(','), '--cluster-key', cluster.clusterKey, ...HISTORY],
      process: undefined,
    };
    cluster.nodes.push(node4);
    await cluster.start(3);
    await waitForRing(cluster, 4);
    const keepers = ringOfFour.preferenceList(`default/${bucket}`, 3);
    await until(
      async () => {
        const rows = await replicaStatus(cluster.node(3), bucket);
        return rows.map((r) => r.nodeId).join() === keepers.join() && rows.every((r) => r.up && r.lag === 0) && new Set(rows.map((r) => r.digest)).size === 1;
      },
      'the replicas of the ring of four to agree',
      30_000,
    );
    expect(await entities(cluster.node(3))).toEqual(expected);
    expect((await allChanges(cluster.node(3), bucket)).map((c) => [c.key, c.version]).sort()).toEqual([
      ['a', 40],
      ['b', 40],
      ['c', 40],
      ['e', 1],
    ]);
  });
});
