/**
 * Black-box: a table of malformed inputs. Each gets its stable error code, and the data is left
 * exactly as it was (no partial write, nothing lost, no crash).
 */
import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlData, rawPost } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { BucketInfo, ChangesPage, EventsPage, GetEntity, ListEntities, SubmitChanges } from '../support/operations.js';
import type { ChangeInput } from '../generated/graphql.js';

let node: NodeProcess;
const bucket = 'malformed';

beforeAll(async () => {
  // Small limits, so that "too large" and "too many" cases stay cheap.
  node = await startNodeProcess({
    args: ['--limit', 'requestBytesMax=200000', '--limit', 'entityBytesMax=10000', '--limit', 'changesPerRequestMax=50'],
  });
  await gqlData(node, SubmitChanges, {
    bucket,
    changes: [
      { ccid: 'a1', key: 'note', op: 'MODIFY', data: { title: 'hello', n: 1 } },
      { ccid: 'a2', key: 'other', op: 'MODIFY', data: { list: [1, 2] } },
    ],
  });
});
afterAll(cleanupNodes);

/** Everything a client can observe of the bucket. */
async function snapshot() {
  const [entities, changes, info, events] = await Promise.all([
    gqlData(node, ListEntities, { bucket, includeDeleted: true }),
    gqlData(node, ChangesPage, { bucket }),
    gqlData(node, BucketInfo, { name: bucket }),
    gqlData(node, EventsPage, { bucket }),
  ]);
  return { entities, changes, info, events };
}

const submitQuery = print(SubmitChanges);
const deep = (levels: number): unknown => (levels === 0 ? 1 : { d: deep(levels - 1) });

/** Changes that are refused one by one: `SyncError` data with a code. */
const badChanges: Array<[string, Partial<ChangeInput> & Record<string, unknown>, string]> = [
  ['ccid with invalid characters', { ccid: 'not-hex!', key: 'k', op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['ccid too long', { ccid: 'a'.repeat(257), key: 'k', op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['empty ccid', { ccid: '', key: 'k', op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['MODIFY without key', { ccid: 'b1', op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['key with a space', { ccid: 'b2', key: 'a b', op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['key with a slash', { ccid: 'b3', key: 'a/b', op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['key too long', { ccid: 'b4', key: 'k'.repeat(257), op: 'MODIFY', data: {} }, 'INVALID_INPUT'],
  ['MODIFY with neither data nor diff', { ccid: 'b5', key: 'note', op: 'MODIFY', baseVersion: 1 }, 'INVALID_INPUT'],
  ['MODIFY with data and diff', { ccid: 'b6', key: 'note', op: 'MODIFY', baseVersion: 1, data: {}, diff: {} }, 'INVALID_INPUT'],
  ['data is an array', { ccid: 'b7', key: 'note', op: 'MODIFY', baseVersion: 1, data: [1] }, 'INVALID_INPUT'],
  ['data is a string', { ccid: 'b8', key: 'note', op: 'MODIFY', baseVersion: 1, data: 'x' }, 'INVALID_INPUT'],
  ['diff is a number', { ccid: 'b9', key: 'note', op: 'MODIFY', baseVersion: 1, diff: 3 }, 'INVALID_INPUT'],
  ['diff with an unknown op', { ccid: 'c1', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { title: { o: '?', v: 1 } } }, 'INVALID_INPUT'],
  ['diff I with a string', { ccid: 'c2', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { n: { o: 'I', v: 'x' } } }, 'INVALID_INPUT'],
  ['diff d with a number', { ccid: 'c3', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { title: { o: 'd', v: 5 } } }, 'INVALID_INPUT'],
  ['diff d that does not fit the text', { ccid: 'c4', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { title: { o: 'd', v: '=50\t+x' } } }, 'INVALID_INPUT'],
  ['diff removing a missing field', { ccid: 'c5', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { nope: { o: '-' } } }, 'INVALID_INPUT'],
  ['diff adding an existing field', { ccid: 'c6', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { title: { o: '+', v: 'x' } } }, 'INVALID_INPUT'],
  ['diff I on a string field', { ccid: 'c7', key: 'note', op: 'MODIFY', baseVersion: 1, diff: { title: { o: 'I', v: 1 } } }, 'INVALID_INPUT'],
  ['diff L index out of range', { ccid: 'c8', key: 'other', op: 'MODIFY', baseVersion: 1, diff: { list: { o: 'L', v: { '9': { o: '-' } } } } }, 'INVALID_INPUT'],
  ['data nested too deep', { ccid: 'c9', key: 'note', op: 'MODIFY', baseVersion: 1, data: { x: deep(40) } }, 'INVALID_INPUT'],
  ['data larger than the entity limit', { ccid: 'd1', key: 'note', op: 'MODIFY', baseVersion: 1, data: { big: 'x'.repeat(20_000) } }, 'INVALID_INPUT'],
  ['negative baseVersion', { ccid: 'd2', key: 'note', op: 'MODIFY', baseVersion: -1, data: {} }, 'INVALID_INPUT'],
  ['DELETE with data', { ccid: 'd3', key: 'note', op: 'DELETE', baseVersion: 1, data: {} }, 'INVALID_INPUT'],
  ['EMPTY with a key', { ccid: 'd4', key: 'note', op: 'EMPTY' }, 'INVALID_INPUT'],
  ['DROP with a diff', { ccid: 'd5', op: 'DROP', diff: {} }, 'INVALID_INPUT'],
  ['baseVersion from the future', { ccid: 'd6', key: 'note', op: 'MODIFY', baseVersion: 99, data: {} }, 'BAD_VERSION'],
  ['DELETE of an old version', { ccid: 'd7', key: 'note', op: 'DELETE', baseVersion: 0 }, 'BAD_VERSION'],
  ['MODIFY of a missing entity', { ccid: 'd8', key: 'ghost', op: 'MODIFY', baseVersion: 2, data: {} }, 'MISSING_ENTITY'],
  ['DELETE of a missing entity', { ccid: 'd9', key: 'ghost', op: 'DELETE' }, 'MISSING_ENTITY'],
];

/** Requests refused as a whole: GraphQL errors with `extensions.code`. */
const badRequests: Array<[string, () => Promise<{ status: number; errors?: Array<{ extensions?: { code?: string } }> }>, string]> = [
  ['body is not JSON', () => rawPost(node, '{"query": '), 'BAD_REQUEST'],
  ['no query', () => rawPost(node, { variables: {} }), 'BAD_REQUEST'],
  ['query is not a string', () => rawPost(node, { query: 42 }), 'BAD_REQUEST'],
  ['syntax error', () => rawPost(node, { query: '{ entity(bucket: "x", key: "y") { version ' }), 'GRAPHQL_PARSE_FAILED'],
  ['literal nested too deeply to parse', () => rawPost(node, { query: `mutation { submitChanges(bucket: "malformed", changes: [{ccid: "ea", key: "k", op: MODIFY, data: {x: ${'['.repeat(20_000)}${']'.repeat(20_000)}}}]) { ccid } }` }), 'GRAPHQL_PARSE_FAILED'],
  ['unknown field', () => rawPost(node, { query: '{ entity(bucket: "x", key: "y") { colour } }' }), 'GRAPHQL_VALIDATION_FAILED'],
  ['unknown op enum', () => rawPost(node, { query: 'mutation { submitChanges(bucket: "x", changes: [{ccid: "a", op: UPSERT}]) { ccid } }' }), 'GRAPHQL_VALIDATION_FAILED'],
  ['variable of the wrong type', () => rawPost(node, { query: 'query($v: Int) { entity(bucket: "malformed", key: "note", version: $v) { version } }', variables: { v: 'one' } }), 'BAD_USER_INPUT'],
  ['JSON literal containing a variable', () => rawPost(node, { query: 'mutation($v: Int) { submitChanges(bucket: "malformed", changes: [{ccid: "e9", key: "k", op: MODIFY, data: {n: $v}}]) { ccid } }', variables: { v: 1 } }), 'BAD_USER_INPUT'],
  ['missing required variable', () => rawPost(node, { query: submitQuery, variables: { bucket } }), 'BAD_USER_INPUT'],
  ['body over the request limit', () => rawPost(node, { query: submitQuery, variables: { bucket, changes: [{ ccid: 'e1', key: 'k', op: 'MODIFY', data: { x: 'y'.repeat(300_000) } }] } }), 'PAYLOAD_TOO_LARGE'],
  ['more changes than allowed per request', () => gql(node, SubmitChanges, { bucket, changes: Array.from({ length: 51 }, (_, i) => ({ ccid: `f${i}`, key: `k${i}`, op: 'MODIFY' as const, data: {} })) }), 'LIMIT_EXCEEDED'],
  ['invalid bucket name', () => gql(node, SubmitChanges, { bucket: 'no spaces', changes: [{ ccid: 'e2', key: 'k', op: 'MODIFY', data: {} }] }), 'INVALID_INPUT'],
  ['bucket name too long', () => gql(node, GetEntity, { bucket: 'b'.repeat(65), key: 'k' }), 'INVALID_INPUT'],
  ['client id with control characters', () => gql(node, SubmitChanges, { bucket, clientId: 'phone\u0000', changes: [{ ccid: 'e3', key: 'k', op: 'MODIFY', data: {} }] }), 'INVALID_INPUT'],
  ['garbage cursor', () => gql(node, ChangesPage, { bucket, since: 'garbage' }), 'INVALID_CURSOR'],
  ['tampered cursor', () => gql(node, ChangesPage, { bucket, since: 'c1.bWFsZm9ybWVkfHh5ejo5OTk5' }), 'INVALID_CURSOR'],
  ['events cursor used for changes', async () => gql(node, ChangesPage, { bucket, since: (await gqlData(node, BucketInfo, { name: bucket })).bucket.eventsCursor }), 'INVALID_CURSOR'],
  ['page size zero', () => gql(node, ChangesPage, { bucket, limit: 0 }), 'INVALID_INPUT'],
  ['page size too large', () => gql(node, ListEntities, { bucket, first: 5000 }), 'INVALID_INPUT'],
  ['entity key invalid in a query', () => gql(node, GetEntity, { bucket, key: 'a b' }), 'INVALID_INPUT'],
  ['no credentials', () => gql(node, GetEntity, { bucket, key: 'note' }, { token: null }), 'UNAUTHENTICATED'],
];

describe('malformed input', () => {
  it(`refuses each of ${badChanges.length + badRequests.length} malformed inputs with its code and changes nothing`, async () => {
    const before = await snapshot();
    for (const [name, change, code] of badChanges) {
      const result = await gql(node, SubmitChanges, { bucket, changes: [change as ChangeInput] });
      expect(result.errors, name).toBeUndefined();
      expect(result.data?.submitChanges[0]?.error?.code, name).toBe(code);
      expect(result.data?.submitChanges[0]?.change, name).toBeNull();
    }
    for (const [name, request, code] of badRequests) {
      const result = await request();
      expect(result.errors?.[0]?.extensions?.code, name).toBe(code);
    }
    expect(await snapshot()).toEqual(before);
    // And the node still works.
    const ok = await gqlData(node, SubmitChanges, { bucket, changes: [{ ccid: 'ff01', key: 'note', op: 'MODIFY', baseVersion: 1, data: { title: 'still fine', n: 1 } }] });
    expect(ok.submitChanges[0]!.change!.version).toBe(2);
  });

  it('answers unknown routes with NOT_FOUND', async () => {
    const response = await fetch(`${node.url}/nope`);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe('NOT_FOUND');
  });
});
