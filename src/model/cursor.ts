/**
 * Cursors: opaque, versioned encodings of a stream position. A cursor names its stream (changes or
 * events) and its partition, so a cursor of one bucket (or, later, one app) can never be replayed
 * against another, and carries a version vector so that it can be resumed on any replica.
 *
 * Format (inside base64url, after the `c1.`/`e1.` prefix): `partition|origin:seq,origin:seq`,
 * origins sorted. Decoding is strict: only the canonical encoding of a position is accepted.
 */
import { ErrorCode, SyncError } from './errors.js';
import type { VersionVector } from './version-vector.js';

export type StreamKind = 'changes' | 'events';

export interface StreamPosition {
  stream: StreamKind;
  partition: string;
  vector: VersionVector;
}

const PREFIX: Record<StreamKind, string> = { changes: 'c1.', events: 'e1.' };
const PARTITION = /^[A-Za-z0-9._%/-]{1,200}$/;
const ORIGIN = /^[A-Za-z0-9._-]{1,64}$/;
const SEQ = /^(0|[1-9][0-9]{0,15})$/;
/** A cursor longer than this is not one we issued; refuse before decoding anything. */
export const cursorLengthMax = 4096;

export function encodeCursor(position: StreamPosition): string {
  // Every change gets a cursor, and most vectors have one origin: no arrays for those.
  let only: string | undefined;
  let count = 0;
  for (const origin in position.vector) {
    if (Object.hasOwn(position.vector, origin) && ++count === 1) only = origin;
  }
  if (count === 1 && (position.vector[only!] as number) > 0) {
    return PREFIX[position.stream] + Buffer.from(`${position.partition}|${only}:${position.vector[only!]}`, 'utf8').toString('base64url');
  }
  const entries = Object.entries(position.vector)
    .filter(([, seq]) => seq > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([origin, seq]) => `${origin}:${seq}`)
    .join(',');
  return PREFIX[position.stream] + Buffer.from(`${position.partition}|${entries}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): StreamPosition {
  const bad = (why: string) => new SyncError(ErrorCode.INVALID_CURSOR, `cursor is not valid: ${why}`);
  if (cursor.length > cursorLengthMax) throw bad('too long');
  const stream: StreamKind | undefined = cursor.startsWith(PREFIX.changes)
    ? 'changes'
    : cursor.startsWith(PREFIX.events)
      ? 'events'
      : undefined;
  if (stream === undefined) throw bad('unknown format');
  const body = Buffer.from(cursor.slice(3), 'base64url').toString('utf8');
  const bar = body.indexOf('|');
  if (bar < 0) throw bad('malformed');
  const partition = body.slice(0, bar);
  if (!PARTITION.test(partition)) throw bad('malformed partition');
  // A Map, not an object: origins such as "constructor" or "__proto__" are just names.
  const entries = new Map<string, number>();
  const rest = body.slice(bar + 1);
  if (rest !== '') {
    for (const entry of rest.split(',')) {
      const colon = entry.lastIndexOf(':');
      const origin = entry.slice(0, colon);
      const seq = entry.slice(colon + 1);
      if (colon < 0 || !ORIGIN.test(origin) || !SEQ.test(seq) || !Number.isSafeInteger(Number(seq)) || entries.has(origin)) {
        throw bad('malformed position');
      }
      entries.set(origin, Number(seq));
    }
  }
  const position: StreamPosition = { stream, partition, vector: Object.fromEntries(entries) };
  // Only canonical encodings: one position, one cursor (no padding tricks, no reordering).
  if (encodeCursor(position) !== cursor) throw bad('not canonical');
  return position;
}
