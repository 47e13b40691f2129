/**
 * Moving a node's data in and out, with a progress display on a terminal:
 * - `syncgraph backup`: a consistent snapshot of a running node (GET /admin/backup), written to a
 *   file and checked whole before it gets its name; `syncgraph restore`: a backup file into an
 *   empty data directory, for a node to start on.
 * - `syncgraph export` / `import`: an app or a bucket as NDJSON (server/export.ts), from and into
 *   running nodes. An import file is checked whole before anything is sent.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { Command, Option } from 'commander';
import { restoreLines, splitLines } from '../storage/backup.js';
import { LevelStore } from '../storage/level-store.js';
import { EXPORT_FORMAT, parseExportLine } from '../server/export.js';
import { progressBar } from './cluster-commands.js';

/** Counts the bytes going through, for a progress display. */
function counter(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      onBytes(total);
      done(null, chunk);
    },
  });
}

/** Redraws one status line on a terminal, at most every 100 ms; silent otherwise. */
function statusLine(): { show(text: string): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let shown = false;
  return {
    show(text) {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      shown = true;
      process.stderr.write(`\r${text}\x1b[K`);
    },
    end() {
      if (shown) process.stderr.write('\n');
    },
  };
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** The lines of a backup file. */
function fileLines(file: string, onBytes?: (bytes: number) => void): AsyncGenerator<string> {
  const gunzip = createGunzip();
  const source = createReadStream(file);
  const tapped = onBytes === undefined ? source : source.pipe(counter(onBytes));
  tapped.on('error', (error: Error) => gunzip.destroy(error));
  gunzip.setEncoding('utf8');
  return splitLines(tapped.pipe(gunzip) as AsyncIterable<string>);
}

/**
 * GETs `path` of the node into `out`: written to `out.partial`, checked whole by `check`, and only
 * then given its name, so that a transfer cut short never looks like a finished file.
 */
async function download<T>(url: string, adminKey: string, path: string, out: string, label: string, check: (file: string) => Promise<T>): Promise<T> {
  const response = await fetch(`${baseUrl(url)}${path}`, { headers: { authorization: `Bearer ${adminKey}` } });
  if (!response.ok || response.body === null) throw new Error(`the node answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
  const partial = `${out}.partial`;
  const line = statusLine();
  try {
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
      counter((bytes) => line.show(`${label}: ${mib(bytes)} received`)),
      createWriteStream(partial, { mode: 0o600 }),
    );
    line.end();
    const checked = await check(partial);
    await rename(partial, out);
    return checked;
  } catch (error) {
    line.end();
    rmSync(partial, { force: true });
    throw error;
  }
}

const baseUrl = (url: string) => url.replace(/\/(graphql)?$/, '');

export async function backup(url: string, adminKey: string, out: string): Promise<{ file: string; nodeId: string; createdAt: string; entries: number; bytes: number }> {
  const checked = await download(url, adminKey, '/admin/backup', out, 'backup', (file) => restoreLines(fileLines(file), undefined));
  return { file: out, nodeId: checked.header.nodeId, createdAt: checked.header.createdAt, entries: checked.entries, bytes: statSync(out).size };
}

export async function restore(file: string, dataDir: string): Promise<{ dataDir: string; nodeId: string; createdAt: string; entries: number }> {
  const dbDir = join(dataDir, 'db');
  if (existsSync(dbDir) && readdirSync(dbDir).length > 0) {
    throw new Error(`${dataDir} already holds a node's data: restore into a new, empty data directory`);
  }
  const size = statSync(file).size;
  mkdirSync(dataDir, { recursive: true });
  const store = await LevelStore.open(dbDir);
  const line = statusLine();
  let read = 0;
  try {
    const result = await restoreLines(
      fileLines(file, (bytes) => (read = bytes)),
      store,
      (entries) => line.show(`restore: ${progressBar(read, size)} bytes, ${entries} entries`),
    );
    line.end();
    await store.close();
    return { dataDir, nodeId: result.header.nodeId, createdAt: result.header.createdAt, entries: result.entries };
  } catch (error) {
    line.end();
    await store.close();
    // Nothing half-restored is left for a node to start on.
    rmSync(dbDir, { recursive: true, force: true });
    throw error;
  }
}

export async function exportData(url: string, adminKey: string, app: string, bucket: string | undefined, out: string) {
  const query = new URLSearchParams({ app, ...(bucket !== undefined ? { bucket } : {}) });
  const counts = await download(url, adminKey, `/admin/export?${query}`, out, 'export', checkExport);
  return { file: out, app, bucket: bucket ?? null, ...counts };
}

/** Reads an export file whole: its header, every line, its trailer and counts. */
async function checkExport(file: string): Promise<{ entities: number; events: number; configs: number }> {
  const counts = { entities: 0, events: 0, configs: 0 };
  let lineNo = 0;
  let trailer: { entities: number; events: number; configs: number } | undefined;
  for await (const text of createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })) {
    lineNo++;
    if (text === '') continue;
    if (trailer !== undefined) throw new Error(`line ${lineNo}: data after the end of the export`);
    if (lineNo === 1) {
      if ((JSON.parse(text) as { format?: unknown }).format !== EXPORT_FORMAT) throw new Error('not a syncgraph export');
      continue;
    }
    const parsed = parseExportLine(text);
    if (typeof parsed === 'string') throw new Error(`line ${lineNo}: ${parsed}`);
    if ('end' in parsed) trailer = parsed;
    else counts[parsed.type === 'entity' ? 'entities' : parsed.type === 'event' ? 'events' : 'configs']++;
  }
  if (trailer === undefined) throw new Error('the export has no trailer: it is incomplete');
  if (trailer.entities !== counts.entities || trailer.events !== counts.events || trailer.configs !== counts.configs) {
    throw new Error('the export does not hold what its trailer counts: it is damaged');
  }
  return counts;
}

export async function importData(url: string, adminKey: string, app: string, file: string): Promise<unknown> {
  let checked: { entities: number; events: number; configs: number };
  try {
    checked = await checkExport(file);
  } catch (error) {
    throw new Error(`${file}: ${error instanceof Error ? error.message : String(error)} (nothing was imported)`);
  }
  const size = statSync(file).size;
  const line = statusLine();
  const body = createReadStream(file).pipe(counter((bytes) => line.show(`import: ${progressBar(bytes, size)} bytes`)));
  try {
    const response = await fetch(`${baseUrl(url)}/admin/import?${new URLSearchParams({ app })}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/x-ndjson' },
      body: Readable.toWeb(body) as ReadableStream<Uint8Array>,
      duplex: 'half',
    } as RequestInit);
    line.end();
    const answer = (await response.json()) as unknown;
    if (!response.ok) throw new Error(`the node answered ${response.status}: ${JSON.stringify(answer).slice(0, 500)}`);
    return { file, app, sent: checked, ...(answer as object) };
  } finally {
    line.end();
  }
}

async function report(action: () => Promise<unknown>): Promise<void> {
  try {
    process.stdout.write(`${JSON.stringify(await action(), null, 2)}\n`);
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

export function addDataCommands(program: Command): void {
  program
    .command('backup')
    .description('write a consistent snapshot of a running node to a file (writes go on meanwhile)')
    .requiredOption('--out <file>', 'the backup file to write (gzipped NDJSON)')
    .option('--url <url>', 'the running node', 'http://127.0.0.1:4000')
    .addOption(new Option('--admin-key <key>', "the node's admin key").env('SYNCGRAPH_ADMIN_KEY').makeOptionMandatory())
    .action((opts: { out: string; url: string; adminKey: string }) => report(() => backup(opts.url, opts.adminKey, opts.out)));
  program
    .command('restore')
    .description('restore a backup file into a new data directory, then start a node on it')
    .requiredOption('--in <file>', 'a file written by `syncgraph backup`')
    .requiredOption('--data <dir>', 'the data directory to create (must be empty)')
    .action((opts: { in: string; data: string }) => report(() => restore(opts.in, opts.data)));
  const target = (command: Command) =>
    command
      .option('--url <url>', 'the running node', 'http://127.0.0.1:4000')
      .addOption(new Option('--admin-key <key>', "the node's admin key").env('SYNCGRAPH_ADMIN_KEY').makeOptionMandatory());
  target(
    program
      .command('export')
      .description("write an app's buckets (or one bucket) as NDJSON: entities, events, settings")
      .requiredOption('--app <id>', 'the app')
      .option('--bucket <name>', 'only this bucket (every instance of it)')
      .requiredOption('--out <file>', 'the NDJSON file to write'),
  ).action((opts: { app: string; bucket?: string; out: string; url: string; adminKey: string }) =>
    report(() => exportData(opts.url, opts.adminKey, opts.app, opts.bucket, opts.out)),
  );
  target(
    program
      .command('import')
      .description('import an export file into an app of a running node (importing it again changes nothing)')
      .requiredOption('--app <id>', 'the app to import into')
      .requiredOption('--in <file>', 'a file written by `syncgraph export`'),
  ).action((opts: { app: string; in: string; url: string; adminKey: string }) => report(() => importData(opts.url, opts.adminKey, opts.app, opts.in)));
}
