/**
 * `syncgraph backup`: a consistent snapshot of a running node (GET /admin/backup), written to a
 * file and checked whole before it gets its name. `syncgraph restore`: a backup file into an
 * empty data directory, for a node to start on. Both show a progress bar on a terminal.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { Command, Option } from 'commander';
import { restoreLines, splitLines } from '../storage/backup.js';
import { LevelStore } from '../storage/level-store.js';
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

export async function backup(url: string, adminKey: string, out: string): Promise<{ file: string; nodeId: string; createdAt: string; entries: number; bytes: number }> {
  const response = await fetch(`${url.replace(/\/(graphql)?$/, '')}/admin/backup`, { headers: { authorization: `Bearer ${adminKey}` } });
  if (!response.ok || response.body === null) throw new Error(`the node answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
  const partial = `${out}.partial`;
  const line = statusLine();
  try {
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
      counter((bytes) => line.show(`backup: ${mib(bytes)} received`)),
      createWriteStream(partial, { mode: 0o600 }),
    );
    line.end();
    // Read back whole before it takes the name: a cut-short transfer never looks like a backup.
    const checked = await restoreLines(fileLines(partial), undefined);
    await rename(partial, out);
    return { file: out, nodeId: checked.header.nodeId, createdAt: checked.header.createdAt, entries: checked.entries, bytes: statSync(out).size };
  } catch (error) {
    line.end();
    rmSync(partial, { force: true });
    throw error;
  }
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

async function report(action: () => Promise<unknown>): Promise<void> {
  try {
    process.stdout.write(`${JSON.stringify(await action(), null, 2)}\n`);
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

export function addBackupCommands(program: Command): void {
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
}
