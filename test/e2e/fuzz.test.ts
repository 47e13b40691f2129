/**
 * Black-box fuzzing (fast-check): random and hostile inputs (huge, deeply nested, any unicode,
 * wrong types) thrown at every mutation of a real node. Each answer is JSON whose every error
 * carries a code; nothing is half-applied (a refused request writes nothing, a per-change refusal
 * writes nothing for that change); and the node is still up and consistent afterwards.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawPost } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';

let node: NodeProcess;
let userToken = '';
let appAdminKey = '';

function nest(depth: number): unknown {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value];
  return value;
}

/** Values no schema expects: wrong types, any unicode, huge, deep. */
const hostile = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 50 }), weight: 2 },
  { arbitrary: fc.integer({ min: 40, max: 800 }).map(nest), weight: 1 },
  { arbitrary: fc.constantFrom('x'.repeat(1_100_000), '\u0000', '\ud800', '-1', '1e400', '!', '*', '../..', 'a'.repeat(300)), weight: 2 },
  { arbitrary: fc.constantFrom(null, true, 0, -1, 2 ** 53, 1.5, [], {}), weight: 2 },
);
const maybe = <T>(valid: fc.Arbitrary<T>) => fc.oneof(valid, hostile);
const hexId = fc.stringMatching(/^[0-9a-f]{8,32}$/);
const name = fc.stringMatching(/^[a-z][a-z0-9._-]{0,20}$/);

interface Answer {
  status: number;
  data?: unknown;
  errors?: Array<{ extensions?: { code?: unknown } }>;
}

/** Every error of an answer carries a string code. */
function expectCoded(answer: Answer): void {
  expect(answer.status).toBeGreaterThanOrEqual(200);
  expect(answer.status).toBeLessThan(500);
  for (const error of answer.errors ?? []) expect(typeof error.extensions?.code, JSON.stringify(error)).toBe('string');
}

async function streamLength(bucket: string, token: string): Promise<number> {
  const answer = (await rawPost(node, { query: `{ changes(bucket: ${JSON.stringify(bucket)}, limit: 1000) { changes { id } } }` }, { token })) as Answer;
  return (answer.data as { changes: { changes: unknown[] } }).changes.changes.length;
}

beforeAll(async () => {
  // The fuzzer sends requests as fast as the node answers: no rate limit in the way.
  node = await startNodeProcess({ args: ['--limit', 'requestsPerSecondMax=1000000'] });
  const made = await rawPost(node, { query: 'mutation { createApp(id: "fuzz") { adminKey defaultKey } }' });
  const keys = (made.data as unknown as { createApp: { adminKey: string; defaultKey: string } }).createApp;
  appAdminKey = keys.adminKey;
  await rawPost(node, { query: 'mutation { createUser(username: "fuzzer", password: "fuzzer password") { username } }' }, { token: keys.defaultKey });
  const signIn = await rawPost(node, { query: 'mutation { authorize(username: "fuzzer", password: "fuzzer password") { token } }' }, { token: keys.defaultKey });
  userToken = (signIn.data as unknown as { authorize: { token: string } }).authorize.token;
});
afterAll(cleanupNodes);

describe('fuzzing every mutation', () => {
  it('submitChanges: coded errors, and exactly the accepted changes written', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record(
            {
              ccid: maybe(hexId),
              key: maybe(name),
              op: maybe(fc.constantFrom('MODIFY', 'DELETE', 'EMPTY', 'DROP')),
              baseVersion: maybe(fc.nat(4)),
              data: maybe(fc.dictionary(name, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })),
              diff: maybe(fc.constant({ title: { o: '+', v: 'x' } })),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 5 },
        ),
        maybe(name),
        async (changes, clientId) => {
          const bucket = 'fuzzed';
          const before = await streamLength(bucket, userToken);
          const answer = (await rawPost(
            node,
            {
              query: 'mutation($c: [ChangeInput!]!, $id: String) { submitChanges(bucket: "fuzzed", clientId: $id, changes: $c) { ccid duplicate error { code } change { id } } }',
              variables: { c: changes, id: clientId },
            },
            { token: userToken },
          )) as Answer;
          expectCoded(answer);
          const after = await streamLength(bucket, userToken);
          const results = (answer.data as { submitChanges: Array<{ duplicate: boolean; error: unknown; change: unknown }> } | null | undefined)?.submitChanges;
          if (results === undefined || results === null) {
            expect(after).toBe(before); // a refused request writes nothing
            return;
          }
          for (const r of results) if (r.error !== null) expect(r.change).toBeNull();
          // EMPTY and DROP compact the stream to their own record; otherwise one record per new change.
          const cleared = changes.some((c) => c.op === 'EMPTY' || c.op === 'DROP');
          if (!cleared) expect(after - before).toBe(results.filter((r) => r.error === null && !r.duplicate && r.change !== null).length);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('pushEvents: coded errors, each event accepted or rejected with a reason', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record(
            {
              uuid: maybe(fc.uuid({ version: 7 })),
              timestamp: maybe(fc.nat().map(String)),
              user: maybe(fc.constant('fuzzer')),
              item: maybe(name),
              action: maybe(name),
              payload: maybe(fc.jsonValue().map((v) => JSON.stringify({ v }))),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 4 },
        ),
        async (events) => {
          const answer = (await rawPost(
            node,
            { query: 'mutation($e: [EventInput!]!) { pushEvents(bucket: "fuzzlog", events: $e) { accepted { uuid } rejected { uuid code } } }', variables: { e: events } },
            { token: userToken },
          )) as Answer;
          expectCoded(answer);
          const result = (answer.data as { pushEvents: { accepted: unknown[]; rejected: Array<{ code: string }> } } | null | undefined)?.pushEvents;
          if (result) expect(result.accepted.length + result.rejected.length).toBe(events.length);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('admin mutations: coded errors for any arguments', async () => {
    const mutations: Array<[string, fc.Arbitrary<Record<string, unknown>>]> = [
      ['mutation($n: String!, $c: BucketConfigInput!) { configureBucket(name: $n, config: $c) { name } }', fc.record({ n: maybe(name), c: maybe(fc.record({ versionMax: maybe(fc.nat(100)) })) })],
      ['mutation($r: AclRuleInput!) { grantAcl(rule: $r) { user } }', fc.record({ r: maybe(fc.record({ user: maybe(name), item: maybe(name), action: maybe(name), type: maybe(fc.constantFrom('ALLOW', 'DENY')) })) })],
      ['mutation($r: AclRuleInput!) { revokeAcl(rule: $r) { user } }', fc.record({ r: maybe(fc.record({ user: maybe(name), item: maybe(name), action: maybe(name), type: maybe(fc.constantFrom('ALLOW', 'DENY')) })) })],
      ['mutation($n: String!, $s: Boolean!) { shareBucket(name: $n, shared: $s) }', fc.record({ n: maybe(name), s: maybe(fc.boolean()) })],
      ['mutation($l: KeyLevel!) { createApiKey(level: $l) { info { id } } }', fc.record({ l: maybe(fc.constantFrom('ADMIN', 'DEFAULT', 'READONLY')) })],
      ['mutation($id: ID!) { revokeApiKey(id: $id) { id } }', fc.record({ id: maybe(hexId) })],
      ['mutation($u: String!) { resetUser(username: $u) }', fc.record({ u: maybe(name) })],
      ['mutation($u: String!) { deleteUser(username: $u) }', fc.record({ u: maybe(fc.constantFrom('nobody', 'ghost')) })],
    ];
    for (const [query, variables] of mutations) {
      await fc.assert(
        fc.asyncProperty(variables, async (vars) => {
          expectCoded((await rawPost(node, { query, variables: vars }, { token: appAdminKey })) as Answer);
        }),
        { numRuns: 40 },
      );
    }
    // createApp takes the node's admin key.
    await fc.assert(
      fc.asyncProperty(maybe(name), async (id) => {
        expectCoded((await rawPost(node, { query: 'mutation($id: ID!) { createApp(id: $id) { adminKey } }', variables: { id } })) as Answer);
      }),
      { numRuns: 40 },
    );
  });

  it('sign-up and sign-in: coded errors for any username and password', async () => {
    await fc.assert(
      fc.asyncProperty(maybe(name), maybe(fc.string({ minLength: 8, maxLength: 40 })), async (username, password) => {
        for (const query of [
          'mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { username } }',
          'mutation($u: String!, $p: String!) { authorize(username: $u, password: $p) { token } }',
          'mutation($u: String!, $p: String!) { changePassword(username: $u, password: $p) }',
        ]) {
          expectCoded((await rawPost(node, { query, variables: { u: username, p: password } }, { token: userToken })) as Answer);
        }
      }),
      { numRuns: 15 },
    );
  });

  it('leaves the node up and consistent', async () => {
    const health = await fetch(`${node.url}/health`);
    expect(health.status).toBe(200);
    // The stream still pages to its end, and its head cursor is where paging stops.
    const page = (await rawPost(node, { query: '{ changes(bucket: "fuzzed", limit: 1000) { cursor hasMore } bucket(name: "fuzzed") { changesCursor } }' }, { token: userToken })) as Answer;
    const data = page.data as { changes: { cursor: string; hasMore: boolean }; bucket: { changesCursor: string } };
    expect(data.changes.hasMore).toBe(false);
    expect(data.changes.cursor).toBe(data.bucket.changesCursor);
  });
});
