/**
 * Black-box: live subscriptions over graphql-ws against a real node process. Replay from a cursor,
 * then live, with no gap and no duplicate, even while writes race with the replay.
 */
import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { collect, deferred, gqlData, wsClient } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import type { ChangesPageQuery } from '../generated/graphql.js';
import { BucketInfo, ChangesPage, ChangesSubscription, SubmitChanges } from '../support/operations.js';

let node: NodeProcess;
let n = 0;
const freshBucket = () => `sub${++n}-${Date.now().toString(36)}`;
const hex = (i: number) => i.toString(16).padStart(12, '0') + Math.floor(Math.random() * 1e9).toString(16);

beforeAll(async () => {
  node = await startNodeProcess();
});
afterAll(cleanupNodes);

async function write(bucket: string, keys: string[]) {
  const data = await gqlData(node, SubmitChanges, {
    bucket,
    changes: keys.map((key, i) => ({ ccid: hex(i), key, op: 'MODIFY' as const, data: { key } })),
  });
  for (const r of data.submitChanges) if (r.error) throw new Error(JSON.stringify(r.error));
  return data.submitChanges;
}

describe('replay then live', () => {
  it('replays history from the start, then delivers new changes live', async () => {
    const bucket = freshBucket();
    await write(bucket, ['a', 'b']);
    const client = wsClient(node);
    try {
      const sub = collect(client, ChangesSubscription, { bucket, since: null });
      await sub.until(2);
      await write(bucket, ['c']);
      const items = await sub.until(3);
      expect(items.map((i) => i.changes.key)).toEqual(['a', 'b', 'c']);
      sub.stop();
    } finally {
      await client.dispose();
    }
  });

  it('from a cursor, delivers only what came after it', async () => {
    const bucket = freshBucket();
    const [, second] = await write(bucket, ['a', 'b']);
    await write(bucket, ['c']);
    const client = wsClient(node);
    try {
      const sub = collect(client, ChangesSubscription, { bucket, since: second!.change!.cursor });
      const items = await sub.until(1);
      expect(items.map((i) => i.changes.key)).toEqual(['c']);
      sub.stop();
    } finally {
      await client.dispose();
    }
  });

  it('from the bucket head cursor, delivers only new changes', async () => {
    const bucket = freshBucket();
    await write(bucket, ['old']);
    const head = (await gqlData(node, BucketInfo, { name: bucket })).bucket.changesCursor;
    const client = wsClient(node);
    try {
      const sub = collect(client, ChangesSubscription, { bucket, since: head });
      await write(bucket, ['new']);
      expect((await sub.until(1)).map((i) => i.changes.key)).toEqual(['new']);
      sub.stop();
    } finally {
      await client.dispose();
    }
  });

  it('with a keyPrefix, replays and delivers live only the changes of keys under it', async () => {
    const bucket = freshBucket();
    await write(bucket, ['mine.1', 'other.1', 'mine.2']);
    const client = wsClient(node);
    try {
      const sub = collect(client, ChangesSubscription, { bucket, since: null, keyPrefix: 'mine.' });
      await sub.until(2);
      await write(bucket, ['other.2', 'mine.3', 'other.3']);
      await write(bucket, ['mine.4']);
      const items = await sub.until(4);
      expect(items.map((i) => i.changes.key)).toEqual(['mine.1', 'mine.2', 'mine.3', 'mine.4']);
      sub.stop();
    } finally {
      await client.dispose();
    }
  });

  it('refuses an invalid cursor with INVALID_CURSOR', async () => {
    const client = wsClient(node);
    try {
      const sub = collect(client, ChangesSubscription, { bucket: freshBucket(), since: 'c1.bm9wZQ' });
      await sub.done.catch(() => undefined);
      expect(JSON.stringify(sub.errors)).toContain('INVALID_CURSOR');
    } finally {
      await client.dispose();
    }
  });
});

describe('shared encoding', () => {
  it('gives every subscriber of one operation the same message, whatever its subscription id', async () => {
    const bucket = freshBucket();
    const head = (await gqlData(node, BucketInfo, { name: bucket })).bucket.changesCursor;
    // Ids a client may choose, including one that looks like the server's internal marker.
    const ids = ['1', 'a"b', '\u0001syncgraph-payload\u0001'];
    const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws');
    const received = new Map<string, unknown>();
    const all = deferred();
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as { id?: string; type: string; payload?: unknown };
      if (message.type === 'connection_ack') {
        for (const id of ids) {
          socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: print(ChangesSubscription), variables: { bucket, since: head } } }));
        }
        void write(bucket, ['shared']);
      }
      if (message.type === 'next') received.set(message.id!, message.payload);
      if (received.size === ids.length) all.resolve();
    });
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${node.adminKey}` } })));
    await all.promise;
    socket.close();
    const payloads = ids.map((id) => received.get(id) as { data: { changes: { key: string } } });
    expect(payloads.map((p) => p.data.changes.key)).toEqual(['shared', 'shared', 'shared']);
  });
});

describe('fanout', () => {
  it('gives each of many subscribers on many sockets its own selection, filter and id, each change once, in order', async () => {
    // Live changes go to subscribers of one operation through one fused step (engine/async-map.ts):
    // subscribers of other selections, of a key prefix, or with variables in their selection,
    // must each still get exactly their own.
    const bucket = freshBucket();
    const head = (await gqlData(node, BucketInfo, { name: bucket })).bucket.changesCursor;
    const kinds = {
      keys: { query: 'subscription($b: String!, $s: Cursor) { changes(bucket: $b, since: $s) { key version } }', variables: {} },
      data: { query: 'subscription($b: String!, $s: Cursor) { changes(bucket: $b, since: $s) { key data } }', variables: {} },
      prefixed: {
        query: 'subscription($b: String!, $s: Cursor, $p: String) { changes(bucket: $b, since: $s, keyPrefix: $p) { key version } }',
        variables: { p: 'a' },
      },
    } as const;
    type Kind = keyof typeof kinds;
    const clients = Array.from({ length: 4 }, () => wsClient(node));
    const subscribers: Array<{ kind: Kind; got: Array<Record<string, unknown>>; errors: unknown[]; stop: () => void }> = [];
    const keys = Array.from({ length: 30 }, (_, i) => `${i % 3 === 0 ? 'b' : 'a'}${i}`);
    const everyone = deferred();
    const expected = (kind: Kind) => (kind === 'prefixed' ? keys.filter((k) => k.startsWith('a')).length : keys.length);
    const check = () => {
      if (subscribers.every((s) => s.got.length >= expected(s.kind))) everyone.resolve();
    };
    try {
      for (const client of clients) {
        for (const kind of Object.keys(kinds) as Kind[]) {
          for (let copy = 0; copy < 2; copy++) {
            const subscriber = { kind, got: [] as Array<Record<string, unknown>>, errors: [] as unknown[], stop: () => undefined as void };
            subscriber.stop = client.subscribe(
              { query: kinds[kind].query, variables: { b: bucket, s: head, ...kinds[kind].variables } },
              {
                next: (result) => {
                  if (result.errors) subscriber.errors.push(...result.errors);
                  subscriber.got.push((result.data as { changes: Record<string, unknown> }).changes);
                  check();
                },
                error: (error) => subscriber.errors.push(error),
                complete: () => undefined,
              },
            );
            subscribers.push(subscriber);
          }
        }
      }
      // Every subscription is live once it has a first change: send one, and wait.
      const probe = await write(bucket, ['b-probe']);
      expect(probe).toHaveLength(1);
      await new Promise<void>((resolve) => {
        const wait = () => (subscribers.filter((s) => s.kind !== 'prefixed').every((s) => s.got.length === 1) ? resolve() : setTimeout(wait, 10));
        wait();
      });
      for (const subscriber of subscribers) if (subscriber.kind !== 'prefixed') subscriber.got.shift();
      for (let i = 0; i < keys.length; i += 5) await write(bucket, keys.slice(i, i + 5));
      await everyone.promise;
      for (const subscriber of subscribers) {
        expect(subscriber.errors).toEqual([]);
        const want = subscriber.kind === 'prefixed' ? keys.filter((k) => k.startsWith('a')) : keys;
        expect(subscriber.got.map((c) => c['key'])).toEqual(want);
        for (const change of subscriber.got) {
          expect(Object.keys(change).sort()).toEqual(subscriber.kind === 'data' ? ['data', 'key'] : ['key', 'version']);
          if (subscriber.kind === 'data') expect(change['data']).toEqual({ key: change['key'] });
          else expect(change['version']).toBe(1);
        }
      }
    } finally {
      for (const subscriber of subscribers) subscriber.stop();
      await Promise.all(clients.map((client) => client.dispose()));
    }
  });
});

describe('framing', () => {
  it('delivers messages of every frame length class intact, live and replayed, on one socket', async () => {
    // The node frames its messages itself (server/ws-outbox.ts): lengths under 126 bytes, up to
    // 64 KiB (16-bit length) and beyond (64-bit length) each have their own header.
    const bucket = freshBucket();
    const head = (await gqlData(node, BucketInfo, { name: bucket })).bucket.changesCursor;
    const sizes = [0, 1_000, 70_000, 200_000, 10];
    const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws');
    const received = new Map<string, Array<{ key: string; data: { text: string } }>>([
      ['live', []],
      ['replay', []],
    ]);
    const liveDone = deferred();
    const replayDone = deferred();
    // A malformed frame is an error on the client's socket: fail at once.
    socket.on('error', (error) => {
      liveDone.reject(error);
      replayDone.reject(error);
    });
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as { id?: string; type: string; payload?: { data: { changes: { key: string; data: { text: string } } } } };
      if (message.type === 'connection_ack') {
        socket.send(JSON.stringify({ id: 'live', type: 'subscribe', payload: { query: print(ChangesSubscription), variables: { bucket, since: head } } }));
        void gqlData(node, SubmitChanges, {
          bucket,
          changes: sizes.map((size, i) => ({ ccid: hex(i), key: `k${i}`, op: 'MODIFY' as const, data: { text: 'é'.repeat(size) } })),
        }).then(() =>
          socket.send(JSON.stringify({ id: 'replay', type: 'subscribe', payload: { query: print(ChangesSubscription), variables: { bucket, since: null } } })),
        );
      }
      if (message.type !== 'next') return;
      const list = received.get(message.id!)!;
      list.push(message.payload!.data.changes);
      if (list.length === sizes.length) (message.id === 'live' ? liveDone : replayDone).resolve();
    });
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${node.adminKey}` } })));
    await Promise.all([liveDone.promise, replayDone.promise]);
    socket.close();
    for (const list of received.values()) {
      expect(list.map((c) => c.key)).toEqual(sizes.map((_, i) => `k${i}`));
      expect(list.map((c) => c.data.text)).toEqual(sizes.map((size) => 'é'.repeat(size)));
    }
  });
});

describe('resume under concurrent writes', () => {
  it('a subscriber reconnecting with its cursor while 5,000 changes are written receives each exactly once, in order', async () => {
    const bucket = freshBucket();
    const total = 5000;
    const writers = 8;
    const perRequest = 25;
    // Writers: 8 concurrent clients, 25 changes per request, until 5,000 are acknowledged.
    let next = 0;
    const acknowledged: string[] = [];
    const writer = async () => {
      while (next < total) {
        const keys: string[] = [];
        for (let i = 0; i < perRequest && next < total; i++) keys.push(`k${next++}`);
        for (const r of await write(bucket, keys)) acknowledged.push(r.change!.key!);
      }
    };
    const writing = Promise.all(Array.from({ length: writers }, writer));

    // The subscriber: reads a while, disconnects, resumes from its last cursor (twice).
    const received: Array<{ key: string; cursor: string }> = [];
    let since: string | null = null;
    for (const stopAfter of [700, 2100, total]) {
      const client = wsClient(node);
      const sub = collect(client, ChangesSubscription, { bucket, since });
      const items = await sub.until(stopAfter - received.length);
      const taken = items.slice(0, stopAfter - received.length);
      sub.stop();
      await client.dispose();
      for (const item of taken) received.push({ key: item.changes.key!, cursor: item.changes.cursor });
      since = received.at(-1)!.cursor;
    }
    await writing;
    expect(acknowledged).toHaveLength(total);
    const keys = received.map((r) => r.key);
    expect(new Set(keys).size).toBe(total);
    expect(keys).toHaveLength(total);
    // In order: exactly the bucket's change stream, as paged from disk.
    const stream: string[] = [];
    let cursor: string | null = null;
    for (;;) {
      const page: ChangesPageQuery = await gqlData(node, ChangesPage, { bucket, since: cursor, limit: 1000 });
      stream.push(...page.changes.changes.map((c) => c.key!));
      cursor = page.changes.cursor;
      if (!page.changes.hasMore) break;
    }
    expect(keys).toEqual(stream);
  });
});

describe('slow consumers', () => {
  it('ends a subscriber that falls too far behind with SLOW_CONSUMER; it resumes from its cursor', async () => {
    // A node with a tiny live queue, so that a paused client overflows it quickly.
    const small = await startNodeProcess({ args: ['--limit', 'subscriberQueueMax=5'] });
    const bucket = freshBucket();
    const socket = new WebSocket(small.wsUrl, 'graphql-transport-ws');
    const messages: Array<{ id?: string; type: string; payload?: unknown }> = [];
    const arrived = new Map<string, () => void>();
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as { id?: string; type: string; payload?: unknown };
      messages.push(message);
      arrived.get(message.type)?.();
    });
    const next = (type: string) => new Promise<void>((resolve) => arrived.set(type, resolve));
    await new Promise((resolve) => socket.once('open', resolve));
    const acked = next('connection_ack');
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${small.adminKey}` } }));
    await acked;
    const firstNext = next('next');
    socket.send(
      JSON.stringify({ id: '1', type: 'subscribe', payload: { query: print(ChangesSubscription), variables: { bucket, since: null } } }),
    );
    const big = 'x'.repeat(50_000);
    const writeBig = async (from: number, count: number) => {
      const data = await gqlData(small, SubmitChanges, {
        bucket,
        changes: Array.from({ length: count }, (_, i) => ({ ccid: hex(from + i), key: `k${from + i}`, op: 'MODIFY' as const, data: { big } })),
      });
      for (const r of data.submitChanges) expect(r.error).toBeNull();
    };
    await writeBig(0, 1);
    await firstNext;
    // Stop reading: TCP back-pressure stops the server's sends, and its queue for us overflows.
    (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    for (let i = 1; i < 400; i += 20) await writeBig(i, 20);
    const errored = next('error');
    (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.resume();
    await errored;
    const error = messages.find((m) => m.type === 'error')!;
    expect(error.id).toBe('1');
    expect(JSON.stringify(error.payload)).toContain('SLOW_CONSUMER');
    const delivered = messages.filter((m) => m.type === 'next') as Array<{ payload: { data: { changes: { key: string; cursor: string } } } }>;
    expect(delivered.length).toBeLessThan(400);
    socket.close();
    // Resume from the last cursor received: the rest arrives, each once.
    const client = wsClient(small);
    try {
      const lastCursor = delivered.at(-1)!.payload.data.changes.cursor;
      const resumed = collect(client, ChangesSubscription, { bucket, since: lastCursor });
      const rest = await resumed.until(400 - delivered.length);
      const keys = [...delivered.map((m) => m.payload.data.changes.key), ...rest.map((r) => r.changes.key!)];
      expect(keys).toEqual(Array.from({ length: 400 }, (_, i) => `k${i}`));
      resumed.stop();
    } finally {
      await client.dispose();
    }
  });
});

describe('limits', () => {
  it('refuses a subscription beyond subscriptionsMax with LIMIT_EXCEEDED', async () => {
    const small = await startNodeProcess({ args: ['--limit', 'subscriptionsMax=1'] });
    const client = wsClient(small);
    try {
      const bucket = freshBucket();
      const first = collect(client, ChangesSubscription, { bucket, since: null });
      const head = await gqlData(small, SubmitChanges, { bucket, changes: [{ ccid: 'ab01', key: 'k', op: 'MODIFY', data: {} }] });
      expect(head.submitChanges[0]!.error).toBeNull();
      await first.until(1);
      const second = collect(client, ChangesSubscription, { bucket, since: null });
      await second.done.catch(() => undefined);
      expect(JSON.stringify(second.errors)).toContain('LIMIT_EXCEEDED');
      // Unsubscribing frees the place at once, even on a quiet bucket.
      first.stop();
      const third = collect(client, ChangesSubscription, { bucket, since: null });
      expect((await third.until(1)).map((i) => i.changes.key)).toEqual(['k']);
      third.stop();
    } finally {
      await client.dispose();
    }
  });
});


describe('over server-sent events', () => {
  it('replays then streams live over SSE (POST /graphql, Accept: text/event-stream)', async () => {
    const bucket = freshBucket();
    await write(bucket, ['before']);
    const abort = new AbortController();
    const response = await fetch(node.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${node.adminKey}` },
      body: JSON.stringify({ query: print(ChangesSubscription), variables: { bucket, since: null } }),
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const keys: string[] = [];
    let buffer = '';
    let wroteLive = false;
    while (keys.length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.+)$/m.exec(event)?.[1];
        if (event.startsWith('event: next') && data) keys.push((JSON.parse(data) as { data: { changes: { key: string } } }).data.changes.key);
      }
      if (keys.length === 1 && !wroteLive) {
        wroteLive = true;
        await write(bucket, ['live']);
      }
    }
    abort.abort();
    expect(keys).toEqual(['before', 'live']);
  });

  it('frees the subscription when an SSE client goes away (whatever its Accept header)', async () => {
    const small = await startNodeProcess({ args: ['--limit', 'subscriptionsMax=1'] });
    const bucket = freshBucket();
    await gqlData(small, SubmitChanges, { bucket, changes: [{ ccid: 'ab02', key: 'k', op: 'MODIFY', data: {} }] });
    const abort = new AbortController();
    const response = await fetch(small.graphqlUrl, {
      method: 'POST',
      // `*/*` gets a stream too: the node cannot tell from the request that it will be long-lived.
      headers: { 'content-type': 'application/json', accept: '*/*', authorization: `Bearer ${small.adminKey}` },
      body: JSON.stringify({ query: print(ChangesSubscription), variables: { bucket, since: null } }),
      signal: abort.signal,
    });
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('event: next')) text += new TextDecoder().decode((await reader.read()).value);
    abort.abort();
    // The node notices the closed connection asynchronously: retry until the place is free.
    const client = wsClient(small);
    try {
      for (let attempt = 1; ; attempt++) {
        const sub = collect(client, ChangesSubscription, { bucket, since: null });
        const outcome = await Promise.race([sub.until(1).then(() => 'delivered'), sub.done.then(() => 'ended', () => 'ended')]);
        sub.stop();
        if (outcome === 'delivered') break;
        expect(JSON.stringify(sub.errors)).toContain('LIMIT_EXCEEDED');
        expect(attempt).toBeLessThan(100);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await client.dispose();
    }
  });
});
