/**
 * Serves the demo app (demo/, built by Vite) next to a node. The page talks to the node through
 * Vite's proxy on its own origin, HTTP and WebSocket alike, so the node needs no CORS setting.
 * The SDK is imported from its TypeScript source (`syncgraph/client` is aliased to it), so the
 * demo uses exactly the public SDK as it is in this checkout.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { DemoConfig } from './demo-setup.js';

/** The checkout's root: this file runs from src/dev (tests) or dist/src/dev (npm run demo). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'syncgraph') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('demo: cannot find the syncgraph checkout');
    dir = parent;
  }
}

export interface DemoServer {
  url: string;
  close(): Promise<void>;
}

export interface DemoServerOptions {
  /** The node's base URL, e.g. http://127.0.0.1:4000 (its API is at /graphql). */
  nodeUrl: string;
  config: DemoConfig;
  host?: string;
  /** 0: any free port. @default 5173 */
  port?: number;
}

export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  // Vite is a development dependency: loaded only here, never by the node itself.
  const { createServer } = await import('vite');
  const root = repoRoot();
  const host = options.host ?? '127.0.0.1';
  const server = await createServer({
    configFile: false,
    root: join(root, 'demo'),
    logLevel: 'warn',
    clearScreen: false,
    define: { __SYNCGRAPH_DEMO__: JSON.stringify(options.config) },
    resolve: { alias: { 'syncgraph/client': join(root, 'src/client/index.ts') } },
    server: {
      host,
      port: options.port ?? 5173,
      strictPort: options.port !== undefined && options.port !== 0,
      hmr: false,
      proxy: {
        '/graphql': {
          target: options.nodeUrl,
          ws: true,
          // A socket reset when a page or the node goes away is expected: the page shows it as
          // offline; no need for a stack trace on the console.
          configure: (proxy) => {
            proxy.on('error', () => undefined);
          },
        },
      },
      // The SDK's source lives outside demo/.
      fs: { allow: [root] },
    },
  });
  await server.listen();
  const address = server.httpServer?.address() as AddressInfo | null;
  if (address === null || address === undefined) throw new Error('demo: the server has no address');
  return { url: `http://${host}:${address.port}/`, close: () => server.close() };
}
