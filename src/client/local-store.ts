/**
 * The client's persistence on any abstract-level database the app passes (browser-level in
 * browsers, classic-level in Node, memory-level in tests). Everything lives under the `syncgraph`
 * sublevel, so the app may keep its own data in the same database:
 *
 *   syncgraph!meta        clientId
 *   syncgraph!b.{bucket}  k:{key} -> KeyRecord (ghost, view, in-flight and unsent edits),
 *                         m:cursor, m:keyPrefix, m:queued (outbox counter)
 *   syncgraph!e.{bucket}  h:{index} -> event of the server's history, p:{uuid} -> event to push,
 *                         m:cursor
 *
 * Each state change is one atomic batch (a key record with the cursor it was read at, say), so a
 * restart never sees half of one; batches are written with `sync: true` where the backend
 * supports it (classic-level), so a write is on disk before `set()` resolves.
 */
import type { AbstractSublevel } from 'abstract-level';
import type { EventInput } from '../model/event.js';
import type { KeyRecord } from './key-state.js';

/**
 * Any abstract-level database (its encodings do not matter): all the SDK asks of it is a sublevel
 * of its own. Typed by that one method, since abstract-level's generic types are invariant in
 * their formats and no single instantiation accepts browser-level, classic-level and
 * memory-level alike.
 */
export interface LevelDatabase {
  sublevel(name: string, options: { keyEncoding: 'utf8'; valueEncoding: 'json' }): object;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type JsonSublevel = AbstractSublevel<any, any, string, unknown>;

/** Written with every batch: classic-level then fsyncs; the other backends ignore it. */
const SYNC: Record<string, unknown> = { sync: true };

export interface BucketSnapshot {
  records: KeyRecord[];
  cursor: string | null;
  keyPrefix: string | null;
  queued: number;
}

export interface BucketWrite {
  records?: readonly KeyRecord[];
  /** Undefined: unchanged. */
  cursor?: string | null;
  keyPrefix?: string;
  queued?: number;
}

export class BucketStore {
  constructor(private readonly db: JsonSublevel) {}

  async load(): Promise<BucketSnapshot> {
    const snapshot: BucketSnapshot = { records: [], cursor: null, keyPrefix: null, queued: 0 };
    for await (const [key, value] of this.db.iterator()) {
      if (key.startsWith('k:')) snapshot.records.push(value as KeyRecord);
      else if (key === 'm:cursor') snapshot.cursor = value as string | null;
      else if (key === 'm:keyPrefix') snapshot.keyPrefix = value as string;
      else if (key === 'm:queued') snapshot.queued = value as number;
    }
    return snapshot;
  }

  async write(change: BucketWrite): Promise<void> {
    const batch = this.db.batch();
    for (const rec of change.records ?? []) batch.put(`k:${rec.key}`, rec);
    // Level stores no null: no cursor is no entry.
    if (change.cursor === null) batch.del('m:cursor');
    else if (change.cursor !== undefined) batch.put('m:cursor', change.cursor);
    if (change.keyPrefix !== undefined) batch.put('m:keyPrefix', change.keyPrefix);
    if (change.queued !== undefined) batch.put('m:queued', change.queued);
    if (batch.length > 0) await batch.write(SYNC);
    else await batch.close();
  }
}

/** An event as the node takes and answers it (Simple Sync's fields). */
export type StoredEvent = EventInput;

export interface EventsSnapshot {
  history: StoredEvent[];
  pending: StoredEvent[];
  cursor: string | null;
}

export class EventsStore {
  constructor(private readonly db: JsonSublevel) {}

  async load(): Promise<EventsSnapshot> {
    const snapshot: EventsSnapshot = { history: [], pending: [], cursor: null };
    for await (const [key, value] of this.db.iterator()) {
      if (key.startsWith('h:')) snapshot.history.push(value as StoredEvent);
      else if (key.startsWith('p:')) snapshot.pending.push(value as StoredEvent);
      else if (key === 'm:cursor') snapshot.cursor = value as string | null;
    }
    // Pending events in creation order: uuidv7s sort by time.
    snapshot.pending.sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    return snapshot;
  }

  async addPending(event: StoredEvent): Promise<void> {
    await this.db.batch([{ type: 'put', key: `p:${event.uuid}`, value: event }], SYNC);
  }

  /** Appends history after `fromIndex`, moves the cursor and forgets pushed events, atomically. */
  async acceptHistory(fromIndex: number, history: readonly StoredEvent[], cursor: string, done: readonly string[]): Promise<void> {
    const batch = this.db.batch();
    history.forEach((event, i) => batch.put(`h:${String(fromIndex + i).padStart(12, '0')}`, event));
    batch.put('m:cursor', cursor);
    for (const uuid of done) batch.del(`p:${uuid}`);
    await batch.write(SYNC);
  }
}

export class LocalStore {
  private readonly root: JsonSublevel;

  constructor(db: LevelDatabase) {
    this.root = db.sublevel('syncgraph', { keyEncoding: 'utf8', valueEncoding: 'json' }) as JsonSublevel;
  }

  /** The client's id, made once per store (by `generate`) and kept. */
  async clientId(generate: () => string): Promise<string> {
    const meta = this.sub('meta');
    const existing = await meta.get('clientId');
    if (typeof existing === 'string') return existing;
    const id = generate();
    await meta.batch([{ type: 'put', key: 'clientId', value: id }], SYNC);
    return id;
  }

  bucket(name: string): BucketStore {
    return new BucketStore(this.sub(`b.${name}`));
  }

  events(name: string): EventsStore {
    return new EventsStore(this.sub(`e.${name}`));
  }

  private sub(name: string): JsonSublevel {
    return this.root.sublevel<string, unknown>(name, { keyEncoding: 'utf8', valueEncoding: 'json' }) as JsonSublevel;
  }
}
