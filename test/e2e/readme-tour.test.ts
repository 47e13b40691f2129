/**
 * The README's short tour, run as written: its curl requests (the body each sends, read out of
 * README.md) against a real node that generated its own admin key, and its subscription over
 * graphql-ws. A newcomer follows these steps first; when the README or the API drifts, this fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { wsClient } from '../support/client.js';
import { startNodeProcess, type NodeProcess } from '../support/node-process.js';

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** The tour's section of the README, up to the next `## ` heading. */
function tour(): string {
  const start = README.indexOf('## A short tour');
  expect(start).toBeGreaterThanOrEqual(0);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The bodies of the tour's curl commands (`-d '…'`), in order. */
function curlBodies(section: string): string[] {
  return [...section.matchAll(/curl [^`]*?-d '([^']*)'/g)].map((m) => m[1]!);
}

/** The tour's GraphQL code blocks. */
function graphqlBlocks(section: string): string[] {
  return [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
}

let node: NodeProcess | undefined;
afterAll(async () => {
  await node?.stop();
});

async function post(body: string, key: string) {
  const response = await fetch(node!.graphqlUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { data?: { submitChanges: Array<Record<string, unknown>> }; errors?: unknown };
}

describe("the README's short tour", () => {
  it('works as written: a write, its retry answered as a duplicate, an edit, and both arriving on the subscription', async () => {
    const section = tour();
    const bodies = curlBodies(section);
    const [subscription] = graphqlBlocks(section);
    expect(bodies).toHaveLength(2);
    expect(subscription).toMatch(/^subscription/);
    expect(section).toContain('cat data/admin-key');

    // `npm start` with no key: the node makes one and keeps it in its data directory.
    node = await startNodeProcess({ adminKey: null });
    const key = readFileSync(join(node.dataDir, 'admin-key'), 'utf8').trim();

    // The browser's subscription, over graphql-ws.
    const client = wsClient(node, key);
    const received: Array<{ key: string; version: number; op: string; data: { title: string }; cursor: string }> = [];
    let errors: unknown;
    let wake: (() => void) | undefined;
    const stop = client.subscribe(
      { query: subscription! },
      {
        next: (result) => {
          if (result.errors) errors = result.errors;
          const change = (result.data as { changes?: (typeof received)[number] } | undefined)?.changes;
          if (change) received.push(change);
          wake?.();
        },
        error: (error) => {
          errors = error;
          wake?.();
        },
        complete: () => undefined,
      },
    );
    try {
      const first = await post(bodies[0]!, key);
      expect(first.errors).toBeUndefined();
      expect(first.data!.submitChanges[0]).toMatchObject({ duplicate: false, error: null, change: { version: 1 } });
      // Sent again: the original change, not a second one.
      const again = await post(bodies[0]!, key);
      expect(again.data!.submitChanges[0]).toMatchObject({ duplicate: true, error: null, change: { version: 1 } });

      const edit = await post(bodies[1]!, key);
      expect(edit.errors).toBeUndefined();
      expect(edit.data!.submitChanges[0]).toMatchObject({ change: { version: 2, data: { title: 'Hello, world' } } });

      while (received.length < 2 && errors === undefined) await new Promise<void>((resolve) => (wake = resolve));
      expect(errors).toBeUndefined();
      expect(received.map((c) => [c.key, c.version, c.op, c.data.title])).toEqual([
        ['n1', 1, 'MODIFY', 'Hello'],
        ['n1', 2, 'MODIFY', 'Hello, world'],
      ]);
      expect(received[1]!.cursor).not.toBe(received[0]!.cursor);
    } finally {
      stop();
      await client.dispose();
    }
  });
});
