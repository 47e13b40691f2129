/**
 * A real three-node cluster (three processes on 127.0.0.1): writes through any node reach every
 * replica; the owner SIGKILLed during a write load loses no acknowledged change and applies no
 * ccid twice; replicas agree again (replicaStatus) once it is back; a subscriber whose node dies
 * resumes on another with its cursor and receives every change exactly once; a node with the
 * wrong cluster key is refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { collect, rawPost, wsClient } from '../support/client.js';
import { allChanges, replicaStatus as replicas, startCluster, until, type ReplicaRow, type TestCluster } from '../support/cluster.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { OnChangesDocument } from '../generated/graphql.js';

afterAll(cleanupNodes);

const SUBMIT = `mutation($bucket: String!, $changes: [ChangeInput!]!) {
  submitChanges(bucket: $bucket, changes: $changes) { ccid duplicate noop error { code } change { id version cursor } }
}`;
let seq = 0;
function ccid(): string {
  return (++seq).toString(16).padStart(12, '0') + Date.now().toString(16);
}

async function submit(node: NodeProcess, bucket: string, change: Record<string, unknown>) {
  return rawPost(node, { query: SUBMIT, variables: { bucket, changes: [change] } });
}



/** Every replica answers, with one digest and no lag, on every running node's view. */
async function converged(cluster: TestCluster, bucket: string): Promise<ReplicaRow[]> {
  let rows: ReplicaRow[] = [];
  await until(async () => {
    for (const node of cluster.running()) {
      rows = await replicas(node, bucket);
      if (rows.length !== 3 || rows.some((r) => !r.up || r.digest === null || r.lag !== 0)) return false;
      if (new Set(rows.map((r) => r.digest)).size !== 1) return false;
    }
    return true;
  }, `replicas of ${bucket} to agree`);
  return rows;
}

describe('a three-node cluster', () => {
  let cluster: TestCluster;

  it('takes writes through any node and every replica holds them', async () => {
    // Debug logs: the request-id test below reads them.
    cluster = await startCluster({ size: 3, args: ['--log-level', 'debug'] });
    for (let i = 0; i < 3; i++) {
      const result = await submit(cluster.node(i), 'notes', { ccid: ccid(), key: `k${i}`, op: 'MODIFY', data: { from: i } });
      expect(result.errors).toBeUndefined();
    }
    const rows = await converged(cluster, 'notes');
    expect(rows.map((r) => r.nodeId).sort()).toEqual(['node1', 'node2', 'node3']);
    expect(rows[0]!.entities).toBe(3);
    // The same entities, versions included, and the same changes, from every node.
    const lists = await Promise.all(cluster.running().map((n) => allChanges(n, 'notes')));
    const latest = (list: Array<{ key: string; version: number }>) => Object.fromEntries(list.map((c) => [c.key, c.version]));
    expect(latest(lists[1]!)).toEqual(latest(lists[0]!));
    expect(latest(lists[2]!)).toEqual(latest(lists[0]!));
    // A retried ccid is a duplicate on any node.
    const change = { ccid: ccid(), key: 'r', op: 'MODIFY', data: { n: 1 } };
    const first = await submit(cluster.node(0), 'notes', change);
    const retry = await submit(cluster.node(2), 'notes', change);
    const one = (r: Awaited<ReturnType<typeof submit>>) => (r.data as unknown as { submitChanges: Array<{ duplicate: boolean; change: { id: string; version: number } }> }).submitChanges[0]!;
    expect(one(retry)).toMatchObject({ duplicate: true, change: one(first).change });
  });

  it('loses no acknowledged change when the owner is SIGKILLed during a write load, and converges when it returns', async () => {
    const bucket = 'load';
    const owner = (await replicas(cluster.node(0), bucket))[0]!.nodeId;
    const ownerIndex = cluster.nodes.findIndex((n) => n.nodeId === owner);
    const acked = new Set<string>();
    let stop = false;
    let killed = false;
    const writer = async (w: number) => {
      for (let k = 0; !stop; k++) {
        const change = { ccid: ccid(), key: `w${w}-${k % 5}`, op: 'MODIFY', data: { w, k } };
        // Retried (same ccid) until acknowledged, on whichever node is up.
        for (let attempt = 0; ; attempt++) {
          const nodes = cluster.running();
          const node = nodes[(w + attempt) % nodes.length]!;
          const result = await submit(node, bucket, change).catch(() => undefined);
          const outcome = (result?.data as { submitChanges?: Array<{ error: unknown }> } | undefined)?.submitChanges?.[0];
          if (outcome !== undefined && outcome.error === null) {
            acked.add(change.ccid);
            break;
          }
          if (attempt > 200) throw new Error(`change not acknowledged: ${JSON.stringify(result)}`);
        }
        if (killed && acked.size > 60 + 120) stop = true;
      }
    };
    // Subscribers on the two nodes that stay up, from the start: each must receive every change
    // its node ends up with, each once.
    const survivors = cluster.nodes.map((n, i) => ({ n, i })).filter(({ i }) => i !== ownerIndex);
    const subscribers = survivors.map(({ i }) => {
      const client = wsClient(cluster.node(i));
      return { i, client, feed: collect(client, OnChangesDocument, { bucket }) };
    });
    const writers = Promise.all([0, 1, 2, 3].map(writer));
    await until(async () => acked.size >= 60, '60 acknowledged changes');
    await cluster.kill(ownerIndex, 'SIGKILL');
    killed = true;
    // The dead replica is still listed, with no digest.
    const during = await replicas(cluster.running()[0]!, bucket);
    expect(during.map((r) => r.nodeId).sort()).toEqual(['node1', 'node2', 'node3']);
    expect(during.find((r) => r.nodeId === owner)).toMatchObject({ up: false, digest: null, lag: null });
    await writers;
    await cluster.start(ownerIndex);
    await converged(cluster, bucket);
    for (const node of cluster.running()) {
      const ccids = (await allChanges(node, bucket)).map((c) => c.ccid);
      expect(new Set(ccids).size).toBe(ccids.length);
      const missing = [...acked].filter((c) => !ccids.includes(c));
      expect(missing).toEqual([]);
    }
    for (const { i, client, feed } of subscribers) {
      const listed = (await allChanges(cluster.node(i), bucket)).map((c) => c.ccid);
      await until(async () => listed.every((c) => feed.items.some((item) => item.changes.ccid === c)), `node${i + 1}'s subscriber to catch up`);
      const ids = feed.items.map((item) => item.changes.id);
      expect(new Set(ids).size, `node${i + 1}'s subscriber got a record twice`).toBe(ids.length);
      expect(feed.errors).toEqual([]);
      feed.stop();
      await client.dispose();
    }
  });

  it('lets a subscriber whose node dies resume on another with its cursor, each change once', async () => {
    const bucket = 'feed';
    const first = cluster.node(1);
    const client = wsClient(first);
    const feed = collect(client, OnChangesDocument, { bucket });
    const written: string[] = [];
    const write = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const change = { ccid: ccid(), key: `f${i % 7}`, op: 'MODIFY', data: { i, n: written.length } };
        for (;;) {
          const result = await submit(cluster.running()[0]!, bucket, change).catch(() => undefined);
          if ((result?.data as { submitChanges?: Array<{ error: unknown }> } | undefined)?.submitChanges?.[0]?.error === null) break;
        }
        written.push(change.ccid);
      }
    };
    await write(20);
    await feed.until(20);
    const cursor = feed.items.at(-1)!.changes.cursor;
    feed.stop();
    await client.dispose();
    await cluster.kill(1, 'SIGKILL');
    await write(20);
    // Resume on another node from the last cursor received.
    const second = cluster.running()[1]!;
    const client2 = wsClient(second);
    const resumed = collect(client2, OnChangesDocument, { bucket, since: cursor });
    await write(10);
    await resumed.until(30);
    const received = [...feed.items.slice(0, 20), ...resumed.items].map((item) => item.changes.ccid);
    expect(received).toEqual(written);
    resumed.stop();
    await client2.dispose();
    await cluster.start(1);
  });

  it('knows apps, users and tokens on every node, and a revocation on one ends access on all', async () => {
    const created = await rawPost(cluster.node(0), { query: 'mutation { createApp(id: "shop") { defaultKey adminKey } }' });
    expect(created.errors).toBeUndefined();
    const { defaultKey, adminKey: appAdmin } = (created.data as unknown as { createApp: { defaultKey: string; adminKey: string } }).createApp;
    // Another node knows the app's keys: a user signs up there, and signs in on a third.
    let signedUp: Awaited<ReturnType<typeof rawPost>> | undefined;
    await until(async () => {
      signedUp = await rawPost(cluster.node(1), { query: 'mutation { createUser(username: "ann", password: "correct horse battery") { username } }' }, { token: defaultKey });
      return signedUp.errors === undefined;
    }, 'the app to be known on node2');
    let token = '';
    await until(async () => {
      const result = await rawPost(cluster.node(2), { query: 'mutation { authorize(username: "ann", password: "correct horse battery") { token } }' }, { token: defaultKey });
      token = (result.data as unknown as { authorize?: { token: string } } | null)?.authorize?.token ?? '';
      return token !== '';
    }, 'ann to be known on node3');
    // The token works on the first node: write there, read from the second.
    await until(async () => {
      const result = await rawPost(cluster.node(0), { query: SUBMIT, variables: { bucket: 'todo', changes: [{ ccid: ccid(), key: 'a', op: 'MODIFY', data: { t: 1 } }] } }, { token });
      return result.errors === undefined;
    }, 'the token to be known on node1');
    const read = await rawPost(cluster.node(1), { query: '{ entity(bucket: "todo", key: "a") { data } }' }, { token });
    expect(read.errors).toBeUndefined();
    expect((read.data as unknown as { entity: { data: unknown } }).entity.data).toEqual({ t: 1 });
    // Revoking the default key on one node refuses it on the others.
    const keys = await rawPost(cluster.node(1), { query: '{ apiKeys { id level } }' }, { token: appAdmin });
    const defaultId = (keys.data as unknown as { apiKeys: Array<{ id: string; level: string }> }).apiKeys.find((k) => k.level === 'DEFAULT')!.id;
    const revoked = await rawPost(cluster.node(1), { query: 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', variables: { id: defaultId } }, { token: appAdmin });
    expect(revoked.errors).toBeUndefined();
    await until(async () => (await rawPost(cluster.node(2), { query: '{ viewer { app } }' }, { token: defaultKey })).status === 401, 'the revoked key to be refused on node3');
  });

  it("names a forwarded write by the client's request id in the coordinator's log as well", async () => {
    const rows = await replicas(cluster.node(0), 'traced');
    const coordinator = cluster.nodes.findIndex((n) => n.nodeId === rows[0]!.nodeId);
    const entry = (coordinator + 1) % 3;
    const response = await fetch(cluster.node(entry).graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${cluster.adminKey}`, 'x-request-id': 'write-42' },
      body: JSON.stringify({ query: SUBMIT, variables: { bucket: 'traced', changes: [{ ccid: ccid(), key: 'k', op: 'MODIFY', data: { n: 1 } }] } }),
    });
    expect(response.headers.get('x-request-id')).toBe('write-42');
    expect(((await response.json()) as { errors?: unknown }).errors).toBeUndefined();
    const forwarded = await cluster.node(entry).waitForOutput((line) => line.includes('"reqId":"write-42"') && line.includes('forwarding a write'));
    expect(JSON.parse(forwarded)).toMatchObject({ to: rows[0]!.nodeId, changes: 1 });
    const coordinated = await cluster.node(coordinator).waitForOutput((line) => line.includes('"reqId":"write-42"'));
    expect(JSON.parse(coordinated)).toMatchObject({ msg: 'coordinating a write forwarded by a peer', from: cluster.nodes[entry]!.nodeId });
  });

  it('refuses a node with the wrong cluster key, and logs it', async () => {
    const port = cluster.nodes[0]!.port;
    const intruder = await startNodeProcess({
      adminKey: cluster.adminKey,
      args: ['--node-id', 'intruder', '--peers', `127.0.0.1:${port}`, '--cluster-key', 'not-the-cluster-key-at-all'],
    });
    await cluster.node(0).waitForOutput((line) => line.includes('wrong cluster key'));
    const result = await rawPost(cluster.node(0), { query: '{ cluster { nodes { id } } }' });
    expect((result.data as unknown as { cluster: { nodes: Array<{ id: string }> } }).cluster.nodes.map((n) => n.id)).not.toContain('intruder');
    await intruder.stop();
    // Neither key is written to any log.
    for (const output of [...cluster.running().map((n) => n.output), intruder.output]) {
      expect(output.some((line) => line.includes(cluster.clusterKey) || line.includes('not-the-cluster-key-at-all'))).toBe(false);
    }
  });
});
