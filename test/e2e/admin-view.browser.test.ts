/**
 * The read-only admin page (GET /admin) of a real three-node cluster, in a real browser: behind
 * the node admin key (HTTP Basic), it shows the members, the partitions held with their replicas,
 * and a live chart of change throughput that moves while changes are written. A screenshot goes
 * to test-output/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/dev/demo-server.js';
import { launchBrowser } from '../support/browser.js';
import { rawPost } from '../support/client.js';
import { startCluster, waitForRing, type TestCluster } from '../support/cluster.js';
import { cleanupNodes } from '../support/node-process.js';

let cluster: TestCluster;
let browser: Browser;

beforeAll(async () => {
  cluster = await startCluster({ size: 3 });
  await waitForRing(cluster, 3);
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await cleanupNodes();
});

describe('the admin page', () => {
  it('is refused without the admin key', async () => {
    const node = cluster.node(0);
    const anonymous = await fetch(`${node.url}/admin`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="syncgraph admin"/);
    const wrong = await fetch(`${node.url}/admin/status.json`, { headers: { authorization: `Basic ${Buffer.from('admin:not-the-key').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    const page = await fetch(`${node.url}/admin`, { headers: { authorization: `Basic ${Buffer.from(`admin:${node.adminKey}`).toString('base64')}` } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  });

  it('shows the members, the partitions and a live throughput chart', async () => {
    const node = cluster.node(0);
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: node.adminKey }, viewport: { width: 1000, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${node.url}/admin`);
    await expect.poll(() => page.getByTestId('members').locator('tbody tr').count()).toBe(3);
    const members = await page.getByTestId('members').locator('tbody').textContent();
    for (const id of ['node1', 'node2', 'node3']) expect(members).toContain(id);
    expect(members).toContain('(this node)');

    // Writes through the node: its partitions appear with their replicas, and the rate rises.
    let seq = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const changes = Array.from({ length: 20 }, () => ({ ccid: (++seq).toString(16).padStart(10, '0'), key: `k${seq}`, op: 'MODIFY', data: { seq } }));
        const result = await rawPost(node, { query: 'mutation($c: [ChangeInput!]!) { submitChanges(bucket: "admin-view", changes: $c) { ccid } }', variables: { c: changes } });
        expect(result.errors).toBeUndefined();
      }
    })();
    try {
      await expect.poll(() => page.getByTestId('partitions').locator('tbody').textContent(), { timeout: 20_000 }).toContain('default/admin-view');
      await expect.poll(async () => Number(/^([\d.]+) changes\/s/.exec((await page.getByTestId('rate').textContent()) ?? '')?.[1] ?? 0), { timeout: 20_000 }).toBeGreaterThan(0);
      const row = await page.getByTestId('partitions').locator('tbody tr', { hasText: 'default/admin-view' }).textContent();
      expect(row).toMatch(/node\d, node\d, node\d/);
      // The chart draws a line across the seconds of the load: pixels of its colour.
      const drawn = () =>
        page.getByTestId('chart').evaluate((canvas: HTMLCanvasElement) => {
          const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          let blue = 0;
          for (let i = 0; i < data.length; i += 4) if (data[i + 2]! > 150 && data[i]! < 100) blue++;
          return blue;
        });
      await expect.poll(drawn, { timeout: 20_000 }).toBeGreaterThan(50);
    } finally {
      writing = false;
      await writer;
    }
    expect(errors).toEqual([]);
    const output = join(repoRoot(), 'test-output');
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: join(output, 'admin-view.png'), fullPage: true });
    await context.close();
  });
});
