/**
 * Simple Sync events on the client: `append` stores an event locally (it counts at once, as
 * pending), `push` sends the pending ones with `pushEvents` and replaces the local history with
 * the server's authoritative one (pages after the stored cursor: the history is append-only, so
 * the local copy is the server's up to the cursor).
 */
import { uuidV7Millis } from '../model/event.js';
import { isJsonObject, type JsonObject } from '../model/json.js';
import { validateBucketName } from '../model/names.js';
import type { SyncContext } from './context.js';
import { ClientError, ClientErrorCode } from './errors.js';
import type { EventsStore, StoredEvent } from './local-store.js';
import { Mutex } from './mutex.js';
import { ClientEventsPage, ClientPushEvents } from './operations.js';

export interface AppendEvent {
  item: string;
  action: string;
  /** A JSON object (encoded for you) or its encoding. */
  payload: JsonObject | string;
  /** @default the client's `eventUser` */
  user?: string;
}

export interface SyncEvent extends StoredEvent {
  /** Not in the server's history yet. */
  pending: boolean;
}

export interface PushEventsResult {
  /** Events the server refused (and that were removed from the pending ones), with why. */
  rejected: Array<{ uuid: string; code: ClientErrorCode; message: string }>;
}

/** The node's `eventsPerRequestMax`: pending events go in chunks of at most this many. */
const EVENTS_PER_REQUEST_MAX = 1000;

export class EventStream {
  private history: StoredEvent[] = [];
  private pending: StoredEvent[] = [];
  private cursor: string | null = null;
  private readonly store: EventsStore;
  private readonly ready: Promise<void>;
  private readonly mutex = new Mutex();

  constructor(
    readonly name: string,
    private readonly ctx: SyncContext,
  ) {
    validateBucketName(name);
    this.store = ctx.store.events(name);
    this.ready = this.store.load().then((snapshot) => {
      this.history = snapshot.history;
      this.pending = snapshot.pending;
      this.cursor = snapshot.cursor;
    });
  }

  /** Stores a new event locally (durably); it goes to the server at the next `push()`. */
  async append(input: AppendEvent): Promise<SyncEvent> {
    await this.ready;
    const payload = typeof input.payload === 'string' ? input.payload : JSON.stringify(input.payload);
    if (typeof input.payload === 'string' && !isJsonObject(safeParse(payload))) {
      throw new ClientError(ClientErrorCode.INVALID_INPUT, 'payload must encode a JSON object');
    }
    const uuid = this.ctx.newId();
    const event: StoredEvent = {
      uuid,
      // Simple Sync: the timestamp is the uuid's own.
      timestamp: uuidV7Millis(uuid).toString(),
      user: input.user ?? this.ctx.options.eventUser,
      item: input.item,
      action: input.action,
      payload,
    };
    return this.mutex.run(async () => {
      await this.store.addPending(event);
      this.pending.push(event);
      return { ...event, pending: true };
    });
  }

  /** The server's history as last pushed or pulled, then the pending events. */
  async list(): Promise<SyncEvent[]> {
    await this.ready;
    return [...this.history.map((e) => ({ ...e, pending: false })), ...this.pending.map((e) => ({ ...e, pending: true }))];
  }

  /** Sends the pending events and takes the server's history after the local one. */
  async push(): Promise<PushEventsResult> {
    await this.ready;
    return this.mutex.run(async () => {
      const rejected: PushEventsResult['rejected'] = [];
      do {
        const chunk = this.pending.slice(0, EVENTS_PER_REQUEST_MAX);
        const { pushEvents } = await this.ctx.transport.request(ClientPushEvents, { bucket: this.name, events: chunk, since: this.cursor });
        let { history, cursor, hasMore } = { history: [...pushEvents.history], cursor: pushEvents.cursor, hasMore: pushEvents.hasMore };
        while (hasMore) {
          const { events: page } = await this.ctx.transport.request(ClientEventsPage, { bucket: this.name, since: cursor, limit: 1000 });
          history = history.concat(page.events);
          cursor = page.cursor;
          hasMore = page.hasMore;
        }
        const stored = history.map(({ uuid, timestamp, user, item, action, payload }) => ({ uuid, timestamp, user, item, action, payload }));
        const done = chunk.map((e) => e.uuid);
        await this.store.acceptHistory(this.history.length, stored, cursor, done);
        this.history.push(...stored);
        this.cursor = cursor;
        this.pending = this.pending.slice(chunk.length);
        for (const r of pushEvents.rejected) {
          const error = new ClientError(r.code, r.message);
          rejected.push({ uuid: r.uuid, code: r.code, message: r.message });
          this.ctx.error({ error, bucket: this.name });
        }
      } while (this.pending.length > 0);
      return { rejected };
    });
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
