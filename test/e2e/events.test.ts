/**
 * Black-box: Simple Sync events. Validation of every rule, a repeated uuid stored once, the
 * authoritative history returned by a push, paging, and the live events subscription.
 */
import { uuidv7 } from 'uuidv7';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, gql, gqlData, wsClient } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { EventsPage, EventsSubscription, PushEvents } from '../support/operations.js';
import type { EventInput } from '../generated/graphql.js';

let node: NodeProcess;
let n = 0;
const freshBucket = () => `ev${++n}-${Date.now().toString(36)}`;

/** A valid event: a fresh UUIDv7 and its embedded millisecond timestamp. */
function event(overrides: Partial<EventInput> = {}): EventInput {
  const uuid = uuidv7();
  const timestamp = BigInt('0x' + uuid.slice(0, 8) + uuid.slice(9, 13)).toString();
  return { uuid, timestamp, user: 'alice', item: 'todo.1', action: 'todo:create', payload: '{"title":"milk"}', ...overrides };
}

beforeAll(async () => {
  node = await startNodeProcess();
});
afterAll(cleanupNodes);

describe('pushEvents', () => {
  it('accepts valid events and returns the authoritative history with a cursor', async () => {
    const bucket = freshBucket();
    const [a, b] = [event(), event({ action: 'todo:done', payload: '{}' })];
    const pushed = (await gqlData(node, PushEvents, { bucket, events: [a, b] })).pushEvents;
    expect(pushed.rejected).toEqual([]);
    expect(pushed.accepted.map((e) => e.uuid)).toEqual([a.uuid, b.uuid]);
    expect(pushed.history.map((e) => e.uuid)).toEqual([a.uuid, b.uuid]);
    expect(pushed.hasMore).toBe(false);
    const c = event();
    const again = (await gqlData(node, PushEvents, { bucket, events: [c], since: pushed.cursor })).pushEvents;
    expect(again.history.map((e) => e.uuid)).toEqual([c.uuid]);
  });

  it('rejects each invalid event with its reason and stores the rest', async () => {
    const bucket = freshBucket();
    const good = event();
    const future = (() => {
      const ms = Date.now() + 3 * 86_400_000;
      const hex = ms.toString(16).padStart(12, '0');
      const base = uuidv7();
      return { uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}${base.slice(13)}`, timestamp: String(ms) };
    })();
    const v4 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    const cases: Array<[string, EventInput, string]> = [
      ['not a UUIDv7', { ...event(), uuid: v4 }, 'INVALID_INPUT'],
      ['not a UUID', { ...event(), uuid: 'hello' }, 'INVALID_INPUT'],
      ['timestamp not an integer', { ...event(), timestamp: '12.5' }, 'INVALID_INPUT'],
      ['timestamp over uint64', { ...event(), timestamp: '18446744073709551616' }, 'INVALID_INPUT'],
      ['timestamp not the uuid time', { ...event(), timestamp: '1' }, 'INVALID_INPUT'],
      ['timestamp far in the future', event(future), 'INVALID_INPUT'],
      ['user with a space', event({ user: 'al ice' }), 'INVALID_INPUT'],
      ['empty item', event({ item: '' }), 'INVALID_INPUT'],
      ['action with a bang', event({ action: 'do!' }), 'INVALID_INPUT'],
      ['reserved user', event({ user: '.root' }), 'INVALID_PERMISSION'],
      ['reserved item', event({ item: '.acl' }), 'INVALID_PERMISSION'],
      ['reserved action', event({ action: '.acl.addRule' }), 'INVALID_PERMISSION'],
      ['payload not JSON', event({ payload: '{nope' }), 'INVALID_INPUT'],
      ['payload an array', event({ payload: '[1,2]' }), 'INVALID_INPUT'],
      ['payload a string', event({ payload: '"x"' }), 'INVALID_INPUT'],
    ];
    const pushed = (await gqlData(node, PushEvents, { bucket, events: [good, ...cases.map(([, e]) => e)] })).pushEvents;
    expect(pushed.accepted.map((e) => e.uuid)).toEqual([good.uuid]);
    expect(pushed.rejected.map((r) => r.code)).toEqual(cases.map(([, , code]) => code));
    expect(pushed.rejected.map((r) => r.uuid)).toEqual(cases.map(([, e]) => e.uuid));
    const page = (await gqlData(node, EventsPage, { bucket })).events;
    expect(page.events.map((e) => e.uuid)).toEqual([good.uuid]);
  });

  it('stores a repeated uuid once, within a push and across pushes', async () => {
    const bucket = freshBucket();
    const a = event();
    const first = (await gqlData(node, PushEvents, { bucket, events: [a, a] })).pushEvents;
    expect(first.accepted.map((e) => e.uuid)).toEqual([a.uuid, a.uuid]);
    const second = (await gqlData(node, PushEvents, { bucket, events: [{ ...a, payload: '{"changed":true}' }] })).pushEvents;
    expect(second.accepted[0]!.payload).toBe(a.payload);
    expect(second.history.map((e) => e.uuid)).toEqual([a.uuid]);
  });

  it('pages the history and refuses a changes cursor', async () => {
    const bucket = freshBucket();
    const events = Array.from({ length: 5 }, () => event());
    await gqlData(node, PushEvents, { bucket, events });
    const p1 = (await gqlData(node, EventsPage, { bucket, limit: 2 })).events;
    const p2 = (await gqlData(node, EventsPage, { bucket, limit: 10, since: p1.cursor })).events;
    expect([...p1.events, ...p2.events].map((e) => e.uuid)).toEqual(events.map((e) => e.uuid));
    expect([p1.hasMore, p2.hasMore]).toEqual([true, false]);
    const wrong = await gql(node, EventsPage, { bucket, since: 'c1.' + Buffer.from(`default/${bucket}|`).toString('base64url') });
    expect(wrong.errors?.[0]?.extensions?.code).toBe('INVALID_CURSOR');
  });

  it('streams the history then new events over the events subscription', async () => {
    const bucket = freshBucket();
    const first = event();
    await gqlData(node, PushEvents, { bucket, events: [first] });
    const client = wsClient(node);
    try {
      const sub = collect(client, EventsSubscription, { bucket, since: null });
      await sub.until(1);
      const second = event();
      await gqlData(node, PushEvents, { bucket, events: [second] });
      const items = await sub.until(2);
      expect(items.map((i) => i.events.uuid)).toEqual([first.uuid, second.uuid]);
      sub.stop();
    } finally {
      await client.dispose();
    }
  });
});
