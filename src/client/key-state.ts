/**
 * One key of a synced bucket on the client: what the server holds as far as we know (the
 * ghost), what the app sees (the view), and the local edits not yet acknowledged, as a pure state
 * machine. The bucket (bucket.ts) persists records and feeds them events; everything here is a
 * function of its inputs (ids are passed in).
 *
 * The merge is the server's: a local edit is a jsondiff against the state it was made on, and
 * when that state moves (a remote change arrives, our own change is acknowledged), the edit is
 * rebased with `transform(local, diff(base, current), base, localWins = true)` exactly as
 * `Partition.modify` rebases a stale change. So the view is always "the server's state plus our
 * pending edits, merged as the server will merge them", and once nothing is pending the view is
 * the ghost: every client converges to the server's state.
 *
 * Per key at most one change is in flight (`sent`): its content is frozen when it is first sent,
 * since the server may already have applied it under its ccid and a resend must be the same
 * change. Edits made meanwhile accumulate under one unsent ccid (`unsent`) and are sent as one
 * diff once the server's answer for the first has come back (its result is their base).
 */
import { applyDiff, diffObjects, transform, type ObjectDiff } from '../model/jsondiff.js';
import { jsonEqual, type JsonObject } from '../model/json.js';

/** What the server holds for a key as far as this client knows. Versions only move forward. */
export interface Ghost {
  /** 0: no version seen (the key does not exist, as far as we know). */
  version: number;
  /** null: absent or deleted. */
  data: JsonObject | null;
}

/** A change that went to the server, possibly applied: resent as is, under the same ccid. */
export interface SentChange {
  ccid: string;
  op: 'MODIFY' | 'DELETE';
  /** MODIFY: the version it was made on, 0 for a create. DELETE: null, whatever is current. */
  baseVersion: number | null;
  /** The data at `baseVersion` (null for a create and for DELETE). */
  base: JsonObject | null;
  /** MODIFY: the jsondiff from `base ?? {}`; null for DELETE. */
  diff: ObjectDiff | null;
}

export interface KeyRecord {
  key: string;
  ghost: Ghost;
  /** What the app sees; null when absent or deleted. */
  view: JsonObject | null;
  sent: SentChange | null;
  /** The ccid of the local edits not sent yet, if any. */
  unsent: string | null;
  /** Outbox position (of the key's oldest pending edit); null when nothing is pending. */
  queued: number | null;
  /** Consecutive refusals that asked for a resend, to bound them. */
  refusals: number;
}

/** The input of `submitChanges` for one change. */
export interface ChangeSubmission {
  ccid: string;
  key: string;
  op: 'MODIFY' | 'DELETE';
  baseVersion: number | null;
  diff?: ObjectDiff;
}

/** A remote change, as the change stream delivers it. */
export interface RemoteChange {
  ccid: string;
  key: string;
  op: 'MODIFY' | 'DELETE';
  version: number;
  /** The whole object at `version`; null for DELETE. */
  data: JsonObject | null;
}

/** The server's answer for one of our changes. */
export type Outcome =
  | { kind: 'applied'; version: number; data: JsonObject | null }
  /** Applied nothing (a no-op): `version`/`data` are the entity's current state, if known. */
  | { kind: 'noop'; version: number | null; data: JsonObject | null }
  | { kind: 'refused'; code: RefusalCode; message: string };

export type RefusalCode = 'BAD_VERSION' | 'MISSING_ENTITY' | 'INVALID_INPUT' | 'INVALID_PERMISSION';

/** Something a transition asks the caller to do or report. */
export type Effect =
  /** A local change was given up (refused for good); the view no longer shows it. */
  | { type: 'dropped'; key: string; ccid: string; code: RefusalCode; message: string }
  /** The server's state must be pulled before resending (BAD_VERSION). */
  | { type: 'pull' };

/** A remote change met local edits of the same key not yet acknowledged. */
export interface Conflict {
  key: string;
  /** The server's state our edits were made on (null: absent). */
  base: JsonObject | null;
  /** What the app saw: `base` plus our pending edits. */
  local: JsonObject | null;
  /** The server's new state, without our pending edits. */
  remote: JsonObject | null;
  /** Our edits merged into `remote` as the server merges them: what the key shows by default. */
  merged: JsonObject | null;
}

/**
 * Decides a conflict: the object the key should hold (our edits are then whatever makes
 * `remote` into it), null to delete it, or undefined to accept `merged`.
 */
export type ConflictResolver = (conflict: Conflict) => JsonObject | null | undefined;

export interface TransitionContext {
  /** A fresh ccid, for edits that must go to the server again under a new id. */
  newCcid: () => string;
  /** The next outbox position. */
  nextQueued: () => number;
  /** Refusals (BAD_VERSION, MISSING_ENTITY) of one key in a row before its edits are dropped. */
  refusalsMax: number;
  onConflict?: ConflictResolver | undefined;
}

export function emptyRecord(key: string): KeyRecord {
  return { key, ghost: { version: 0, data: null }, view: null, sent: null, unsent: null, queued: null, refusals: 0 };
}

export function isPending(rec: KeyRecord): boolean {
  return rec.sent !== null || rec.unsent !== null;
}

/** Pending changes of the key: the one in flight and the unsent one. */
export function pendingCount(rec: KeyRecord): number {
  return (rec.sent === null ? 0 : 1) + (rec.unsent === null ? 0 : 1);
}

/**
 * The state the unsent edits are made on: the ghost, with the in-flight change applied as the
 * server will apply it (rebased over whatever the ghost moved by since it was made).
 */
export function expected(rec: KeyRecord): JsonObject | null {
  const { sent, ghost } = rec;
  if (sent === null) return ghost.data;
  if (sent.op === 'DELETE') return null;
  const base = sent.base ?? {};
  const diff = sent.diff ?? {};
  // Gone on the server: the edit will be refused (MISSING_ENTITY) and re-sent as a create.
  if (ghost.data === null) return applyDiff(base, diff);
  return applyDiff(ghost.data, transform(diff, diffObjects(base, ghost.data), base, true));
}

/**
 * `view`'s edits relative to `from`, carried over to `to` with the server's transform. A local
 * delete stands (later wins, as in `transform`); local edits of a key deleted remotely re-create
 * it (as the server's transform re-inserts a key the winner edited).
 */
export function rebase(from: JsonObject | null, to: JsonObject | null, view: JsonObject | null): JsonObject | null {
  if (sameData(view, from)) return to;
  if (view === null) return null;
  if (to === null) return view;
  const base = from ?? {};
  const local = diffObjects(base, view);
  return applyDiff(to, transform(local, diffObjects(base, to), base, true));
}

export function sameData(a: JsonObject | null, b: JsonObject | null): boolean {
  if (a === null || b === null) return a === b;
  return jsonEqual(a, b);
}

/** Restores the invariants after a change of ghost, view or sent. */
function settle(rec: KeyRecord, ctx: Pick<TransitionContext, 'newCcid' | 'nextQueued'>): KeyRecord {
  let { unsent, view } = rec;
  const base = expected(rec);
  if (sameData(view, base)) unsent = null;
  else if (unsent === null) unsent = ctx.newCcid();
  if (rec.sent === null && unsent === null) view = rec.ghost.data;
  const pending = rec.sent !== null || unsent !== null;
  const queued = pending ? (rec.queued ?? ctx.nextQueued()) : null;
  return { ...rec, view, unsent, queued, refusals: pending ? rec.refusals : 0 };
}

/** The app wrote `view` (null: deleted). `ccid` names the edit if it starts a new pending change. */
export function localWrite(rec: KeyRecord, view: JsonObject | null, ccid: string, ctx: Pick<TransitionContext, 'nextQueued'>): KeyRecord {
  if (sameData(view, rec.view)) return rec;
  return settle({ ...rec, view }, { newCcid: () => rec.unsent ?? ccid, nextQueued: ctx.nextQueued });
}

/**
 * The change to send for this key now, if any: the in-flight one again (unchanged), or the
 * unsent edits frozen into a new in-flight change. Returns the record to persist before sending.
 */
export function nextSubmission(rec: KeyRecord): { rec: KeyRecord; submission: ChangeSubmission } | null {
  let sent = rec.sent;
  let next = rec;
  if (sent === null) {
    if (rec.unsent === null) return null;
    sent = freeze(rec, rec.unsent);
    next = { ...rec, sent, unsent: null };
  }
  const submission: ChangeSubmission = { ccid: sent.ccid, key: rec.key, op: sent.op, baseVersion: sent.baseVersion };
  if (sent.diff !== null) submission.diff = sent.diff;
  return { rec: next, submission };
}

function freeze(rec: KeyRecord, ccid: string): SentChange {
  const { ghost, view } = rec;
  if (view === null) return { ccid, op: 'DELETE', baseVersion: null, base: null, diff: null };
  if (ghost.data === null) return { ccid, op: 'MODIFY', baseVersion: 0, base: null, diff: diffObjects({}, view) };
  return { ccid, op: 'MODIFY', baseVersion: ghost.version, base: ghost.data, diff: diffObjects(ghost.data, view) };
}

/** The server answered for `ccid`. Answers for anything but the key's in-flight change are stale. */
export function acknowledge(rec: KeyRecord, ccid: string, outcome: Outcome, ctx: TransitionContext): { rec: KeyRecord; effects: Effect[] } {
  const { sent } = rec;
  if (sent === null || sent.ccid !== ccid) return { rec, effects: [] };
  const from = expected(rec);
  if (outcome.kind !== 'refused') {
    let ghost = rec.ghost;
    if (outcome.version !== null && outcome.version > ghost.version) ghost = { version: outcome.version, data: outcome.data };
    // The ghost now includes our change, so the edits made since are relative to it.
    const next = { ...rec, ghost, sent: null, refusals: 0 };
    return { rec: settle({ ...next, view: rebase(from, ghost.data, rec.view) }, ctx), effects: [] };
  }
  const dropped: Effect = { type: 'dropped', key: rec.key, ccid, code: outcome.code, message: outcome.message };
  switch (outcome.code) {
    case 'INVALID_INPUT':
    case 'INVALID_PERMISSION': {
      // Not applied and never will be: take its effect out of the view, keep later edits.
      const next = { ...rec, sent: null };
      return { rec: settle({ ...next, view: rebase(from, rec.ghost.data, rec.view) }, ctx), effects: [dropped] };
    }
    case 'MISSING_ENTITY':
    case 'BAD_VERSION': {
      const refusals = rec.refusals + 1;
      if (refusals > ctx.refusalsMax) {
        return { rec: settle({ ...rec, sent: null, unsent: null, view: rec.ghost.data, refusals: 0 }, ctx), effects: [dropped] };
      }
      // Our base is not the server's (MISSING_ENTITY: deleted meanwhile; BAD_VERSION: another
      // version, in an OPTIMISTIC bucket). A BAD_VERSION answer carries the server's entity, but
      // the ghost may already be past it and the stream must stay the one source of versions
      // here, so the ghost stays; the edits stay in
      // the view and are resent as one new change once the state has been pulled: on a
      // tombstone as a create (a local edit wins over a concurrent delete), and a delete of
      // what is gone is nothing to send.
      const next = settle({ ...rec, sent: null, refusals }, ctx);
      return { rec: next, effects: [{ type: 'pull' }] };
    }
  }
}

/** A change of the stream arrived (in stream order). Our own change counts as its acknowledgement. */
export function receive(rec: KeyRecord, change: RemoteChange, ctx: TransitionContext): { rec: KeyRecord; conflict: Conflict | null } {
  if (rec.sent !== null && rec.sent.ccid === change.ccid) {
    return { rec: acknowledge(rec, change.ccid, { kind: 'applied', version: change.version, data: change.data }, ctx).rec, conflict: null };
  }
  if (change.version <= rec.ghost.version) return { rec, conflict: null };
  const ghost: Ghost = { version: change.version, data: change.data };
  if (!isPending(rec)) return { rec: { ...rec, ghost, view: ghost.data }, conflict: null };
  const from = expected(rec);
  const moved = { ...rec, ghost };
  const to = expected(moved);
  const merged = rebase(from, to, rec.view);
  let view = merged;
  let conflict: Conflict | null = null;
  if (ctx.onConflict !== undefined) {
    conflict = { key: rec.key, base: rec.ghost.data, local: rec.view, remote: ghost.data, merged };
    const resolved = ctx.onConflict?.(conflict);
    if (resolved !== undefined) view = resolved;
  }
  return { rec: settle({ ...moved, view }, ctx), conflict };
}

/** EMPTY or DROP: every key is gone, and so are the edits made before it (documented). */
export function cleared(rec: KeyRecord): KeyRecord {
  return emptyRecord(rec.key);
}

/** The fields of a `ChangeResult` (GraphQL, or the engine's own) that decide an outcome. */
export interface ChangeResultLike {
  duplicate: boolean;
  noop: boolean;
  error: { code: string; message: string } | null;
  change: { version: number | null; data: unknown } | null;
  entity: { version: number; data: unknown; deleted: boolean } | null;
}

/** Reads a `ChangeResult`. A duplicate carries the original change (its version and data). */
export function outcomeOf(result: ChangeResultLike): Outcome {
  if (result.error !== null) {
    const code = result.error.code as RefusalCode;
    return { kind: 'refused', code, message: result.error.message };
  }
  const entity = result.entity;
  if (result.noop) return { kind: 'noop', version: entity?.version ?? null, data: entity === null || entity.deleted ? null : (entity.data as JsonObject) };
  if (entity !== null) return { kind: 'applied', version: entity.version, data: entity.deleted ? null : (entity.data as JsonObject) };
  const change = result.change;
  if (change === null || change.version === null) return { kind: 'noop', version: null, data: null };
  return { kind: 'applied', version: change.version, data: (change.data as JsonObject | null) ?? null };
}
