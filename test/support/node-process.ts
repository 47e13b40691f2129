/**
 * Starts real syncgraph node processes (bin/syncgraph.js, built by `npm run build`) on ephemeral
 * ports of 127.0.0.1, and stops them after the test file. Tests talk to them with real clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));

export interface NodeProcess {
  url: string;
  graphqlUrl: string;
  wsUrl: string;
  port: number;
  adminKey: string;
  dataDir: string;
  child: ChildProcess;
  /** stdout lines so far (pino JSON and the plain banner). */
  output: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves when a stdout line matching `predicate` has arrived (including earlier lines). */
  waitForOutput(predicate: (line: string) => boolean): Promise<string>;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  dataDir?: string;
  /** Pass `null` to start without --admin-key (the node then generates or reads one). */
  adminKey?: string | null;
  args?: string[];
  env?: Record<string, string>;
  /** Flags for Node.js itself, before the script. */
  nodeFlags?: string[];
}

const started = new Set<NodeProcess>();
const tempDirs = new Set<string>();

export function tempDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'syncgraph-test-'));
  tempDirs.add(dir);
  return dir;
}

export async function startNodeProcess(options: StartOptions = {}): Promise<NodeProcess> {
  const dataDir = options.dataDir ?? tempDataDir();
  const adminKey = options.adminKey === undefined ? randomBytes(16).toString('hex') : options.adminKey;
  const args = [BIN, 'start', '--port', '0', '--data', dataDir, '--log-level', 'info', ...(options.args ?? [])];
  if (adminKey !== null) args.push('--admin-key', adminKey);
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.env?.['SYNCGRAPH_ADMIN_KEY'] === undefined) delete env['SYNCGRAPH_ADMIN_KEY'];
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const output: string[] = [];
  const outputWaiters: Array<{ predicate: (line: string) => boolean; resolve: (line: string) => void }> = [];
  const errors: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => errors.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = await new Promise<{ url: string }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      output.push(line);
      for (const w of [...outputWaiters]) {
        if (w.predicate(line)) {
          outputWaiters.splice(outputWaiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'syncgraph listening' && entry.url) resolve({ url: entry.url });
    });
    void exited.then((code) => reject(new Error(`node exited with ${code} before listening:\n${errors.join('\n')}`)));
  });
  const graphqlUrl = listening.url;
  const url = graphqlUrl.replace(/\/graphql$/, '');
  const node: NodeProcess = {
    url,
    graphqlUrl,
    wsUrl: graphqlUrl.replace(/^http/, 'ws'),
    port: Number(new URL(url).port),
    adminKey: adminKey ?? '',
    dataDir,
    child,
    output,
    exited,
    waitForOutput(predicate) {
      const seen = output.find(predicate);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve) => outputWaiters.push({ predicate, resolve }));
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      started.delete(node);
      return code;
    },
  };
  started.add(node);
  return node;
}

/** Call from `afterAll`: kills what is still running and removes temporary data directories. */
export async function cleanupNodes(): Promise<void> {
  await Promise.all([...started].map((n) => n.stop('SIGKILL')));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
