/**
 * Black-box: `syncgraph backup` from a running node and `syncgraph restore` into a new data
 * directory. A restored node answers every read exactly as the node did when it was backed up,
 * byte for byte; a backup taken under a write load is one consistent moment; a damaged, cut-short
 * or misplaced restore is refused and leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlData } from '../support/client.js';
import { cleanupNodes, startNodeProcess, tempDataDir, type NodeProcess } from '../support/node-process.js';
import { CreateApp, CreateUser, PushEvents, SubmitChanges } from '../support/operations.js';
import type { ChangeInput } from '../generated/graphql.js';

const BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));
let node: NodeProcess;
let seq = 0;
const ccid = () => (++seq).toString(16).padStart(10, '0') + Math.floor(Math.random() * 2 ** 32).toString(16);

/** Runs the CLI without blocking this process (the node's load keeps going meanwhile). */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, SYNCGRAPH_ADMIN_KEY: '' } }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

async function backup(from: NodeProcess): Promise<string> {
  const file = join(tempDataDir(), 'backup.ndjson.gz');
  const result = await cli(['backup', '--url', from.url, '--admin-key', from.adminKey, '--out', file]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(JSON.parse(result.stdout)).toMatchObject({ file, entries: expect.any(Number) });
  return file;
}

async function restored(file: string, adminKey: string): Promise<NodeProcess> {
  const dataDir = tempDataDir();
  const result = await cli(['restore', '--in', file, '--data', dataDir]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return startNodeProcess({ dataDir, adminKey });
}

async function submit(target: NodeProcess, bucket: string, changes: ChangeInput[], token = target.adminKey) {
  const result = await gql(target, SubmitChanges, { bucket, changes }, { token });
  if (result.errors !== undefined) throw new Error(JSON.stringify(result.errors));
  return result.data!.submitChanges;
}

/** The raw text of a response: compared byte for byte between nodes. */
async function raw(target: NodeProcess, query: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(target.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${target.adminKey}`, ...headers },
    body: JSON.stringify({ query }),
  });
  expect(response.status).toBe(200);
  return response.text();
}

function event(action: string) {
  const uuid = uuidv7();
  return { uuid, timestamp: BigInt('0x' + uuid.slice(0, 8) + uuid.slice(9, 13)).toString(), user: 'ops', item: 'job.1', action, payload: '{"n":1}' };
}

let shopApp: string;

beforeAll(async () => {
  node = await startNodeProcess();
  // Versions, merges, deletes and a revived key; events; an app with a user and a private bucket.
  for (let round = 0; round < 3; round++) {
    await submit(
      node,
      'notes',
      Array.from({ length: 10 }, (_, i) => ({ ccid: ccid(), key: `k${i}`, op: 'MODIFY' as const, data: { title: `note ${i}`, round, text: 'x'.repeat(i * 10) } })),
    );
  }
  await submit(node, 'notes', [{ ccid: ccid(), key: 'k9', op: 'DELETE' }]);
  await submit(node, 'notes', [{ ccid: ccid(), key: 'k0', op: 'MODIFY', baseVersion: 1, diff: { extra: { o: '+', v: true } } }]);
  await gqlData(node, PushEvents, { bucket: 'log', events: [event('start'), event('step'), event('done')] });
  shopApp = `shop${Date.now().toString(36)}`;
  const app = (await gqlData(node, CreateApp, { id: shopApp })).createApp;
  expect((await gql(node, CreateUser, { username: 'dana', password: 'a long enough password' }, { token: app.adminKey })).errors).toBeUndefined();
  await submit(node, 'cart', [{ ccid: ccid(), key: 'apples', op: 'MODIFY', data: { n: 3 } }], app.adminKey);
});
afterAll(cleanupNodes);

describe('backup and restore', () => {
  it('restores a node that answers every read exactly as the original, byte for byte', async () => {
    const file = await backup(node);
    const copy = await restored(file, node.adminKey);
    const reads: Array<[string, Record<string, string>?]> = [
      ['{ entities(bucket: "notes", first: 100, includeDeleted: true) { key version data deleted } }'],
      ['{ changes(bucket: "notes", limit: 100) { changes { id ccid clientId key op sourceVersion version diff data cursor } cursor hasMore } }'],
      ['{ versions(bucket: "notes", key: "k0") { version data } entity(bucket: "notes", key: "k0", version: 1) { data } }'],
      ['{ bucket(name: "notes") { changesCursor eventsCursor config { conflictMode versionMax version10Max } } }'],
      ['{ events(bucket: "log", limit: 100) { events { uuid timestamp user item action payload cursor } cursor hasMore } }'],
      ['{ apps { id } }'],
      ['{ entities(bucket: "cart") { key version data } user(username: "dana") { username } }', { 'x-syncgraph-app': shopApp }],
    ];
    for (const [query, headers] of reads) {
      const original = await raw(node, query, headers);
      expect(original).not.toContain('"errors"');
      expect(await raw(copy, query, headers)).toBe(original);
    }
    // The restored node carries on: the next change of an entity gets the next version.
    const [next] = await submit(copy, 'notes', [{ ccid: ccid(), key: 'k1', op: 'MODIFY', baseVersion: 3, data: { title: 'after restore' } }]);
    expect(next!.change!.version).toBe(4);
    await copy.stop();
  });

  it('takes one consistent moment while writes go on', async () => {
    // Every version kept: the counter's version in the copy is looked up on the original below,
    // however many versions the writer gets in while the backup runs.
    expect(await raw(node, 'mutation { configureBucket(name: "live", config: { versionMax: 10000 }) { name } }')).not.toContain('"errors"');
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing || written < 20) {
        await submit(node, 'live', [
          { ccid: ccid(), key: `w${written}`, op: 'MODIFY', data: { i: written } },
          { ccid: ccid(), key: 'counter', op: 'MODIFY', data: { n: written } },
        ]);
        written++;
      }
    })();
    while (written < 10) await new Promise((resolve) => setTimeout(resolve, 10));
    const file = await backup(node);
    const atBackup = written;
    writing = false;
    await writer;
    // More was written after the backup than before it ended.
    while (written < atBackup + 10) {
      await submit(node, 'live', [{ ccid: ccid(), key: `w${written}`, op: 'MODIFY', data: { i: written } }]);
      written++;
    }
    const copy = await restored(file, node.adminKey);
    const changes = async (target: NodeProcess) => {
      const text = await raw(target, '{ changes(bucket: "live", limit: 1000) { changes { id key version data cursor } hasMore } }');
      return (JSON.parse(text) as { data: { changes: { changes: unknown[]; hasMore: boolean } } }).data.changes;
    };
    const [all, kept] = [await changes(node), await changes(copy)];
    expect(all.hasMore).toBe(false);
    // The copy's log is a strict prefix of the original's: every change it has, as the original has it.
    expect(kept.changes.length).toBeGreaterThanOrEqual(20);
    expect(kept.changes.length).toBeLessThan(all.changes.length);
    expect(kept.changes).toEqual(all.changes.slice(0, kept.changes.length));
    // Its entities are those of that same moment: the counter as it was at the copy's version.
    const counter = JSON.parse(await raw(copy, '{ entity(bucket: "live", key: "counter") { version data } }')) as { data: { entity: { version: number } } };
    const then = await raw(node, `{ entity(bucket: "live", key: "counter", version: ${counter.data.entity.version}) { version data } }`);
    expect(JSON.parse(then)).toEqual(counter);
    await copy.stop();
  });

  it('refuses a cut-short or altered file and an occupied data directory, leaving nothing behind', async () => {
    const file = await backup(node);
    const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n');
    const variants: Array<[string, string[], RegExp]> = [
      ['cut', lines.slice(0, -2), /incomplete/],
      ['altered', lines.map((line, i) => (i === 2 ? line.replace(/.$/, ' ]') : line)), /damaged/],
      ['not a backup', ['{"hello":"world"}', ''], /not a syncgraph backup/],
    ];
    for (const [name, content, message] of variants) {
      const bad = join(tempDataDir(), `${name}.ndjson.gz`);
      writeFileSync(bad, gzipSync(content.join('\n')));
      const dataDir = tempDataDir();
      const result = await cli(['restore', '--in', bad, '--data', dataDir]);
      expect(result.code, name).toBe(1);
      expect(result.stderr, name).toMatch(message);
      expect(existsSync(join(dataDir, 'db')), name).toBe(false);
    }
    const occupied = await cli(['restore', '--in', file, '--data', node.dataDir]);
    expect(occupied.code).toBe(1);
    expect(occupied.stderr).toMatch(/already holds a node's data/);
  });

  it('is for the node admin key only', async () => {
    const app = (await gqlData(node, CreateApp, { id: `other${Date.now().toString(36)}` })).createApp;
    for (const key of [undefined, app.adminKey, 'wrong-key-0123456789']) {
      const response = await fetch(`${node.url}/admin/backup`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
      expect(response.status).toBe(401);
    }
    const refused = await cli(['backup', '--url', node.url, '--admin-key', app.adminKey, '--out', join(tempDataDir(), 'no.gz')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/401/);
  });
});
