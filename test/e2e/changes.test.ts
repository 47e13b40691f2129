/**
 * Black-box: one real node process, talked to over HTTP. Create, modify, delete, every per-change
 * error code, idempotent ccids (also across a restart), merges of concurrent edits, history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlData } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import {
  BucketInfo,
  ChangesPage,
  ConfigureBucket,
  GetEntity,
  ListEntities,
  ListVersions,
  SubmitChanges,
} from '../support/operations.js';
import type { ChangeInput } from '../generated/graphql.js';

let node: NodeProcess;
let bucketSeq = 0;
/** A fresh bucket per test: tests share one node but never each other's data. */
const freshBucket = () => `b${++bucketSeq}-${Date.now().toString(36)}`;
let ccidSeq = 0;
const ccid = () => (++ccidSeq).toString(16).padStart(8, '0') + Math.floor(Math.random() * 0xffffffff).toString(16);

async function submit(bucket: string, changes: ChangeInput[], clientId?: string) {
  const data = await gqlData(node, SubmitChanges, { bucket, changes, clientId: clientId ?? null });
  return data.submitChanges;
}

async function one(bucket: string, change: Omit<ChangeInput, 'ccid'> & { ccid?: string }) {
  const [result] = await submit(bucket, [{ ccid: ccid(), ...change }]);
  return result!;
}

async function entity(bucket: string, key: string, version?: number) {
  return (await gqlData(node, GetEntity, { bucket, key, version: version ?? null })).entity;
}

beforeAll(async () => {
  node = await startNodeProcess();
});
afterAll(cleanupNodes);

describe('create, modify, delete', () => {
  it('creates version 1 from data, with the computed diff and a cursor', async () => {
    const bucket = freshBucket();
    const result = await one(bucket, { key: 'note1', op: 'MODIFY', data: { title: 'Hi', tags: ['a'] } });
    expect(result.error).toBeNull();
    expect(result.duplicate).toBe(false);
    expect(result.change).toMatchObject({ bucket, key: 'note1', op: 'MODIFY', version: 1, sourceVersion: null });
    expect(result.change!.diff).toEqual({ title: { o: '+', v: 'Hi' }, tags: { o: '+', v: ['a'] } });
    expect(result.change!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(result.change!.cursor).toEqual(expect.any(String));
    expect(await entity(bucket, 'note1')).toEqual({ bucket, key: 'note1', version: 1, data: { title: 'Hi', tags: ['a'] }, deleted: false });
  });

  it('modifies with a full object or with a jsondiff, each adding a version', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { title: 'Hello', count: 1 } });
    const byData = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'Hello world', count: 1 } });
    expect(byData.change).toMatchObject({ version: 2, sourceVersion: 1 });
    expect(byData.change!.diff).toEqual({ title: { o: 'd', v: expect.any(String) } });
    const byDiff = await one(bucket, {
      key: 'k',
      op: 'MODIFY',
      baseVersion: 2,
      diff: { count: { o: 'I', v: 41 }, done: { o: '+', v: true } },
    });
    expect(byDiff.change).toMatchObject({ version: 3, data: { title: 'Hello world', count: 42, done: true } });
    expect((await entity(bucket, 'k'))!.data).toEqual({ title: 'Hello world', count: 42, done: true });
  });

  it('deletes the most recent version, leaving a tombstone with its own version', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    const deleted = await one(bucket, { key: 'k', op: 'DELETE', baseVersion: 1 });
    expect(deleted.change).toMatchObject({ op: 'DELETE', version: 2, data: null });
    expect(await entity(bucket, 'k')).toMatchObject({ version: 2, deleted: true, data: null });
    const listed = await gqlData(node, ListEntities, { bucket, includeDeleted: false });
    expect(listed.entities).toEqual([]);
    const all = await gqlData(node, ListEntities, { bucket, includeDeleted: true });
    expect(all.entities.map((e) => [e.key, e.deleted])).toEqual([['k', true]]);
  });

  it('revives a tombstone with a create, at the next version', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    await one(bucket, { key: 'k', op: 'DELETE' });
    const revived = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 0, data: { b: 2 } });
    expect(revived.change).toMatchObject({ version: 3, data: { b: 2 } });
  });

  it('pages entities in key order', async () => {
    const bucket = freshBucket();
    await submit(
      bucket,
      ['c', 'a', 'e', 'b', 'd'].map((key) => ({ ccid: ccid(), key, op: 'MODIFY' as const, data: { key } })),
    );
    const first = await gqlData(node, ListEntities, { bucket, first: 2 });
    expect(first.entities.map((e) => e.key)).toEqual(['a', 'b']);
    const next = await gqlData(node, ListEntities, { bucket, first: 10, after: 'b' });
    expect(next.entities.map((e) => e.key)).toEqual(['c', 'd', 'e']);
  });
});

describe('per-change errors', () => {
  it('BAD_VERSION for a base version newer than the entity, and for deleting an old version', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { a: 2 } });
    const newer = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 5, data: { a: 3 } });
    expect(newer.error?.code).toBe('BAD_VERSION');
    // The refusal carries the entity as it is, to rebase on.
    expect(newer).toMatchObject({ change: null, entity: { key: 'k', version: 2, data: { a: 2 }, deleted: false } });
    const stale = await one(bucket, { key: 'k', op: 'DELETE', baseVersion: 1 });
    expect(stale.error?.code).toBe('BAD_VERSION');
    expect(stale.entity).toMatchObject({ version: 2, data: { a: 2 } });
    expect((await entity(bucket, 'k'))!.version).toBe(2);
    // Other refusals carry none.
    expect((await one(bucket, { key: 'gone', op: 'MODIFY', baseVersion: 1, data: { a: 1 } })).entity).toBeNull();
  });

  it('MISSING_ENTITY for modifying or deleting what does not exist or is deleted', async () => {
    const bucket = freshBucket();
    expect((await one(bucket, { key: 'nope', op: 'MODIFY', baseVersion: 3, data: { a: 1 } })).error?.code).toBe('MISSING_ENTITY');
    expect((await one(bucket, { key: 'nope', op: 'DELETE' })).error?.code).toBe('MISSING_ENTITY');
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    await one(bucket, { key: 'k', op: 'DELETE', baseVersion: 1 });
    expect((await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 2, data: { a: 1 } })).error?.code).toBe('MISSING_ENTITY');
    expect((await one(bucket, { key: 'k', op: 'DELETE' })).error?.code).toBe('MISSING_ENTITY');
  });

  it('INVALID_INPUT for a diff that does not apply, and nothing is written', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    const result = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, diff: { missing: { o: '-' } } });
    expect(result.error?.code).toBe('INVALID_INPUT');
    expect(await entity(bucket, 'k')).toMatchObject({ version: 1, data: { a: 1 } });
  });

  it('one failing change does not fail the others, and results keep input order', async () => {
    const bucket = freshBucket();
    const ids = [ccid(), ccid(), ccid()];
    const results = await submit(bucket, [
      { ccid: ids[0]!, key: 'x', op: 'MODIFY', data: { v: 1 } },
      { ccid: ids[1]!, key: 'y', op: 'MODIFY', baseVersion: 9, data: { v: 1 } },
      { ccid: ids[2]!, key: 'z', op: 'MODIFY', data: { v: 3 } },
    ]);
    expect(results.map((r) => r.ccid)).toEqual(ids);
    expect(results.map((r) => r.error?.code ?? null)).toEqual([null, 'MISSING_ENTITY', null]);
    expect(results[2]!.change!.version).toBe(1);
  });

  it('INVALID_PERMISSION is not reachable with the admin key: DROP is allowed', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    const dropped = await one(bucket, { op: 'DROP' });
    expect(dropped.error).toBeNull();
    expect(dropped.change).toMatchObject({ op: 'DROP', key: null, version: null });
  });
});

describe('idempotency (ccid)', () => {
  it('a retried ccid is applied once and returns the original change', async () => {
    const bucket = freshBucket();
    const id = ccid();
    const first = await one(bucket, { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } });
    const retry = await one(bucket, { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } });
    expect(retry.duplicate).toBe(true);
    expect(retry.change).toEqual(first.change);
    // Same ccid, another body: still the same change, not applied again.
    const other = await one(bucket, { ccid: id, key: 'k', op: 'MODIFY', baseVersion: 1, data: { n: 99 } });
    expect(other.duplicate).toBe(true);
    expect(await entity(bucket, 'k')).toMatchObject({ version: 1, data: { n: 1 } });
  });

  it('a ccid repeated inside one request is applied once', async () => {
    const bucket = freshBucket();
    const id = ccid();
    const results = await submit(bucket, [
      { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } },
      { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } },
    ]);
    expect(results.map((r) => r.duplicate)).toEqual([false, true]);
    expect((await entity(bucket, 'k'))!.version).toBe(1);
  });

  it('ccids are case-insensitive hex and accept dashed UUIDs', async () => {
    const bucket = freshBucket();
    const uuid = '3F2504E0-4F89-41D3-9A0C-0305E82C3301';
    await one(bucket, { ccid: uuid, key: 'k', op: 'MODIFY', data: { n: 1 } });
    const retry = await one(bucket, { ccid: uuid.toLowerCase(), key: 'k', op: 'MODIFY', data: { n: 2 } });
    expect(retry.duplicate).toBe(true);
  });

  it('the same ccid in another bucket is another change', async () => {
    const id = ccid();
    const a = await one(freshBucket(), { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } });
    const b = await one(freshBucket(), { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } });
    expect([a.duplicate, b.duplicate]).toEqual([false, false]);
  });

  it('a retried ccid is recognised after a restart', async () => {
    const bucket = freshBucket();
    const id = ccid();
    const first = await one(bucket, { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } });
    expect(await node.stop('SIGTERM')).toBe(0);
    node = await startNodeProcess({ dataDir: node.dataDir, adminKey: node.adminKey });
    const retry = await one(bucket, { ccid: id, key: 'k', op: 'MODIFY', data: { n: 1 } });
    expect(retry.duplicate).toBe(true);
    expect(retry.change).toEqual(first.change);
    expect((await entity(bucket, 'k'))!.version).toBe(1);
  });
});

describe('concurrent edits merge (Simperium semantics)', () => {
  it('two clients editing different fields of one version both survive', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { title: 'T', body: 'B', n: 1 } });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'Title by A', body: 'B', n: 1 } });
    const b = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { title: 'T', body: 'Body by B', n: 2 } });
    expect(b.change).toMatchObject({ version: 3, sourceVersion: 1 });
    expect((await entity(bucket, 'k'))!.data).toEqual({ title: 'Title by A', body: 'Body by B', n: 2 });
  });

  it('two clients editing the same string of one version are merged three-way', async () => {
    const bucket = freshBucket();
    const base = 'The quick brown fox jumps over the lazy dog.';
    await one(bucket, { key: 'k', op: 'MODIFY', data: { text: base } });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { text: 'The quick brown fox leaps over the lazy dog.' } });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { text: 'The quick red fox jumps over the lazy dog!' } });
    expect((await entity(bucket, 'k'))!.data).toEqual({ text: 'The quick red fox leaps over the lazy dog!' });
  });

  it('every key of a multi-key conflict is merged, increments add, lists keep both inserts', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 'alpha one', b: 'beta one', c: 'gamma one', n: 10, list: ['x', 'y'] } });
    await one(bucket, {
      key: 'k',
      op: 'MODIFY',
      baseVersion: 1,
      diff: { n: { o: 'I', v: 5 } },
    });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { a: 'alpha one A', b: 'beta one B', c: 'gamma one C', n: 10, list: ['x', 'y', 'z1'] } });
    await one(bucket, {
      key: 'k',
      op: 'MODIFY',
      baseVersion: 1,
      data: { a: 'X alpha one', b: 'X beta one', c: 'X gamma one', n: 10, list: ['x', 'y', 'z2'] },
    });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, diff: { n: { o: 'I', v: 7 } } });
    const data = (await entity(bucket, 'k'))!.data as Record<string, unknown>;
    expect(data['a']).toBe('X alpha one A');
    expect(data['b']).toBe('X beta one B');
    expect(data['c']).toBe('X gamma one C');
    expect(data['n']).toBe(22);
    expect(data['list']).toEqual(expect.arrayContaining(['x', 'y', 'z1', 'z2']));
    expect(data['list']).toHaveLength(4);
  });

  it('two devices creating the same key offline both keep their fields', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 0, data: { fromPhone: 1, shared: 'phone' } });
    const second = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 0, data: { fromLaptop: 2, shared: 'laptop' } });
    expect(second.change!.version).toBe(2);
    expect((await entity(bucket, 'k'))!.data).toEqual({ fromPhone: 1, fromLaptop: 2, shared: 'laptop' });
  });

  it('an edit that changes nothing after merging is a no-op: no version', async () => {
    const bucket = freshBucket();
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    const same = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { a: 1 } });
    expect(same).toMatchObject({ noop: true, change: null, error: null, entity: { version: 1 } });
  });

  it('an optimistic bucket refuses stale edits with BAD_VERSION', async () => {
    const bucket = freshBucket();
    const configured = await gqlData(node, ConfigureBucket, { name: bucket, config: { conflictMode: 'OPTIMISTIC' } });
    expect(configured.configureBucket.config.conflictMode).toBe('OPTIMISTIC');
    await one(bucket, { key: 'k', op: 'MODIFY', data: { a: 1 } });
    await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { a: 2 } });
    const stale = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, data: { b: 1 } });
    expect(stale.error?.code).toBe('BAD_VERSION');
    expect(stale.entity).toMatchObject({ version: 2, data: { a: 2 } });
    const created = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 0, data: { b: 1 } });
    expect(created.error?.code).toBe('BAD_VERSION');
    expect(created.entity).toMatchObject({ version: 2, data: { a: 2 } });
    expect((await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 2, data: { a: 3 } })).error).toBeNull();
  });

  it('falls back to field-level last-writer-wins when the base version is no longer retained', async () => {
    const bucket = freshBucket();
    await gqlData(node, ConfigureBucket, { name: bucket, config: { versionMax: 2, version10Max: 0 } });
    await one(bucket, { key: 'k', op: 'MODIFY', data: { title: 'v1', other: 'x' } });
    for (let v = 1; v < 5; v++) await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: v, data: { title: `v${v + 1}`, other: 'x' } });
    // Version 1 is gone: the diff's fields win, fields it does not touch keep the current value.
    const stale = await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: 1, diff: { note: { o: '+', v: 'late' }, title: { o: 'r', v: 'mine' } } });
    expect(stale.error).toBeNull();
    expect((await entity(bucket, 'k'))!.data).toEqual({ title: 'mine', other: 'x', note: 'late' });
  });
});

describe('history and the change stream', () => {
  it('keeps the most recent versions then every 10th, serving what is retained', async () => {
    const bucket = freshBucket();
    await gqlData(node, ConfigureBucket, { name: bucket, config: { versionMax: 5, version10Max: 2 } });
    await one(bucket, { key: 'k', op: 'MODIFY', data: { v: 1 } });
    for (let v = 1; v < 40; v++) await one(bucket, { key: 'k', op: 'MODIFY', baseVersion: v, data: { v: v + 1 } });
    const versions = await gqlData(node, ListVersions, { bucket, key: 'k' });
    expect(versions.versions.map((e) => e.version)).toEqual([40, 39, 38, 37, 36, 30, 20]);
    expect(await entity(bucket, 'k', 20)).toMatchObject({ version: 20, data: { v: 20 } });
    expect(await entity(bucket, 'k', 21)).toBeNull();
    // A stricter policy applies to what was kept before, too.
    await gqlData(node, ConfigureBucket, { name: bucket, config: { versionMax: 2, version10Max: 1 } });
    const fewer = await gqlData(node, ListVersions, { bucket, key: 'k' });
    expect(fewer.versions.map((e) => e.version)).toEqual([40, 39, 30]);
  });

  it('pages the change stream with cursors, and EMPTY clears the bucket but is in the stream', async () => {
    const bucket = freshBucket();
    for (let i = 0; i < 5; i++) await one(bucket, { key: `k${i}`, op: 'MODIFY', data: { i } });
    const page1 = await gqlData(node, ChangesPage, { bucket, limit: 3 });
    expect(page1.changes.changes.map((c) => c.key)).toEqual(['k0', 'k1', 'k2']);
    expect(page1.changes.hasMore).toBe(true);
    const page2 = await gqlData(node, ChangesPage, { bucket, since: page1.changes.cursor, limit: 3 });
    expect(page2.changes.changes.map((c) => c.key)).toEqual(['k3', 'k4']);
    expect(page2.changes.hasMore).toBe(false);
    const emptied = await one(bucket, { op: 'EMPTY' });
    expect(emptied.change!.op).toBe('EMPTY');
    expect((await gqlData(node, ListEntities, { bucket, includeDeleted: true })).entities).toEqual([]);
    const after = await gqlData(node, ChangesPage, { bucket, since: page2.changes.cursor });
    expect(after.changes.changes.map((c) => c.op)).toEqual(['EMPTY']);
    // A reader from the start gets the EMPTY (older steps are compacted away) and what follows.
    await one(bucket, { key: 'new', op: 'MODIFY', data: { n: 1 } });
    const fromStart = await gqlData(node, ChangesPage, { bucket });
    expect(fromStart.changes.changes.map((c) => c.op)).toEqual(['EMPTY', 'MODIFY']);
    const info = await gqlData(node, BucketInfo, { name: bucket });
    expect(info.bucket.changesCursor).toBe(fromStart.changes.cursor);
  });

  it('refuses a cursor of another bucket', async () => {
    const a = freshBucket();
    await one(a, { key: 'k', op: 'MODIFY', data: { n: 1 } });
    const cursor = (await gqlData(node, ChangesPage, { bucket: a })).changes.cursor;
    const result = await gql(node, ChangesPage, { bucket: freshBucket(), since: cursor });
    expect(result.errors?.[0]?.extensions?.code).toBe('INVALID_CURSOR');
  });
});

describe('selective sync (keyPrefix)', () => {
  async function fill(bucket: string) {
    const keys = ['a.1', 'b.1', 'a.2', 'c.1', 'b.2', 'a.3', 'ab'];
    for (const key of keys) await one(bucket, { key, op: 'MODIFY', data: { key } });
  }

  it('lists only the entities whose key starts with the prefix, paging within it', async () => {
    const bucket = freshBucket();
    await fill(bucket);
    const list = (vars: { first?: number; after?: string }) =>
      gqlData(node, ListEntities, { bucket, keyPrefix: 'a.', ...vars }).then((r) => r.entities.map((e) => e.key));
    expect(await list({})).toEqual(['a.1', 'a.2', 'a.3']);
    expect(await list({ first: 2 })).toEqual(['a.1', 'a.2']);
    expect(await list({ first: 2, after: 'a.2' })).toEqual(['a.3']);
    // An `after` before the prefix starts at the prefix; one past it ends the listing.
    expect(await list({ after: '0' })).toEqual(['a.1', 'a.2', 'a.3']);
    expect(await list({ after: 'b' })).toEqual([]);
    const all = await gqlData(node, ListEntities, { bucket, keyPrefix: '' });
    expect(all.entities).toHaveLength(7);
  });

  it('pages only the changes under the prefix, full pages, and EMPTY reaches every prefix', async () => {
    const bucket = freshBucket();
    await fill(bucket);
    const page1 = await gqlData(node, ChangesPage, { bucket, keyPrefix: 'b.', limit: 1 });
    expect(page1.changes.changes.map((c) => c.key)).toEqual(['b.1']);
    expect(page1.changes.hasMore).toBe(true);
    const page2 = await gqlData(node, ChangesPage, { bucket, keyPrefix: 'b.', since: page1.changes.cursor, limit: 1 });
    expect(page2.changes.changes.map((c) => c.key)).toEqual(['b.2']);
    // Once the log is read to its end, the cursor is past the changes left out as well: the
    // bucket's head, so the next read starts there.
    const rest = await gqlData(node, ChangesPage, { bucket, keyPrefix: 'b.', since: page2.changes.cursor });
    expect(rest.changes.changes).toEqual([]);
    expect(rest.changes.hasMore).toBe(false);
    const head = (await gqlData(node, BucketInfo, { name: bucket })).bucket.changesCursor;
    expect(rest.changes.cursor).toBe(head);
    await one(bucket, { key: 'c.2', op: 'MODIFY', data: {} });
    await one(bucket, { op: 'EMPTY' });
    await one(bucket, { key: 'b.3', op: 'MODIFY', data: {} });
    const after = await gqlData(node, ChangesPage, { bucket, keyPrefix: 'b.', since: rest.changes.cursor });
    expect(after.changes.changes.map((c) => [c.op, c.key])).toEqual([
      ['EMPTY', null],
      ['MODIFY', 'b.3'],
    ]);
  });

  it('refuses a malformed prefix with INVALID_INPUT', async () => {
    const bucket = freshBucket();
    const result = await gql(node, ChangesPage, { bucket, keyPrefix: 'no/slash' });
    expect(result.errors?.[0]?.extensions?.code).toBe('INVALID_INPUT');
    const listed = await gql(node, ListEntities, { bucket, keyPrefix: 'x'.repeat(300) });
    expect(listed.errors?.[0]?.extensions?.code).toBe('INVALID_INPUT');
  });
});
