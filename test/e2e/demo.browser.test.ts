/**
 * The demo app in a real browser (Debian's Chromium through playwright-core), against a real
 * node: two users edit the same note, one of them offline (the browser's network emulation),
 * then come back online; both pages end up showing the same text, which holds both edits.
 * Screenshots of the converged pages are written to test-output/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setUpDemo, type DemoConfig } from '../../src/dev/demo-setup.js';
import { repoRoot, startDemoServer, type DemoServer } from '../../src/dev/demo-server.js';
import { launchBrowser } from '../support/browser.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';

let node: NodeProcess;
let demo: DemoServer;
let config: DemoConfig;
let browser: Browser;
const contexts: BrowserContext[] = [];
const OUTPUT = join(repoRoot(), 'test-output');

beforeAll(async () => {
  node = await startNodeProcess();
  config = await setUpDemo(node.graphqlUrl, node.adminKey);
  demo = await startDemoServer({ nodeUrl: node.url, config, port: 0 });
  browser = await launchBrowser();
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => undefined);
  await browser?.close();
  await demo?.close();
  await cleanupNodes();
});

async function open(user: string): Promise<{ page: Page; context: BrowserContext; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${demo.url}?user=${user}`);
  await expect.poll(() => page.getByTestId('status').getAttribute('data-state'), { timeout: 30_000 }).toBe('saved');
  expect(errors).toEqual([]);
  return { page, context, errors };
}

const body = (page: Page) => page.getByTestId('body').inputValue();
const status = (page: Page) => page.getByTestId('status').getAttribute('data-state');

describe('the demo in a real browser', () => {
  it('two pages edit one note, one offline; back online, both show both edits', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    expect(await alice.page.getByTestId('who').textContent()).toContain('alice');

    // Alice writes a note; Bob sees it arrive and opens it.
    await alice.page.getByTestId('new-note').click();
    await alice.page.getByTestId('title').fill('Shopping');
    await alice.page.getByTestId('body').fill('bread');
    await expect.poll(() => status(alice.page)).toBe('saved');
    const bobsEntry = bob.page.getByTestId('notes').getByRole('button', { name: 'Shopping' });
    await bobsEntry.waitFor({ timeout: 20_000 });
    await bobsEntry.click();
    await expect.poll(() => body(bob.page)).toBe('bread');

    // Alice loses her network and edits the end; Bob edits the start and it is saved.
    await alice.context.setOffline(true);
    await expect.poll(() => status(alice.page), { timeout: 20_000 }).toBe('offline');
    await alice.page.getByTestId('body').fill('bread and milk');
    await expect.poll(() => alice.page.getByTestId('status').textContent()).toMatch(/pending/);
    await bob.page.getByTestId('body').fill('eggs, bread');
    await expect.poll(() => status(bob.page)).toBe('saved');
    // Offline, Alice's page still shows only her own edit.
    expect(await body(alice.page)).toBe('bread and milk');

    // Back online: both converge on one text holding both edits.
    await alice.context.setOffline(false);
    await expect.poll(() => status(alice.page), { timeout: 30_000 }).toBe('saved');
    await expect.poll(async () => [await body(alice.page), await body(bob.page)], { timeout: 30_000 }).toEqual([
      'eggs, bread and milk',
      'eggs, bread and milk',
    ]);
    await expect.poll(() => status(bob.page)).toBe('saved');

    expect([...alice.errors, ...bob.errors]).toEqual([]);
    mkdirSync(OUTPUT, { recursive: true });
    await alice.page.screenshot({ path: join(OUTPUT, 'demo-converged-alice.png') });
    await bob.page.screenshot({ path: join(OUTPUT, 'demo-converged-bob.png') });

    // The node holds the same: one note, with the merged text.
    const response = await fetch(node.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${node.adminKey}`, 'x-syncgraph-app': config.app },
      body: JSON.stringify({ query: `{ entities(bucket: "${config.bucket}") { data } }` }),
    });
    const listed = (await response.json()) as { data: { entities: Array<{ data: { title: string; body: string } }> } };
    expect(listed.data.entities.map((e) => [e.data.title, e.data.body])).toEqual([['Shopping', 'eggs, bread and milk']]);
  });
  it('shares one live connection between two tabs of one user, each with its own local copy', async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
    contexts.push(context);
    const sockets: string[] = [];
    context.on('page', (page) => page.on('websocket', (socket) => sockets.push(socket.url())));
    const errors: string[] = [];
    const tab = async () => {
      const page = await context.newPage();
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${demo.url}?user=bob`);
      await expect.poll(() => status(page), { timeout: 30_000 }).toBe('saved');
      return page;
    };
    const first = await tab();
    const second = await tab();
    await first.getByTestId('new-note').click();
    await first.getByTestId('title').fill('Shared tabs');
    await first.getByTestId('body').fill('one connection');
    const entry = second.getByTestId('notes').getByRole('button', { name: 'Shared tabs' });
    await entry.waitFor({ timeout: 20_000 });
    await entry.click();
    await expect.poll(() => body(second)).toBe('one connection');
    // The GraphQL socket (Vite's own dev socket aside) was opened once, by the leader tab.
    expect(sockets.filter((url) => url.includes('/graphql'))).toHaveLength(1);
    expect(errors).toEqual([]);
  });
});
