/**
 * Black-box: `syncgraph export` of an app (its users' private buckets, its own and shared ones,
 * events and settings) from one node, and `syncgraph import` into another: the second node then
 * holds the same entities, the same events byte for byte, the same settings; a second import
 * changes nothing; a damaged file is refused before anything is sent.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlData } from '../support/client.js';
import { cleanupNodes, startNodeProcess, tempDataDir, type NodeProcess } from '../support/node-process.js';
import { ConfigureBucket, CreateApp, ListEntities, PushEvents, SubmitChanges } from '../support/operations.js';

const BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));
const APP = 'shop';
let source: NodeProcess;
let target: NodeProcess;
let seq = 0;
const ccid = () => (++seq).toString(16).padStart(10, '0') + 'e0';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, SYNCGRAPH_ADMIN_KEY: '' } }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
    );
  });
}

/** As the app's admin, acting as `user` (its private instance) or as the app itself. */
const as = (node: NodeProcess, user?: string) => ({ token: node.adminKey, headers: { 'x-syncgraph-app': APP, ...(user ? { 'x-syncgraph-user': user } : {}) } });

function event(action: string) {
  const uuid = uuidv7();
  return { uuid, timestamp: BigInt('0x' + uuid.slice(0, 8) + uuid.slice(9, 13)).toString(), user: 'dana', item: 'order.1', action, payload: `{"step":"${action}"}` };
}

/** Everything an app's instance serves, as comparable data. */
async function contents(node: NodeProcess, bucket: string, user?: string) {
  const entities = await gql(node, ListEntities, { bucket, first: 1000 }, as(node, user));
  const events = await fetch(node.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${node.adminKey}`, 'x-syncgraph-app': APP, ...(user ? { 'x-syncgraph-user': user } : {}) },
    body: JSON.stringify({ query: `{ events(bucket: "${bucket}", limit: 1000) { events { uuid timestamp user item action payload } } bucket(name: "${bucket}") { config { conflictMode versionMax version10Max } } }` }),
  }).then((r) => r.text());
  return { entities: entities.data!.entities.map((e) => [e.key, e.data]), events: events };
}

beforeAll(async () => {
  [source, target] = await Promise.all([startNodeProcess(), startNodeProcess()]);
  await gqlData(source, CreateApp, { id: APP });
  for (const user of ['dana', 'eli']) {
    const changes = Array.from({ length: 30 }, (_, i) => ({ ccid: ccid(), key: `item${i}`, op: 'MODIFY' as const, data: { owner: user, n: i, note: 'ü✓'.repeat(i % 3) } }));
    await gql(source, SubmitChanges, { bucket: 'cart', changes }, as(source, user));
  }
  // Versions and a delete: only the current entities travel.
  await gql(source, SubmitChanges, { bucket: 'cart', changes: [{ ccid: ccid(), key: 'item0', op: 'MODIFY', baseVersion: 1, data: { owner: 'dana', n: 100 } }] }, as(source, 'dana'));
  await gql(source, SubmitChanges, { bucket: 'cart', changes: [{ ccid: ccid(), key: 'item1', op: 'DELETE' }] }, as(source, 'dana'));
  await gql(source, SubmitChanges, { bucket: 'catalog', changes: [{ ccid: ccid(), key: 'apple', op: 'MODIFY', data: { price: 3 } }] }, as(source));
  await gql(source, ConfigureBucket, { name: 'catalog', config: { conflictMode: 'OPTIMISTIC', versionMax: 7 } }, as(source));
  await gql(source, PushEvents, { bucket: 'orders', events: [event('created'), event('paid'), event('shipped')] }, as(source));
});
afterAll(cleanupNodes);

describe('export and import', () => {
  it('moves an app to another node: the same entities, events and settings; a second import changes nothing', async () => {
    const file = join(tempDataDir(), 'shop.ndjson');
    const exported = await cli(['export', '--url', source.url, '--admin-key', source.adminKey, '--app', APP, '--out', file]);
    expect(exported.stderr).toBe('');
    expect(JSON.parse(exported.stdout)).toMatchObject({ file, entities: 30 + 29 + 1, events: 3, configs: 1 });

    const imported = await cli(['import', '--url', target.url, '--admin-key', target.adminKey, '--app', APP, '--in', file]);
    expect(imported.stderr).toBe('');
    expect(JSON.parse(imported.stdout)).toMatchObject({ entities: { applied: 60, unchanged: 0, rejected: 0 }, events: { accepted: 3, rejected: 0 }, configs: 1, problems: [] });
    for (const [bucket, user] of [['cart', 'dana'], ['cart', 'eli'], ['catalog', undefined], ['orders', undefined]] as const) {
      const [before, after] = [await contents(source, bucket, user), await contents(target, bucket, user)];
      // Not a comparison of two empty answers: each instance holds entities or events.
      expect(after.entities.length > 0 || after.events.includes('"shipped"'), `${bucket} ${user}`).toBe(true);
      expect(after, `${bucket} ${user ?? '(app)'}`).toEqual(before);
    }
    const again = await cli(['import', '--url', target.url, '--admin-key', target.adminKey, '--app', APP, '--in', file]);
    expect(JSON.parse(again.stdout)).toMatchObject({ entities: { applied: 0, unchanged: 60 }, events: { accepted: 3, rejected: 0 } });
    const versions = await gql(target, ListEntities, { bucket: 'cart', first: 1000 }, as(target, 'dana'));
    expect(new Set(versions.data!.entities.map((e) => e.version))).toEqual(new Set([1]));
  });

  it('shows progress on a terminal: the bytes received, and a bar of the file sent', async () => {
    const file = join(tempDataDir(), 'progress.ndjson');
    // Under a pseudo-terminal (util-linux `script`): the display is for people, not pipes.
    const inTerminal = (args: string[]) =>
      new Promise<string>((resolve, reject) => {
        const command = [process.execPath, BIN, ...args].map((arg) => `'${arg}'`).join(' ');
        execFile('script', ['-qec', command, '/dev/null'], { env: { ...process.env, SYNCGRAPH_ADMIN_KEY: '' } }, (error, stdout) => (error === null ? resolve(stdout) : reject(error)));
      });
    const exported = await inTerminal(['export', '--url', source.url, '--admin-key', source.adminKey, '--app', APP, '--out', file]);
    expect(exported).toMatch(/export: \d+\.\d MiB received/);
    const size = statSync(file).size;
    const imported = await inTerminal(['import', '--url', target.url, '--admin-key', target.adminKey, '--app', APP, '--in', file]);
    expect(imported).toMatch(new RegExp(`import: \\[[#.]{30}\\] \\d+/${size} bytes`));
  });

  it('exports one bucket alone', async () => {
    const file = join(tempDataDir(), 'catalog.ndjson');
    const exported = await cli(['export', '--url', source.url, '--admin-key', source.adminKey, '--app', APP, '--bucket', 'catalog', '--out', file]);
    expect(JSON.parse(exported.stdout)).toMatchObject({ entities: 1, events: 0, configs: 1 });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type?: string; bucket?: string });
    expect(lines.filter((l) => l.type !== undefined).every((l) => l.bucket === 'catalog')).toBe(true);
  });

  it('refuses a damaged or cut-short file before sending anything', async () => {
    const file = join(tempDataDir(), 'whole.ndjson');
    await cli(['export', '--url', source.url, '--admin-key', source.adminKey, '--app', APP, '--bucket', 'cart', '--out', file]);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const fresh = await startNodeProcess();
    for (const [name, content, message] of [
      ['cut', lines.slice(0, -1), /incomplete/],
      ['bad line', [...lines.slice(0, 3), '{"type":"entity","bucket":"cart"}', ...lines.slice(3)], /line 4: bucket and owner missing/],
      ['miscounted', [...lines.slice(0, 3), ...lines.slice(4)], /damaged/],
    ] as const) {
      const bad = join(tempDataDir(), `${name}.ndjson`);
      writeFileSync(bad, content.join('\n') + '\n');
      const result = await cli(['import', '--url', fresh.url, '--admin-key', fresh.adminKey, '--app', APP, '--in', bad]);
      expect(result.code, name).toBe(1);
      expect(result.stderr, name).toMatch(message);
      expect(result.stderr, name).toMatch(/nothing was imported/);
    }
    const listed = await gql(fresh, ListEntities, { bucket: 'cart', first: 10 }, as(fresh, 'dana'));
    expect(listed.data!.entities).toEqual([]);
  });

  it('is for the node admin key only', async () => {
    const response = await fetch(`${source.url}/admin/export?app=${APP}`, { headers: { authorization: 'Bearer nope-nope-nope-nope' } });
    expect(response.status).toBe(401);
    const noApp = await fetch(`${source.url}/admin/export`, { headers: { authorization: `Bearer ${source.adminKey}` } });
    expect(noApp.status).toBe(400);
  });
});
