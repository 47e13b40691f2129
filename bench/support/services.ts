/**
 * The processes under test: the real syncgraph node (bin/syncgraph.js) and the bare yoga server
 * (dist/bench/baselines/bare-server.js), each a child process on an ephemeral port of 127.0.0.1.
 * Every child and temporary directory is registered here and removed on any exit of the bench
 * (normal end, error, Ctrl-C), see `installCleanup`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BARE_SERVER, EXTRA_NODE_FLAGS, NODE_BIN, NODE_FLAGS } from '../config.js';
import { collectGarbage, evaluate, inspectorUrlIn } from './inspector.js';

export interface Service {
  name: string;
  pid: number;
  graphqlUrl: string;
  wsUrl: string;
  token: string;
  /** Last lines of stderr and stdout, for error reports. */
  tail(): string;
  /** A full garbage collection in the server (through its inspector), before a memory reading. */
  collectGarbage(): Promise<void>;
  /** Evaluates a line of JavaScript in the server (through its inspector); resolves with its value. */
  evaluate(expression: string): Promise<unknown>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Kills what is left and removes temporary directories; synchronous, so it works in 'exit'. */
export function cleanupSync(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

let installed = false;
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n[bench] ${signal}: stopping children and removing temp dirs\n`);
      process.exit(130);
    });
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`[bench] uncaught: ${error.stack ?? String(error)}\n`);
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    process.stderr.write(`[bench] unhandled rejection: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}

/** Every server gets an inspector on an ephemeral port, for forced GCs (support/inspector.ts). */
const INSPECT = '--inspect=127.0.0.1:0';

interface SpawnOptions {
  name: string;
  args: string[];
  token: string;
  /** Whether a stdout line (parsed JSON) announces readiness; returns the GraphQL URL. */
  ready: (line: Record<string, unknown>) => string | undefined;
  timeoutMs?: number;
}

/**
 * Watches a server child process: registered for cleanup on any exit, its last `tailLines` lines of
 * output kept (for error messages), and a promise of its exit.
 */
export function supervise(child: ChildProcess, tailLines: number): { keep: (line: string) => void; tail: () => string; exited: Promise<void> } {
  children.add(child);
  const lines: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > tailLines) lines.shift();
  };
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      keep(`exited: code ${code} signal ${signal}`);
      resolve();
    }),
  );
  return { keep, tail: () => lines.join('\n'), exited };
}

async function spawnService(options: SpawnOptions): Promise<Service> {
  const child = spawn(process.execPath, options.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  const { keep, tail, exited } = supervise(child, 40);
  let inspectorUrl: string | undefined;
  createInterface({ input: child.stderr! }).on('line', (line) => {
    inspectorUrl ??= inspectorUrlIn(line);
    keep(`stderr: ${line}`);
  });
  const graphqlUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${options.name} did not start in time:\n${tail()}`)), options.timeoutMs ?? 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      if (!line.startsWith('{')) return;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      const url = options.ready(entry);
      if (url !== undefined) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited before listening:\n${tail()}`));
    });
  });
  return {
    name: options.name,
    pid: child.pid!,
    graphqlUrl,
    wsUrl: graphqlUrl.replace(/^http/, 'ws'),
    token: options.token,
    tail,
    async collectGarbage() {
      if (inspectorUrl === undefined) throw new Error(`${options.name} has no inspector:\n${tail()}`);
      await collectGarbage(inspectorUrl);
    },
    async evaluate(expression: string) {
      if (inspectorUrl === undefined) throw new Error(`${options.name} has no inspector:\n${tail()}`);
      return evaluate(inspectorUrl, expression);
    },
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The real node, on a fresh data directory; `extraArgs` are more `start` flags. */
export async function startSyncgraph(extraArgs: readonly string[] = []): Promise<Service & { dataDir: string }> {
  const dataDir = tempDir('syncgraph-bench-');
  const token = randomBytes(16).toString('hex');
  const service = await spawnService({
    name: 'syncgraph',
    args: [INSPECT, ...NODE_FLAGS, ...EXTRA_NODE_FLAGS, NODE_BIN, 'start', '--port', '0', '--data', dataDir, '--admin-key', token, '--log-level', 'info', ...extraArgs],
    token,
    ready: (entry) => (entry['msg'] === 'syncgraph listening' && typeof entry['url'] === 'string' ? entry['url'] : undefined),
  });
  return { ...service, dataDir };
}

/** The bare graphql-yoga + graphql-ws server (baseline). */
export async function startBareServer(): Promise<Service> {
  const token = randomBytes(16).toString('hex');
  return spawnService({
    name: 'bare server',
    args: [INSPECT, ...NODE_FLAGS, BARE_SERVER, '--port', '0', '--key', token],
    token,
    ready: (entry) => (entry['msg'] === 'bare server listening' && typeof entry['url'] === 'string' ? entry['url'] : undefined),
  });
}
