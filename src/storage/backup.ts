/**
 * Backups of a node's LevelDB: every key and value of one consistent snapshot (a LevelDB
 * iterator reads the snapshot taken when it was created, whatever is written meanwhile), as
 * NDJSON lines, gzipped on the wire and on disk:
 *
 *   {"format":"syncgraph-backup","version":1,"nodeId":"...","createdAt":"..."}
 *   ["key","value"]            one line per entry, in key order
 *   {"end":true,"entries":N,"sha256":"..."}   the hash of the entry lines, newline-terminated
 *
 * The trailer makes a truncated or altered file fail to restore instead of restoring part of a
 * node. Values are stored as they are in LevelDB (JSON text), so a restored node holds exactly
 * the bytes that were backed up.
 */
import { createHash } from 'node:crypto';
import type { KeyValueStore, WriteOp } from './store.js';

export const BACKUP_FORMAT = 'syncgraph-backup';
export const BACKUP_VERSION = 1;

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  nodeId: string;
  createdAt: string;
}

interface Trailer {
  end: true;
  entries: number;
  sha256: string;
}

/** The lines of a backup of `store` (each ends with a newline). */
export async function* backupLines(store: KeyValueStore, header: Omit<BackupHeader, 'format' | 'version'>): AsyncGenerator<string> {
  const full: BackupHeader = { format: BACKUP_FORMAT, version: BACKUP_VERSION, ...header };
  yield `${JSON.stringify(full)}\n`;
  const hash = createHash('sha256');
  let entries = 0;
  let chunk = '';
  for await (const [key, value] of store.entries({})) {
    const line = `${JSON.stringify([key, value])}\n`;
    hash.update(line);
    entries++;
    chunk += line;
    // Lines are handed on in chunks of about 64 KiB: one write per chunk, not per key.
    if (chunk.length >= 65536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk !== '') yield chunk;
  const trailer: Trailer = { end: true, entries, sha256: hash.digest('hex') };
  yield `${JSON.stringify(trailer)}\n`;
}

export class BackupError extends Error {}

/**
 * Reads backup lines, checking the header, every entry and the trailer. With `target`, writes the
 * entries there in batches (the last one synced). Throws BackupError when the backup is not
 * whole; whatever was written to `target` by then is the caller's to discard.
 */
export async function restoreLines(
  lines: AsyncIterable<string>,
  target: KeyValueStore | undefined,
  onProgress?: (entries: number) => void,
): Promise<{ header: BackupHeader; entries: number }> {
  let header: BackupHeader | undefined;
  let trailer: Trailer | undefined;
  const hash = createHash('sha256');
  let entries = 0;
  let batch: WriteOp[] = [];
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line === '') continue;
    if (trailer !== undefined) throw new BackupError(`line ${lineNo}: data after the end of the backup`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new BackupError(`line ${lineNo}: not JSON (a damaged file?)`);
    }
    if (header === undefined) {
      header = checkHeader(parsed);
      continue;
    }
    if (Array.isArray(parsed)) {
      const [key, value] = parsed as unknown[];
      if (parsed.length !== 2 || typeof key !== 'string' || typeof value !== 'string') throw new BackupError(`line ${lineNo}: not a [key, value] entry`);
      hash.update(`${line}\n`);
      entries++;
      if (target !== undefined) {
        batch.push({ type: 'put', key, value });
        // The last entry always waits for the final, synced batch (see below).
        if (batch.length > 1000) {
          await target.write(batch.slice(0, -1), { sync: false });
          batch = batch.slice(-1);
          onProgress?.(entries - 1);
        }
      }
      continue;
    }
    trailer = checkTrailer(parsed, lineNo);
  }
  if (header === undefined) throw new BackupError('empty file: not a syncgraph backup');
  if (trailer === undefined) throw new BackupError(`the backup ends after ${entries} entries without its trailer: it is incomplete`);
  if (trailer.entries !== entries || trailer.sha256 !== hash.digest('hex')) {
    throw new BackupError(`the backup's entries do not match its trailer (${entries} read, ${trailer.entries} written): it is damaged`);
  }
  // The last batch is synced: everything before it is then on disk too (one LevelDB log).
  if (target !== undefined && batch.length > 0) {
    await target.write(batch, { sync: true });
    onProgress?.(entries);
  }
  return { header, entries };
}

function checkHeader(value: unknown): BackupHeader {
  const header = value as Partial<BackupHeader> | null;
  if (typeof header !== 'object' || header === null || header.format !== BACKUP_FORMAT) throw new BackupError('not a syncgraph backup');
  if (header.version !== BACKUP_VERSION) throw new BackupError(`backup format version ${String(header.version)}; this syncgraph reads version ${BACKUP_VERSION}`);
  if (typeof header.nodeId !== 'string' || typeof header.createdAt !== 'string') throw new BackupError('the backup header lacks its node id or date');
  return header as BackupHeader;
}

function checkTrailer(value: unknown, lineNo: number): Trailer {
  const trailer = value as Partial<Trailer> | null;
  if (typeof trailer !== 'object' || trailer === null || trailer.end !== true || typeof trailer.entries !== 'number' || typeof trailer.sha256 !== 'string') {
    throw new BackupError(`line ${lineNo}: neither an entry nor the trailer`);
  }
  return trailer as Trailer;
}

/**
 * Splits text into lines (without their newlines). The chunks must be decoded text (a stream with
 * `setEncoding('utf8')`), so that no character is cut at a chunk's end. A line longer than
 * `lineMax` characters is refused (BackupError): no line of ours comes near it, and a stream
 * without newlines must not be buffered without bound.
 */
export async function* splitLines(chunks: AsyncIterable<string>, lineMax = 64 * 1024 * 1024): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of chunks) {
    const text = rest + chunk;
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    if (rest.length > lineMax) throw new BackupError(`a line longer than ${lineMax} characters: not a file of ours`);
    yield* lines;
  }
  if (rest !== '') yield rest;
}
