/**
 * Cluster options from the command line, the environment and a config file (the command line and
 * the environment win over the file), and the refusal of a bad cluster configuration.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { collect, rawPost, wsClient } from '../support/client.js';
import { OnChangesDocument } from '../generated/graphql.js';
import { startCluster, until, waitForRing } from '../support/cluster.js';
import { cleanupNodes, startNodeProcess, tempDataDir } from '../support/node-process.js';

afterAll(cleanupNodes);

const BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));

async function clusterOf(node: Awaited<ReturnType<typeof startNodeProcess>>) {
  const result = await rawPost(node, { query: '{ cluster { nodeId replicas writeQuorum nodes { id address self } } }' });
  expect(result.errors).toBeUndefined();
  return (result.data as unknown as { cluster: { nodeId: string | null; replicas: number; writeQuorum: number; nodes: Array<{ id: string; address: string; self: boolean }> } }).cluster;
}

describe('cluster configuration', () => {
  it('reads a config file, the environment winning over it', async () => {
    const dir = tempDataDir();
    const file = join(dir, 'syncgraph.json');
    writeFileSync(file, JSON.stringify({ nodeId: 'from-file', clusterKey: 'a-cluster-key-from-the-file', advertise: 'node.example:4000', replicas: 2 }));
    const node = await startNodeProcess({ args: ['--config', file], env: { SYNCGRAPH_NODE_ID: 'from-env' } });
    const cluster = await clusterOf(node);
    expect(cluster.nodeId).toBe('from-env');
    expect(cluster.nodes).toEqual([{ id: 'from-env', address: 'node.example:4000', self: true }]);
    // N is at most the cluster's size (one node here), W a majority of it.
    expect(cluster).toMatchObject({ replicas: 1, writeQuorum: 1 });
    await node.stop();
  });

  it('answers as a cluster of one when the node runs alone', async () => {
    const node = await startNodeProcess();
    expect(await clusterOf(node)).toEqual({ nodeId: null, replicas: 1, writeQuorum: 1, nodes: [] });
    await node.stop();
  });

  it('remembers its members: restarted alone with a peer list naming only itself, a node still knows the others', async () => {
    const cluster = await startCluster({ size: 2 });
    await cluster.kill(0, 'SIGTERM');
    await cluster.kill(1, 'SIGTERM');
    const node = cluster.nodes[1]!;
    const peers = node.args.indexOf('--peers');
    node.args = [...node.args.slice(0, peers), '--peers', `127.0.0.1:${node.port}`, ...node.args.slice(peers + 2)];
    const alone = await cluster.start(1);
    const view = await clusterOf(alone);
    expect(view.nodes.map((n) => n.id)).toEqual(['node1', 'node2']);
    // Alive, but not ready for traffic once node1 is known to be down: no peer to reach a
    // write quorum with.
    expect((await fetch(`${alone.url}/health`)).status).toBe(200);
    await until(async () => (await fetch(`${alone.url}/ready`)).status === 503, 'node2 to report itself not ready');
    expect(await (await fetch(`${alone.url}/ready`)).json()).toEqual({ status: 'not ready', reasons: ['no peer reachable'] });
    // It rejoins node1 when node1 comes back (node1 dials it from its own peer list).
    await cluster.start(0);
    await waitForRing(cluster, 2);
    await until(async () => (await fetch(`${alone.url}/ready`)).status === 200, 'node2 to be ready again');
    await cluster.kill(0, 'SIGTERM');
    await cluster.kill(1, 'SIGTERM');
  });

  it('serves a live subscription on a node that holds no replica of the bucket, and answers pings', async () => {
    // N=1: each bucket lives on one node of three; the other two serve it from a followed copy.
    const cluster = await startCluster({ size: 3, replicas: 1 });
    const status = await rawPost(cluster.node(0), { query: '{ replicaStatus(bucket: "live") { nodeId } }' });
    const [owner] = (status.data as unknown as { replicaStatus: Array<{ nodeId: string }> }).replicaStatus;
    const others = cluster.nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.nodeId !== owner!.nodeId);
    const reader = cluster.node(others[0]!.i);
    const writer = cluster.node(others[1]!.i);
    const client = wsClient(reader);
    const feed = collect(client, OnChangesDocument, { bucket: 'live' });
    const ccids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const ccid = `ab${i}`.padEnd(8, '0');
      ccids.push(ccid);
      const result = await rawPost(writer, {
        query: 'mutation($c: [ChangeInput!]!) { submitChanges(bucket: "live", changes: $c) { error { code } } }',
        variables: { c: [{ ccid, key: `k${i}`, op: 'MODIFY', data: { i } }] },
      });
      expect(result.errors).toBeUndefined();
    }
    await feed.until(5);
    expect(feed.items.map((item) => item.changes.ccid)).toEqual(ccids);
    feed.stop();
    await client.dispose();
    // graphql-ws pings are answered, so a client can tell a frozen node.
    const socket = new WebSocket(reader.wsUrl, 'graphql-transport-ws');
    const pong = new Promise<unknown>((resolve) => {
      socket.on('message', (raw: Buffer) => {
        const message = JSON.parse(raw.toString()) as { type: string };
        if (message.type === 'connection_ack') socket.send(JSON.stringify({ type: 'ping' }));
        if (message.type === 'pong') resolve(message);
      });
    });
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${cluster.adminKey}` } })));
    expect(await pong).toEqual({ type: 'pong' });
    socket.close();
    for (let i = 0; i < 3; i++) await cluster.kill(i, 'SIGTERM');
  });

  it('refuses to start with a bad cluster configuration, saying why', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--node-id', 'n1'], /clusterKey \(--cluster-key or SYNCGRAPH_CLUSTER_KEY\): a cluster node needs nodeId and clusterKey/],
      [['--node-id', 'n1', '--cluster-key', 'short'], /at least 16 characters/],
      [['--node-id', 'bad id!', '--cluster-key', 'a-long-enough-cluster-key'], /nodeId \(--node-id\): must be 1 to 64 of/],
      [['--node-id', 'n1', '--cluster-key', 'a-long-enough-cluster-key', '--peers', 'nohostport'], /peers\.0 \(--peers\): must be host:port/],
      [['--node-id', 'n1', '--cluster-key', 'a-long-enough-cluster-key', '--replicas', '2', '--write-quorum', '3'], /writeQuorum \(--write-quorum\): cannot exceed the replicas \(2\)/],
    ];
    for (const [args, why] of cases) {
      const child = spawn(process.execPath, [BIN, 'start', '--port', '0', '--data', tempDataDir(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, args.join(' ')).not.toBe(0);
      expect(stderr).toMatch(why);
    }
  });
});
