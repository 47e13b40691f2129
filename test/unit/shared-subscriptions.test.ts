/**
 * Encode once: subscribers running the same operation share each event's result; selections that
 * depend on variables are executed per subscriber.
 */
import { buildSchema, GraphQLError, parse, type GraphQLObjectType, type GraphQLSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { FUSE, isFusable, LATER, PUSH, type Pushable, type SharedStep } from '../../src/engine/async-map.js';
import { LiveFeed } from '../../src/engine/live-feed.js';
import { shareKey, subscribeShared } from '../../src/server/shared-subscriptions.js';

interface Item {
  id: string;
}

function setup() {
  const feed = new LiveFeed<Item>();
  let labelCalls = 0;
  // Built with graphql-js itself (the module the code under test imports), resolvers attached.
  const schema = buildSchema(/* GraphQL */ `
    type Item { id: ID!, label(prefix: String): String! }
    type Query { ok: Boolean }
    type Subscription { items(topic: String!): Item! }
  `);
  (schema.getType('Item') as GraphQLObjectType).getFields()['label']!.resolve = (item: Item, args: { prefix?: string | null }) => {
    labelCalls++;
    return `${args.prefix ?? ''}${item.id}`;
  };
  async function* items() {
    const queue = feed.attach(100);
    try {
      for (;;) {
        const next = await queue.next();
        if (typeof next === 'symbol') return;
        yield { items: next };
      }
    } finally {
      queue.close();
    }
  }
  (schema.getSubscriptionType() as GraphQLObjectType).getFields()['items']!.subscribe = async (_: unknown, { topic }: { topic: string }) => {
    if (topic === 'bad') throw new GraphQLError('bad topic', { extensions: { code: 'INVALID_INPUT' } });
    return items();
  };
  return { feed, schema, labelCalls: () => labelCalls };
}

/** A schema whose subscription the test wires itself, with a field that takes an argument. */
function labelSchema(): GraphQLSchema {
  const schema = buildSchema(/* GraphQL */ `
    type Item { id: ID!, label(prefix: String): String! }
    type Query { ok: Boolean }
    type Subscription { items: Item! }
  `);
  (schema.getType('Item') as GraphQLObjectType).getFields()['label']!.resolve = (item: Item, args: { prefix?: string | null }) =>
    `${args.prefix ?? ''}${item.id}`;
  return schema;
}

const maskError = (e: unknown) => (e instanceof GraphQLError ? e : new GraphQLError(String(e)));

async function subscribe(schema: GraphQLSchema, query: string, variables: Record<string, unknown>) {
  const result = await subscribeShared({ schema, document: parse(query), variableValues: variables }, { maskError });
  if (!(Symbol.asyncIterator in result)) throw new Error(JSON.stringify(result));
  return result;
}

describe('shared subscription results', () => {
  it('executes each event once for subscribers of the same variable-free selection', async () => {
    const { feed, schema, labelCalls } = setup();
    const query = 'subscription($t: String!) { items(topic: $t) { id label } }';
    const a = await subscribe(schema, query, { t: 'x' });
    const b = await subscribe(schema, query, { t: 'x' });
    const [ra, rb] = [a.next(), b.next()];
    await new Promise((resolve) => setImmediate(resolve));
    feed.publish({ id: 'one' });
    const [va, vb] = await Promise.all([ra, rb]);
    expect(va.value).toEqual({ data: { items: { id: 'one', label: 'one' } } });
    expect(vb.value).toBe(va.value);
    expect(labelCalls()).toBe(1);
    await a.return();
    await b.return();
    expect(feed.size).toBe(0);
  });

  it('executes per subscriber when the selection uses variables', async () => {
    const { feed, schema, labelCalls } = setup();
    const query = 'subscription($t: String!, $p: String) { items(topic: $t) { id label(prefix: $p) } }';
    const a = await subscribe(schema, query, { t: 'x', p: 'A:' });
    const b = await subscribe(schema, query, { t: 'x', p: 'B:' });
    const [ra, rb] = [a.next(), b.next()];
    await new Promise((resolve) => setImmediate(resolve));
    feed.publish({ id: 'one' });
    const [va, vb] = await Promise.all([ra, rb]);
    expect(va.value).toEqual({ data: { items: { id: 'one', label: 'A:one' } } });
    expect(vb.value).toEqual({ data: { items: { id: 'one', label: 'B:one' } } });
    expect(labelCalls()).toBe(2);
    await a.return();
    await b.return();
  });

  it('pushes each subscriber the result of its own operation, shared only between subscribers of the same one', async () => {
    // A source that pushes (as engine/record-stream.ts does for live records), so the results
    // take the synchronous path, which remembers the last shared result.
    const sinks: Array<(value: unknown) => boolean> = [];
    const schema = labelSchema();
    (schema.getSubscriptionType() as GraphQLObjectType).getFields()['items']!.subscribe = () => {
      const source = {
        next: () => new Promise<IteratorResult<unknown>>(() => undefined),
        return: async () => ({ done: true as const, value: undefined }),
        [Symbol.asyncIterator]: () => source,
        [PUSH]: (sink: (value: unknown) => boolean) => void sinks.push(sink),
      };
      return source;
    };
    const received = new Map<string, unknown[]>();
    const open = async (name: string, query: string, variables: Record<string, unknown> = {}) => {
      const stream = await subscribe(schema, query, variables);
      received.set(name, []);
      (stream as unknown as Pushable<unknown>)[PUSH]((result) => received.get(name)!.push(result) > 0);
    };
    await open('a', 'subscription { items { id label } }');
    await open('b', 'subscription { items { id label } }');
    await open('c', 'subscription { items { id } }');
    await open('d', 'subscription($p: String) { items { id label(prefix: $p) } }', { p: 'D:' });
    expect(sinks).toHaveLength(4);
    // Marked shared the way live records are: published to a feed with several subscribers.
    const feed = new LiveFeed<Item>();
    feed.attach(10);
    feed.attach(10);
    for (const id of ['one', 'two']) {
      const item = { id };
      feed.publish(item);
      const payload = { items: item }; // one payload object for every subscriber (resolvers/subscription.ts)
      for (const sink of sinks) expect(sink(payload)).toBe(true);
    }
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => received.get(name)!);
    expect(a).toEqual([{ data: { items: { id: 'one', label: 'one' } } }, { data: { items: { id: 'two', label: 'two' } } }]);
    expect(b![0]).toBe(a![0]);
    expect(b![1]).toBe(a![1]);
    expect(c).toEqual([{ data: { items: { id: 'one' } } }, { data: { items: { id: 'two' } } }]);
    expect(d).toEqual([{ data: { items: { id: 'one', label: 'D:one' } } }, { data: { items: { id: 'two', label: 'D:two' } } }]);
  });

  it('offers a fused step per operation, shared between its subscribers, and none for a selection with variables', async () => {
    const schema = labelSchema();
    const fusedSteps: Array<readonly SharedStep[]> = [];
    (schema.getSubscriptionType() as GraphQLObjectType).getFields()['items']!.subscribe = () => {
      const source = {
        next: () => new Promise<IteratorResult<unknown>>(() => undefined),
        return: async () => ({ done: true as const, value: undefined }),
        [Symbol.asyncIterator]: () => source,
        [PUSH]: () => undefined,
        [FUSE]: (steps: readonly SharedStep[]) => fusedSteps.push(steps) > 0,
      };
      return source;
    };
    const target = { deliver: () => true };
    const open = async (query: string, variables: Record<string, unknown> = {}) => {
      const stream = await subscribe(schema, query, variables);
      (stream as unknown as Pushable<unknown>)[PUSH](() => true);
      return isFusable(stream) && stream[FUSE]([], target);
    };
    expect(await open('subscription { items { id label } }')).toBe(true);
    expect(await open('subscription { items { id label } }')).toBe(true);
    expect(await open('subscription { items { id } }')).toBe(true);
    expect(await open('subscription($p: String) { items { id label(prefix: $p) } }', { p: 'D:' })).toBe(false);
    const [a, b, c] = fusedSteps.map((steps) => steps[0]!);
    expect(fusedSteps).toHaveLength(3);
    expect(a!.key).toBe(b!.key);
    expect(c!.key).not.toBe(a!.key);
    // The step gives the shared result, the one the push path gives; LATER for a record only
    // one subscriber sees (executed for it alone, on the push path).
    const feed = new LiveFeed<Item>();
    feed.attach(10);
    feed.attach(10);
    const item = { id: 'one' };
    feed.publish(item);
    const payload = { items: item };
    const map = a!.map as (payload: unknown) => unknown;
    expect(map(payload)).toEqual({ data: { items: { id: 'one', label: 'one' } } });
    expect((b!.map as (payload: unknown) => unknown)(payload)).toBe(map(payload));
    expect((c!.map as (payload: unknown) => unknown)(payload)).toEqual({ data: { items: { id: 'one' } } });
    expect(map({ items: { id: 'alone' } })).toBe(LATER);
  });

  it('returns the errors of the subscribe phase, masked', async () => {
    const { schema } = setup();
    const result = await subscribeShared({ schema, document: parse('subscription { items(topic: "bad") { id } }') }, { maskError });
    expect(Symbol.asyncIterator in result).toBe(false);
    expect((result as { errors: GraphQLError[] }).errors[0]!.extensions['code']).toBe('INVALID_INPUT');
  });
});

describe('shareKey', () => {
  it.each([
    ['root arguments only', 'subscription($b: String!) { changes(bucket: $b) { key version } }', true],
    ['no variables', 'subscription { changes(bucket: "x") { key } }', true],
    ['a variable in the selection', 'subscription($b: String!, $p: String) { changes(bucket: $b) { label(prefix: $p) } }', false],
    ['a variable in a root directive', 'subscription($b: String!, $i: Boolean!) { changes(bucket: $b) @include(if: $i) { key } }', false],
    ['a variable in a fragment', 'subscription($b: String!) { changes(bucket: $b) { ...F } } fragment F on Change { label(prefix: $p) }', false],
  ])('%s', (_why, query, shared) => {
    expect(shareKey(parse(query), undefined) !== undefined).toBe(shared);
  });
});
