/**
 * The outbox: which pending changes go to the server next. Pure: it reads key records and
 * returns the records to persist (frozen in-flight changes) with the submissions to send.
 *
 * Order: keys in the order of their oldest pending edit (`KeyRecord.queued`), so changes reach
 * the server in the order the app made them, except that a key waits for the answer to its
 * in-flight change before its next edits go (their base is that answer). One change per key per
 * batch, at most `batchSizeMax` changes.
 */
import { isPending, nextSubmission, pendingCount, type ChangeSubmission, type KeyRecord } from './key-state.js';

export interface Batch {
  /** Records whose in-flight change was frozen now: persist them before sending. */
  frozen: KeyRecord[];
  submissions: ChangeSubmission[];
}

export function queuedRecords(records: Iterable<KeyRecord>): KeyRecord[] {
  const pending = [...records].filter(isPending);
  return pending.sort((a, b) => (a.queued ?? 0) - (b.queued ?? 0));
}

export function selectBatch(records: Iterable<KeyRecord>, batchSizeMax: number): Batch {
  const frozen: KeyRecord[] = [];
  const submissions: ChangeSubmission[] = [];
  for (const rec of queuedRecords(records)) {
    if (submissions.length >= batchSizeMax) break;
    const next = nextSubmission(rec);
    if (next === null) continue;
    if (next.rec !== rec) frozen.push(next.rec);
    submissions.push(next.submission);
  }
  return { frozen, submissions };
}

/** Pending changes in all records (in flight plus unsent). */
export function outboxSize(records: Iterable<KeyRecord>): number {
  let n = 0;
  for (const rec of records) n += pendingCount(rec);
  return n;
}
