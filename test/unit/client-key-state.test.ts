/**
 * The client's pure parts, case by case: one key's state machine (key-state.ts), the outbox
 * order (outbox.ts), the status reducer, backoff, and the SDK's browser-safety (what it imports).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/client/backoff.js';
import {
  acknowledge,
  emptyRecord,
  expected,
  localWrite,
  nextSubmission,
  outcomeOf,
  rebase,
  receive,
  type Conflict,
  type KeyRecord,
  type TransitionContext,
} from '../../src/client/key-state.js';
import { outboxSize, selectBatch } from '../../src/client/outbox.js';
import { initialStatus, reduceStatus } from '../../src/client/status.js';

function context(overrides: Partial<TransitionContext> = {}): TransitionContext {
  let ccid = 0;
  let queued = 0;
  return { newCcid: () => `n${++ccid}`, nextQueued: () => ++queued, refusalsMax: 2, ...overrides };
}

/** A key the client has seen at version 1. */
function synced(data: Record<string, unknown>, ctx = context()): KeyRecord {
  return receive(emptyRecord('k'), { ccid: 'r0', key: 'k', op: 'MODIFY', version: 1, data: data as never }, ctx).rec;
}

describe('local writes', () => {
  it('show at once, queue one change, and coalesce edits not sent yet under its ccid', () => {
    const ctx = context();
    let rec = synced({ title: 'a' }, ctx);
    rec = localWrite(rec, { title: 'ab' }, 'c1', ctx);
    expect(rec).toMatchObject({ view: { title: 'ab' }, unsent: 'c1', sent: null, queued: 1 });
    rec = localWrite(rec, { title: 'abc' }, 'c2', ctx);
    expect(rec).toMatchObject({ view: { title: 'abc' }, unsent: 'c1', queued: 1 });
    const next = nextSubmission(rec)!;
    expect(next.submission).toEqual({ ccid: 'c1', key: 'k', op: 'MODIFY', baseVersion: 1, diff: { title: { o: 'r', v: 'abc' } } });
    expect(next.rec.sent).toMatchObject({ ccid: 'c1', baseVersion: 1, base: { title: 'a' } });
  });

  it('writing back the server state cancels the unsent change', () => {
    const ctx = context();
    const rec = localWrite(localWrite(synced({ n: 1 }, ctx), { n: 2 }, 'c1', ctx), { n: 1 }, 'c2', ctx);
    expect(rec).toMatchObject({ unsent: null, queued: null, view: { n: 1 } });
    expect(nextSubmission(rec)).toBeNull();
  });

  it('a create is sent on version 0, a delete as DELETE of whatever is current', () => {
    const ctx = context();
    const created = nextSubmission(localWrite(emptyRecord('k'), { a: 1 }, 'c1', ctx))!.submission;
    expect(created).toEqual({ ccid: 'c1', key: 'k', op: 'MODIFY', baseVersion: 0, diff: { a: { o: '+', v: 1 } } });
    const deleted = nextSubmission(localWrite(synced({ a: 1 }, ctx), null, 'c2', ctx))!.submission;
    expect(deleted).toEqual({ ccid: 'c2', key: 'k', op: 'DELETE', baseVersion: null });
    // Created and deleted before anything was sent: nothing to send.
    const gone = localWrite(localWrite(emptyRecord('k'), { a: 1 }, 'c3', ctx), null, 'c4', ctx);
    expect(nextSubmission(gone)).toBeNull();
  });

  it('edits made while a change is in flight wait for its answer, then go on top of it', () => {
    const ctx = context();
    let rec = localWrite(synced({ a: 1 }, ctx), { a: 2 }, 'c1', ctx);
    rec = nextSubmission(rec)!.rec;
    rec = localWrite(rec, { a: 2, b: 1 }, 'c2', ctx);
    expect(rec).toMatchObject({ sent: { ccid: 'c1' }, unsent: 'c2' });
    expect(nextSubmission(rec)!.submission.ccid).toBe('c1'); // the resend, unchanged
    rec = acknowledge(rec, 'c1', { kind: 'applied', version: 2, data: { a: 2 } }, ctx).rec;
    expect(rec).toMatchObject({ ghost: { version: 2, data: { a: 2 } }, sent: null, unsent: 'c2', view: { a: 2, b: 1 } });
    expect(nextSubmission(rec)!.submission).toEqual({ ccid: 'c2', key: 'k', op: 'MODIFY', baseVersion: 2, diff: { b: { o: '+', v: 1 } } });
  });
});

describe('remote changes', () => {
  it('replace the value of a key with nothing pending; old or repeated versions are ignored', () => {
    const ctx = context();
    let rec = synced({ a: 1 }, ctx);
    rec = receive(rec, { ccid: 'r1', key: 'k', op: 'MODIFY', version: 3, data: { a: 3 } }, ctx).rec;
    expect(rec).toMatchObject({ ghost: { version: 3 }, view: { a: 3 } });
    const again = receive(rec, { ccid: 'r2', key: 'k', op: 'MODIFY', version: 2, data: { a: 2 } }, ctx).rec;
    expect(again).toBe(rec);
  });

  it('are merged with pending edits as the server merges them (three-way text, both fields)', () => {
    const ctx = context();
    const text = 'the quick brown fox jumps over the lazy dog';
    let rec = synced({ text, n: 1 }, ctx);
    rec = localWrite(rec, { text: `${text} again`, n: 1 }, 'c1', ctx);
    rec = receive(rec, { ccid: 'r1', key: 'k', op: 'MODIFY', version: 2, data: { text: `so ${text}`, n: 1, m: 2 } }, ctx).rec;
    expect(rec.view).toEqual({ text: `so ${text} again`, n: 1, m: 2 });
    expect(rec.ghost.version).toBe(2);
    expect(nextSubmission(rec)!.submission).toMatchObject({ baseVersion: 2, diff: { text: { o: 'd' } } });
  });

  it('our own change in the stream acknowledges it (a lost answer is no loss)', () => {
    const ctx = context();
    let rec = nextSubmission(localWrite(synced({ a: 1 }, ctx), { a: 2 }, 'c1', ctx))!.rec;
    rec = receive(rec, { ccid: 'c1', key: 'k', op: 'MODIFY', version: 2, data: { a: 2 } }, ctx).rec;
    expect(rec).toMatchObject({ sent: null, unsent: null, queued: null, ghost: { version: 2 }, view: { a: 2 } });
    // The late answer (or a duplicate) changes nothing.
    expect(acknowledge(rec, 'c1', { kind: 'applied', version: 2, data: { a: 2 } }, ctx).rec).toBe(rec);
  });

  it('a remote delete keeps a pending local edit (it re-creates the key); a local delete stands', () => {
    const ctx = context();
    const edited = localWrite(synced({ a: 1 }, ctx), { a: 2 }, 'c1', ctx);
    const afterDelete = receive(edited, { ccid: 'r1', key: 'k', op: 'DELETE', version: 2, data: null }, ctx).rec;
    expect(afterDelete.view).toEqual({ a: 2 });
    expect(nextSubmission(afterDelete)!.submission).toMatchObject({ op: 'MODIFY', baseVersion: 0 });
    const deleted = localWrite(synced({ a: 1 }, ctx), null, 'c2', ctx);
    const afterEdit = receive(deleted, { ccid: 'r2', key: 'k', op: 'MODIFY', version: 2, data: { a: 5 } }, ctx).rec;
    expect(afterEdit.view).toBeNull();
    expect(nextSubmission(afterEdit)!.submission.op).toBe('DELETE');
  });

  it('onConflict sees base, local, remote and merged, and its answer becomes the value to send', () => {
    const seen: Conflict[] = [];
    const ctx = context({
      onConflict: (conflict) => {
        seen.push(conflict);
        return conflict.remote; // the server wins
      },
    });
    let rec = localWrite(synced({ a: 1, b: 1 }, ctx), { a: 2, b: 1 }, 'c1', ctx);
    rec = receive(rec, { ccid: 'r1', key: 'k', op: 'MODIFY', version: 2, data: { a: 1, b: 2 } }, ctx).rec;
    expect(seen).toEqual([{ key: 'k', base: { a: 1, b: 1 }, local: { a: 2, b: 1 }, remote: { a: 1, b: 2 }, merged: { a: 2, b: 2 } }]);
    expect(rec).toMatchObject({ view: { a: 1, b: 2 }, unsent: null, queued: null });
  });
});

describe('refusals', () => {
  it('INVALID_INPUT and INVALID_PERMISSION drop the change (and only it) with an effect to report', () => {
    const ctx = context();
    let rec = nextSubmission(localWrite(synced({ a: 1 }, ctx), { a: 1, b: 1 }, 'c1', ctx))!.rec;
    rec = localWrite(rec, { a: 1, b: 1, c: 1 }, 'c2', ctx);
    const { rec: after, effects } = acknowledge(rec, 'c1', { kind: 'refused', code: 'INVALID_PERMISSION', message: 'no' }, ctx);
    expect(effects).toEqual([{ type: 'dropped', key: 'k', ccid: 'c1', code: 'INVALID_PERMISSION', message: 'no' }]);
    expect(after.view).toEqual({ a: 1, c: 1 });
    expect(nextSubmission(after)!.submission).toMatchObject({ ccid: 'c2', baseVersion: 1 });
  });

  it('BAD_VERSION and MISSING_ENTITY ask for a pull and resend the edits under a new ccid, a bounded number of times', () => {
    const ctx = context();
    let rec = nextSubmission(localWrite(synced({ a: 1 }, ctx), { a: 2 }, 'c1', ctx))!.rec;
    let result = acknowledge(rec, 'c1', { kind: 'refused', code: 'BAD_VERSION', message: 'stale' }, ctx);
    expect(result.effects).toEqual([{ type: 'pull' }]);
    expect(result.rec).toMatchObject({ sent: null, unsent: 'n1', view: { a: 2 }, refusals: 1 });
    rec = nextSubmission(result.rec)!.rec;
    result = acknowledge(rec, 'n1', { kind: 'refused', code: 'MISSING_ENTITY', message: 'gone' }, ctx);
    rec = nextSubmission(result.rec)!.rec;
    result = acknowledge(rec, rec.sent!.ccid, { kind: 'refused', code: 'BAD_VERSION', message: 'stale' }, ctx);
    expect(result.effects).toMatchObject([{ type: 'dropped', code: 'BAD_VERSION' }]);
    expect(result.rec).toMatchObject({ sent: null, unsent: null, queued: null, view: { a: 1 } });
  });

  it('reads results: applied, duplicate (the original change), no-op, refused', () => {
    const base = { duplicate: false, noop: false, error: null, change: null, entity: null };
    expect(outcomeOf({ ...base, entity: { version: 3, data: { a: 1 }, deleted: false } })).toEqual({ kind: 'applied', version: 3, data: { a: 1 } });
    expect(outcomeOf({ ...base, duplicate: true, change: { version: 2, data: null } })).toEqual({ kind: 'applied', version: 2, data: null });
    expect(outcomeOf({ ...base, noop: true, entity: { version: 4, data: { a: 1 }, deleted: false } })).toEqual({ kind: 'noop', version: 4, data: { a: 1 } });
    expect(outcomeOf({ ...base, error: { code: 'BAD_VERSION', message: 'm' } })).toEqual({ kind: 'refused', code: 'BAD_VERSION', message: 'm' });
  });
});

describe('rebase and expected', () => {
  it('rebase carries edits across; no edits means the new base', () => {
    expect(rebase({ a: 1 }, { a: 1, b: 2 }, { a: 3 })).toEqual({ a: 3, b: 2 });
    expect(rebase({ a: 1 }, { a: 5 }, { a: 1 })).toEqual({ a: 5 });
    expect(rebase(null, { a: 1 }, { b: 1 })).toEqual({ a: 1, b: 1 });
    expect(rebase({ a: 1 }, null, { a: 2 })).toEqual({ a: 2 });
  });

  it('expected applies the in-flight change to the current ghost as the server will', () => {
    const ctx = context();
    let rec = nextSubmission(localWrite(synced({ a: 1, b: 1 }, ctx), { a: 2, b: 1 }, 'c1', ctx))!.rec;
    rec = receive(rec, { ccid: 'r1', key: 'k', op: 'MODIFY', version: 2, data: { a: 1, b: 3 } }, ctx).rec;
    expect(expected(rec)).toEqual({ a: 2, b: 3 });
    expect(rec.view).toEqual({ a: 2, b: 3 });
  });
});

describe('outbox', () => {
  it('sends keys in the order of their first pending edit, one change per key, at most batchSizeMax', () => {
    const ctx = context();
    const b = localWrite(emptyRecord('b'), { v: 1 }, 'cb', ctx);
    const a = localWrite(emptyRecord('a'), { v: 1 }, 'ca', ctx);
    const c = localWrite(emptyRecord('c'), { v: 1 }, 'cc', ctx);
    const batch = selectBatch([a, b, c], 2);
    expect(batch.submissions.map((s) => s.key)).toEqual(['b', 'a']);
    expect(batch.frozen.map((r) => r.key)).toEqual(['b', 'a']);
    expect(outboxSize([a, b, c])).toBe(3);
  });
});

describe('status', () => {
  it('sums pending changes per bucket and keeps the last acknowledgement, sync and error', () => {
    let status = reduceStatus(initialStatus, { type: 'pending', bucket: 'x', count: 2 });
    status = reduceStatus(status, { type: 'pending', bucket: 'y', count: 1 });
    expect(status).toMatchObject({ pending: 3, pendingByBucket: { x: 2, y: 1 } });
    status = reduceStatus(status, { type: 'pending', bucket: 'x', count: 0 });
    expect(status).toMatchObject({ pending: 1, pendingByBucket: { y: 1 } });
    status = reduceStatus(status, { type: 'acknowledged', bucket: 'y', key: 'k', ccid: 'c', version: 4, at: 10 });
    status = reduceStatus(status, { type: 'online', online: true });
    status = reduceStatus(status, { type: 'synced', at: 11 });
    status = reduceStatus(status, { type: 'error', code: 'NETWORK_ERROR', message: 'down', bucket: null, at: 12 });
    expect(status).toMatchObject({ online: true, lastAcknowledged: { key: 'k', version: 4 }, lastSyncedAt: 11, lastError: { code: 'NETWORK_ERROR' } });
    expect(reduceStatus(status, { type: 'online', online: true })).toBe(status);
  });
});

describe('backoff', () => {
  it('grows exponentially to the cap, with jitter in the upper half', () => {
    const options = { initialMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 10].map((n) => backoffMs(n, options, () => 0))).toEqual([50, 100, 200, 400, 500]);
    expect([0, 1, 2, 3, 10].map((n) => backoffMs(n, options, () => 1))).toEqual([100, 200, 400, 800, 1000]);
  });
});

describe('browser safety', () => {
  it('the SDK imports no node: module and nothing of the server but the pure model', () => {
    const dir = fileURLToPath(new URL('../../src/client/', import.meta.url));
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(dir + file, 'utf8');
      const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
      for (const spec of imports) {
        expect(spec, `${file} imports ${spec}`).not.toMatch(/^node:|^(fs|path|net|http|crypto|events|os)$/);
        if (spec.startsWith('../')) expect(spec, `${file} imports ${spec}`).toMatch(/^\.\.\/model\//);
      }
    }
  });
});
