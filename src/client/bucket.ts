/**
 * One synced bucket: the app's API (`get`, `list`, `set`, `update`, `delete`, `subscribe`) over
 * the key records of key-state.ts, kept in memory and persisted, and the two loops that move
 * data: the push loop (outbox -> `submitChanges`, one request in flight, retried with backoff)
 * and the feed (the change stream -> key records: pages over HTTP until caught up, then a live
 * subscription from the cursor, and again from the cursor whenever it ends).
 *
 * Every change of the records goes through one mutex and is written to the store (one batch,
 * with the cursor it was read at) before memory and listeners see it: what the app was told is
 * on disk, and after a restart the feed resumes exactly after the last change applied, so a
 * change is never applied twice and never skipped (ghost versions only move forward besides).
 */
import { cloneJson, isJsonObject, jsonEqual, type JsonObject } from '../model/json.js';
import { validateBucketName, validateEntityKey, validateKeyPrefix } from '../model/names.js';
import { backoffMs } from './backoff.js';
import type { SyncContext } from './context.js';
import { ClientError, ClientErrorCode, isRetryable, toClientError } from './errors.js';
import type { ClientChangeFieldsFragment } from './generated/graphql.js';
import {
  acknowledge,
  cleared,
  emptyRecord,
  localWrite,
  outcomeOf,
  pendingCount,
  receive,
  type Conflict,
  type ConflictResolver,
  type KeyRecord,
  type TransitionContext,
} from './key-state.js';
import type { BucketStore } from './local-store.js';
import { Mutex, Wakeup } from './mutex.js';
import { ClientChangesPage, ClientOnChanges, ClientSubmitChanges } from './operations.js';
import type { BucketOptions } from './options.js';
import { selectBatch } from './outbox.js';

/** A key's value changed for the app: by a local write, or by the server. */
export interface BucketChange {
  key: string;
  /** The new value; null when the key was deleted. */
  data: JsonObject | null;
  source: 'local' | 'remote';
}

export type BucketListener = (change: BucketChange) => void;

/** What `update` callbacks return: the new object, null to delete, undefined to leave it. */
export type Updater = (current: JsonObject | undefined) => JsonObject | null | undefined;

type StreamChange = ClientChangeFieldsFragment;

/** Live changes received and not yet stored, at most. */
const INCOMING_MAX = 10_000;

export class Bucket {
  readonly keyPrefix: string;
  private readonly onConflict: ConflictResolver | undefined;
  private readonly store: BucketStore;
  private records = new Map<string, KeyRecord>();
  private cursor: string | null = null;
  private queued = 0;
  private pending = 0;
  private readonly state = new Mutex();
  private readonly sending = new Mutex();
  private readonly reading = new Mutex();
  private readonly listeners = new Set<BucketListener>();
  private readonly ready: Promise<void>;
  private closed = false;
  private readonly wake = new Wakeup();

  private pushing: Promise<void> | null = null;
  private pushAgain = false;
  private feed: Promise<void> | null = null;
  private live = false;
  private endLive: (() => void) | null = null;
  private pullRequested = false;
  private pullWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private incoming: Array<{ changes: StreamChange[]; cursor: string }> = [];
  private draining: Promise<void> | null = null;

  constructor(
    readonly name: string,
    options: BucketOptions,
    private readonly ctx: SyncContext,
  ) {
    validateBucketName(name);
    this.keyPrefix = options.keyPrefix ?? '';
    validateKeyPrefix(this.keyPrefix);
    this.onConflict = options.onConflict;
    this.store = ctx.store.bucket(name);
    this.ready = this.load();
    this.ready.catch((error: unknown) => this.ctx.error({ error: toClientError(error), bucket: name }));
    if (ctx.options.live) {
      void this.ready.then(() => {
        this.startFeed();
        this.kickPush();
      });
    }
  }

  // -------------------------------------------------------------------------------------------
  // The app's API
  // -------------------------------------------------------------------------------------------

  /** The key's current value as this client sees it (pending local edits included). */
  async get(key: string): Promise<JsonObject | undefined> {
    await this.ready;
    const view = this.records.get(key)?.view;
    return view === null || view === undefined ? undefined : cloneJson(view);
  }

  /** Every key with a value, in key order. */
  async list(): Promise<Array<{ key: string; data: JsonObject }>> {
    await this.ready;
    const out: Array<{ key: string; data: JsonObject }> = [];
    for (const rec of this.records.values()) {
      if (rec.view !== null && rec.key.startsWith(this.keyPrefix)) out.push({ key: rec.key, data: cloneJson(rec.view) });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Sets the key's value; resolves once the change is stored locally (it syncs on its own). */
  async set(key: string, data: JsonObject): Promise<void> {
    await this.write(key, () => data);
  }

  /** Replaces the value with `fn(current)`, atomically with respect to other writes and syncs. */
  async update(key: string, fn: Updater): Promise<JsonObject | undefined> {
    const view = await this.write(key, fn);
    return view === null ? undefined : cloneJson(view);
  }

  async delete(key: string): Promise<void> {
    await this.write(key, () => null);
  }

  /** Called for every change of a key's value, local or remote. Returns the unsubscribe function. */
  subscribe(listener: BucketListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Local changes not acknowledged by the server yet. */
  get pendingChanges(): number {
    return this.pending;
  }

  /** Reads what the server has that this client has not seen; rejects if the server cannot be reached. */
  async pull(): Promise<void> {
    await this.ready;
    this.checkOpen();
    if (this.feed === null) return this.reading.run(() => this.catchUp());
    const done = new Promise<void>((resolve, reject) => this.pullWaiters.push({ resolve, reject }));
    // The feed reads in order: the live subscription steps aside for a catch-up, then resumes.
    this.pullRequested = true;
    this.endLive?.();
    this.wake.wake();
    return done;
  }

  /** Sends every pending change until none is left; rejects on the first failure. */
  async push(): Promise<void> {
    await this.ready;
    this.checkOpen();
    while (await this.sendOnce());
  }

  /** `push()` then `pull()`. */
  async sync(): Promise<void> {
    await this.push();
    await this.pull();
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle (called by the client)
  // -------------------------------------------------------------------------------------------

  /** The live connection came back: resume at once instead of at the end of a backoff. */
  reconnected(): void {
    this.wake.wake();
    if (this.ctx.options.live) this.kickPush();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.endLive?.();
    this.wake.wake();
    for (const waiter of this.pullWaiters.splice(0)) waiter.reject(closedError());
    await Promise.allSettled([this.ready, this.feed, this.pushing, this.draining]);
    await this.state.run(() => undefined);
  }

  // -------------------------------------------------------------------------------------------
  // State
  // -------------------------------------------------------------------------------------------

  private async load(): Promise<void> {
    const snapshot = await this.store.load();
    for (const rec of snapshot.records) {
      this.records.set(rec.key, rec);
      this.pending += pendingCount(rec);
    }
    this.queued = snapshot.queued;
    this.cursor = snapshot.cursor;
    if (snapshot.keyPrefix !== this.keyPrefix) {
      // Another selection: changes before the cursor to keys now selected were never read.
      if (snapshot.keyPrefix !== null) this.cursor = null;
      await this.store.write({ keyPrefix: this.keyPrefix, cursor: this.cursor });
    }
    this.ctx.status({ type: 'pending', bucket: this.name, count: this.pending });
  }

  private transitions(): TransitionContext {
    return {
      newCcid: this.ctx.newId,
      nextQueued: () => ++this.queued,
      refusalsMax: this.ctx.options.refusalsMax,
      onConflict: this.onConflict === undefined ? undefined : (conflict) => this.resolve(conflict),
    };
  }

  /** The app's resolver; one that throws keeps the merge (it must not stop the feed for good). */
  private resolve(conflict: Conflict): JsonObject | null | undefined {
    try {
      const resolved = this.onConflict?.(conflict);
      if (resolved === undefined || resolved === null) return resolved;
      if (!isJsonObject(resolved)) throw new ClientError(ClientErrorCode.INVALID_INPUT, 'onConflict must return an object, null or undefined');
      return JSON.parse(JSON.stringify(resolved)) as JsonObject;
    } catch (error) {
      const failure = new ClientError(ClientErrorCode.CALLBACK_FAILED, `onConflict failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      this.ctx.error({ error: failure, bucket: this.name, key: conflict.key });
      return undefined;
    }
  }

  /** Persists records (and the cursor) in one batch, then makes them visible and tells listeners. */
  private async commit(records: readonly KeyRecord[], source: BucketChange['source'], cursor?: string | null): Promise<void> {
    await this.store.write({ records, queued: this.queued, ...(cursor !== undefined ? { cursor } : {}) });
    if (cursor !== undefined) this.cursor = cursor;
    const changes: BucketChange[] = [];
    for (const rec of records) {
      const before = this.records.get(rec.key);
      this.records.set(rec.key, rec);
      this.pending += pendingCount(rec) - (before === undefined ? 0 : pendingCount(before));
      const viewBefore = before?.view ?? null;
      if (!sameView(viewBefore, rec.view)) changes.push({ key: rec.key, data: rec.view === null ? null : cloneJson(rec.view), source });
    }
    this.ctx.status({ type: 'pending', bucket: this.name, count: this.pending });
    for (const change of changes) {
      for (const listener of [...this.listeners]) {
        try {
          listener(change);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }

  private async write(key: string, fn: Updater): Promise<JsonObject | null> {
    this.checkOpen();
    validateEntityKey(key);
    if (!key.startsWith(this.keyPrefix)) {
      throw new ClientError(ClientErrorCode.INVALID_INPUT, `key ${key} is outside this bucket's keyPrefix ${this.keyPrefix}`);
    }
    await this.ready;
    const view = await this.state.run(async () => {
      this.checkOpen();
      const rec = this.records.get(key) ?? emptyRecord(key);
      const next = fn(rec.view === null ? undefined : cloneJson(rec.view));
      if (next === undefined) return rec.view;
      if (next !== null && !isJsonObject(next)) throw new ClientError(ClientErrorCode.INVALID_INPUT, 'an entity must be a JSON object');
      // A copy through JSON: what is stored is exactly what the server will get.
      const data = next === null ? null : (JSON.parse(JSON.stringify(next)) as JsonObject);
      const updated = localWrite(rec, data, this.ctx.newId(), { nextQueued: () => ++this.queued });
      if (updated !== rec) await this.commit([updated], 'local');
      return updated.view;
    });
    this.kickPush();
    return view;
  }

  private checkOpen(): void {
    if (this.closed) throw closedError();
  }

  // -------------------------------------------------------------------------------------------
  // Push
  // -------------------------------------------------------------------------------------------

  private kickPush(): void {
    if (!this.ctx.options.live || this.closed) return;
    this.pushAgain = true;
    if (this.pushing !== null) return;
    this.pushing = this.pushLoop().finally(() => {
      this.pushing = null;
    });
  }

  private async pushLoop(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      this.pushAgain = false;
      try {
        const sent = await this.sendOnce();
        attempt = 0;
        if (!sent && !this.pushAgain) {
          this.reportSynced();
          return;
        }
      } catch (error) {
        if (this.closed) return;
        const failure = toClientError(error);
        this.ctx.error({ error: failure, bucket: this.name });
        // A refusal the app must fix is not retried on a timer: the next write or reconnect retries.
        if (!isRetryable(failure)) return;
        await this.wake.wait(backoffMs(attempt++, this.ctx.options.backoff, this.ctx.options.random));
      }
    }
  }

  /** One `submitChanges` of the next batch. False when there was nothing to send. */
  private sendOnce(): Promise<boolean> {
    return this.sending.run(async () => {
      this.checkOpen();
      const batch = await this.state.run(async () => {
        const selected = selectBatch(this.records.values(), this.ctx.options.batchSizeMax);
        // Frozen before sending: after a crash the same ccid is resent with the same content.
        if (selected.frozen.length > 0) await this.commit(selected.frozen, 'local');
        return selected;
      });
      if (batch.submissions.length === 0) return false;
      const clientId = await this.ctx.clientId;
      const changes = batch.submissions.map((s) => ({ ccid: s.ccid, key: s.key, op: s.op, baseVersion: s.baseVersion, ...(s.diff !== undefined ? { diff: s.diff } : {}) }));
      const data = await this.ctx.transport.request(ClientSubmitChanges, { bucket: this.name, clientId, changes });
      let pull = false;
      await this.state.run(async () => {
        const touched: KeyRecord[] = [];
        const at = this.ctx.options.now();
        data.submitChanges.forEach((result, i) => {
          const submission = batch.submissions[i];
          const rec = submission === undefined ? undefined : this.records.get(submission.key);
          if (submission === undefined || rec === undefined) return;
          const outcome = outcomeOf(result);
          const { rec: next, effects } = acknowledge(rec, submission.ccid, outcome, this.transitions());
          if (next !== rec) touched.push(next);
          if (outcome.kind !== 'refused' && rec.sent?.ccid === submission.ccid) {
            this.ctx.status({ type: 'acknowledged', bucket: this.name, key: rec.key, ccid: submission.ccid, version: outcome.version, at });
          }
          for (const effect of effects) {
            if (effect.type === 'pull') pull = true;
            else {
              const error = new ClientError(effect.code, effect.message);
              this.ctx.error({ error, bucket: this.name, key: effect.key, ccid: effect.ccid });
            }
          }
        });
        await this.commit(touched, 'remote');
      });
      // BAD_VERSION: the server has versions we have not read; resend on top of them.
      if (pull) await this.pull();
      return true;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Feed
  // -------------------------------------------------------------------------------------------

  private startFeed(): void {
    if (this.feed !== null || this.closed) return;
    this.feed = this.feedLoop();
  }

  private async feedLoop(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      try {
        await this.reading.run(() => this.catchUp());
        attempt = 0;
        const ended = await this.followLive();
        await this.drained();
        if (ended !== null && ended.code !== ClientErrorCode.NETWORK_ERROR && !this.closed) {
          // Ended by the server (SLOW_CONSUMER, an expired credential...): resume from the cursor.
          this.ctx.error({ error: ended, bucket: this.name });
          if (ended.code === ClientErrorCode.INVALID_CURSOR) await this.restartStream();
          else if (ended.code !== ClientErrorCode.SLOW_CONSUMER) await this.wake.wait(backoffMs(attempt++, this.ctx.options.backoff, this.ctx.options.random));
        }
      } catch (error) {
        if (this.closed) break;
        const failure = toClientError(error);
        this.ctx.error({ error: failure, bucket: this.name });
        if (failure.code === ClientErrorCode.INVALID_CURSOR) await this.restartStream();
        else await this.wake.wait(backoffMs(attempt++, this.ctx.options.backoff, this.ctx.options.random));
      }
    }
    for (const waiter of this.pullWaiters.splice(0)) waiter.reject(closedError());
  }

  /**
   * The node does not know our cursor (its data was replaced, say): read the stream again from
   * the start. Versions there may be lower than our ghosts', so the ghosts are forgotten; keys
   * with pending edits keep them (rebased onto what the replay brings, then resent).
   */
  private async restartStream(): Promise<void> {
    await this.state.run(async () => {
      const reset: KeyRecord[] = [];
      for (const rec of this.records.values()) {
        reset.push(rec.sent === null && rec.unsent === null ? emptyRecord(rec.key) : { ...rec, ghost: { version: 0, data: null } });
      }
      await this.commit(reset, 'remote', null);
    });
  }

  /** Pages through the change stream from the cursor until caught up, reporting progress. */
  private async catchUp(): Promise<void> {
    const waiters = this.pullWaiters.splice(0);
    this.pullRequested = false;
    try {
      let received = 0;
      for (;;) {
        this.checkOpen();
        const { changes: page } = await this.ctx.transport.request(ClientChangesPage, {
          bucket: this.name,
          since: this.cursor,
          limit: this.ctx.options.pageSize,
          keyPrefix: this.keyPrefix === '' ? null : this.keyPrefix,
        });
        await this.state.run(() => this.applyRemote(page.changes, page.cursor));
        received += page.changes.length;
        this.ctx.progress({ bucket: this.name, received, done: !page.hasMore });
        if (!page.hasMore) break;
      }
      this.reportSynced();
      for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error);
      throw error;
    }
  }

  /**
   * Follows the live subscription from the cursor until it ends (resolves with why; null when
   * we ended it). Without a connection, waits for one (or for a pull) first.
   */
  private async followLive(): Promise<ClientError | null> {
    if (this.closed || this.pullRequested) return null;
    if (!this.ctx.transport.connected) {
      await this.wake.next();
      return null;
    }
    return new Promise<ClientError | null>((resolve) => {
      let over = false;
      const finish = (why: ClientError | null) => {
        if (over) return;
        over = true;
        this.live = false;
        this.endLive = null;
        resolve(why);
      };
      const stop = this.ctx.transport.subscribe(
        ClientOnChanges,
        { bucket: this.name, since: this.cursor, keyPrefix: this.keyPrefix === '' ? null : this.keyPrefix },
        {
          next: (data) => {
            if (!over) this.enqueue([data.changes], data.changes.cursor);
          },
          error: (error) => finish(error),
          complete: () => finish(null),
        },
      );
      this.live = true;
      this.endLive = () => {
        stop();
        finish(null);
      };
      if (this.closed || this.pullRequested) this.endLive();
    });
  }

  private enqueue(changes: StreamChange[], cursor: string): void {
    this.incoming.push({ changes, cursor });
    // Changes arriving faster than the store takes them: stop the subscription rather than
    // buffer without bound; the feed catches up in pages from the cursor, then resubscribes.
    if (this.incoming.length >= INCOMING_MAX) this.endLive?.();
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
    });
  }

  private async drain(): Promise<void> {
    while (this.incoming.length > 0) {
      const batch = this.incoming.splice(0);
      const changes = batch.flatMap((b) => b.changes);
      const cursor = (batch[batch.length - 1] as { cursor: string }).cursor;
      try {
        await this.state.run(() => this.applyRemote(changes, cursor));
        if (this.live) this.reportSynced();
      } catch (error) {
        // Not applied, so the cursor did not move: resubscribing resumes before these changes.
        this.incoming.length = 0;
        this.ctx.error({ error: toClientError(error), bucket: this.name });
        this.endLive?.();
      }
    }
  }

  private async drained(): Promise<void> {
    while (this.draining !== null) await this.draining;
  }

  /** Applies changes of the stream, in order, and moves the cursor past them, in one batch. */
  private async applyRemote(changes: readonly StreamChange[], cursor: string): Promise<void> {
    const touched = new Map<string, KeyRecord>();
    const ctx = this.transitions();
    const at = this.ctx.options.now();
    for (const change of changes) {
      if (change.op === 'EMPTY' || change.op === 'DROP') {
        for (const rec of this.records.values()) touched.set(rec.key, cleared(rec));
        for (const rec of touched.values()) touched.set(rec.key, cleared(rec));
        continue;
      }
      const { key, version } = change;
      if (key === null || version === null || !key.startsWith(this.keyPrefix)) continue;
      const rec = touched.get(key) ?? this.records.get(key) ?? emptyRecord(key);
      const data = change.op === 'DELETE' || !isJsonObject(change.data) ? null : change.data;
      const { rec: next } = receive(rec, { ccid: change.ccid, key, op: change.op, version, data }, ctx);
      if (rec.sent !== null && rec.sent.ccid === change.ccid) {
        this.ctx.status({ type: 'acknowledged', bucket: this.name, key, ccid: change.ccid, version, at });
      }
      if (next !== rec) touched.set(key, next);
    }
    await this.commit([...touched.values()], 'remote', cursor);
  }

  private reportSynced(): void {
    if (this.pending === 0) this.ctx.status({ type: 'synced', at: this.ctx.options.now() });
  }
}

function sameView(a: JsonObject | null, b: JsonObject | null): boolean {
  if (a === null || b === null) return a === b;
  return a === b || jsonEqual(a, b);
}

function closedError(): ClientError {
  return new ClientError(ClientErrorCode.CLIENT_CLOSED, 'the client is closed');
}
