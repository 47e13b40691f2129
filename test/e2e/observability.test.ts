/**
 * Black-box: what an operator watches. /health and /ready, and GET /metrics in Prometheus format:
 * who may read it, and that its counters and gauges follow what the node really did.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, gql, gqlData, rawPost, wsClient } from '../support/client.js';
import { metric, parseMetrics, scrape } from '../support/metrics.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { ChangesSubscription, GetEntity, SubmitChanges } from '../support/operations.js';

const METRICS_TOKEN = 'prometheus-scrapes-here-0123';
let node: NodeProcess;
let n = 0;
const hex = () => (++n).toString(16).padStart(8, '0') + Math.floor(Math.random() * 2 ** 32).toString(16);

beforeAll(async () => {
  node = await startNodeProcess({ args: ['--metrics-token', METRICS_TOKEN] });
});
afterAll(cleanupNodes);

describe('health and readiness', () => {
  it('answers /health and /ready on a running single node', async () => {
    const health = await fetch(`${node.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const ready = await fetch(`${node.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', reasons: [] });
  });
});

describe('GET /metrics', () => {
  it('is for the admin key and the metrics token only; the token opens nothing else', async () => {
    expect((await fetch(`${node.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${node.url}/metrics`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status).toBe(401);
    const byToken = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(byToken.status).toBe(200);
    expect(byToken.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metric(parseMetrics(await byToken.text()), 'syncgraph_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect((await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${node.adminKey}` } })).status).toBe(200);
    const graphql = await gql(node, SubmitChanges, { bucket: 'b', changes: [] }, { token: METRICS_TOKEN });
    expect(graphql.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('counts operations, changes by result and reason, errors by code, and group commits', async () => {
    const before = await scrape(node.url, node.adminKey);
    const bucket = `m${Date.now().toString(36)}`;
    const first = hex();
    const submitted = await gqlData(node, SubmitChanges, {
      bucket,
      changes: [
        { ccid: first, key: 'a', op: 'MODIFY', data: { n: 1 } },
        { ccid: hex(), key: 'b', op: 'MODIFY', data: { n: 2 } },
        { ccid: hex(), key: 'missing', op: 'DELETE' },
      ],
    });
    expect(submitted.submitChanges.map((r) => r.error?.code ?? 'ok')).toEqual(['ok', 'ok', 'MISSING_ENTITY']);
    const again = await gqlData(node, SubmitChanges, { bucket, changes: [{ ccid: first, key: 'a', op: 'MODIFY', data: { n: 1 } }] });
    expect(again.submitChanges[0]!.duplicate).toBe(true);
    // One request that does not parse, one that does not validate.
    expect((await rawPost(node, { query: 'query {' })).errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    expect((await rawPost(node, { query: '{ noSuchField }' })).errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

    const after = await scrape(node.url, node.adminKey);
    const delta = (name: string, labels: Record<string, string> = {}) => metric(after, name, labels) - metric(before, name, labels);
    expect(delta('syncgraph_graphql_operations_total', { operation: 'submitChanges', type: 'mutation' })).toBe(2);
    expect(delta('syncgraph_changes_total', { result: 'applied' })).toBe(2);
    expect(delta('syncgraph_changes_total', { result: 'duplicate' })).toBe(1);
    expect(delta('syncgraph_changes_total', { result: 'rejected' })).toBe(1);
    expect(delta('syncgraph_changes_rejected_total', { reason: 'MISSING_ENTITY' })).toBe(1);
    expect(delta('syncgraph_graphql_errors_total', { operation: 'none', code: 'GRAPHQL_PARSE_FAILED' })).toBe(1);
    expect(delta('syncgraph_graphql_errors_total', { operation: 'none', code: 'GRAPHQL_VALIDATION_FAILED' })).toBe(1);
    // The two writing requests were committed (each change durably, in one or more group commits).
    expect(delta('syncgraph_commit_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(delta('syncgraph_commit_batch_operations_sum')).toBeGreaterThanOrEqual(4);
    expect(metric(after, 'syncgraph_storage_bytes')).toBeGreaterThan(0);
  });

  it('shows the read cache: its budget (--cache-mb), what it holds, and the reads it answered', async () => {
    const small = await startNodeProcess({ args: ['--cache-mb', '2'] });
    const bucket = `c${Date.now().toString(36)}`;
    await gqlData(small, SubmitChanges, { bucket, changes: [{ ccid: hex(), key: 'k', op: 'MODIFY', data: { text: 'x'.repeat(1000) } }] });
    const before = await scrape(small.url, small.adminKey);
    expect(metric(before, 'syncgraph_read_cache_bytes', { stat: 'budget' })).toBe(2 * 1024 * 1024);
    // Written, not read: not cached. The first read misses it and caches it (with what else the
    // read consults); the same read again finds it in the cache: fewer misses, at least one hit.
    // (Keys that do not exist are never cached: LevelDB's Bloom filter answers those as fast.)
    const lookups = (samples: typeof before, result: string) => metric(samples, 'syncgraph_read_cache_lookups_total', { result });
    expect((await gqlData(small, GetEntity, { bucket, key: 'k' })).entity?.version).toBe(1);
    const once = await scrape(small.url, small.adminKey);
    const firstMisses = lookups(once, 'miss') - lookups(before, 'miss');
    expect(firstMisses).toBeGreaterThanOrEqual(1);
    expect(metric(once, 'syncgraph_read_cache_bytes', { stat: 'used' }) - metric(before, 'syncgraph_read_cache_bytes', { stat: 'used' })).toBeGreaterThan(1000);
    expect((await gqlData(small, GetEntity, { bucket, key: 'k' })).entity?.version).toBe(1);
    const twice = await scrape(small.url, small.adminKey);
    expect(lookups(twice, 'miss') - lookups(once, 'miss')).toBeLessThan(firstMisses);
    expect(lookups(twice, 'hit') - lookups(once, 'hit')).toBeGreaterThanOrEqual(1);
  });

  it('shows live subscriptions while they are open', async () => {
    const bucket = `s${Date.now().toString(36)}`;
    const live = async () => metric(await scrape(node.url, METRICS_TOKEN), 'syncgraph_subscriptions_live');
    const baseline = await live();
    const client = wsClient(node);
    try {
      const sub = collect(client, ChangesSubscription, { bucket, since: null });
      await gqlData(node, SubmitChanges, { bucket, changes: [{ ccid: hex(), key: 'k', op: 'MODIFY', data: {} }] });
      await sub.until(1);
      expect(await live()).toBe(baseline + 1);
      const after = await scrape(node.url, METRICS_TOKEN);
      expect(metric(after, 'syncgraph_graphql_operations_total', { operation: 'changes', type: 'subscription' })).toBeGreaterThanOrEqual(1);
      sub.stop();
      await expect.poll(live).toBe(baseline);
    } finally {
      await client.dispose();
    }
  });
});

describe('the Grafana dashboard (docs/grafana-dashboard.json)', () => {
  it('queries only metrics the node exports', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: Array<{ targets: Array<{ expr: string }> }>;
    };
    const queried = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/syncgraph_[a-z0-9_]+/g)].map((m) => m[0]))));
    const response = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const declared = new Set([...(await response.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));
    const base = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    expect(queried.size).toBeGreaterThan(10);
    expect([...queried].filter((name) => !declared.has(name) && !declared.has(base(name)))).toEqual([]);
  });
});
