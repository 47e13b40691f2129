/**
 * Brute-force slowing for password checks; the directory keeps one per user and one per source
 * address, the latter more lenient (many users may sign in from behind one NAT).
 *
 * Each subject (a user of an app, a source address) may fail `freeFailures` times; after that,
 * every further failure locks it out for twice as long as the last lock-out (from `baseLockMs` up
 * to `maxLockMs`). While locked out, attempts are refused without checking the password, so
 * neither a right nor a wrong guess costs the node a scrypt. A success clears the user's count,
 * not the address's: one valid account does not launder guesses at others. Counts are forgotten
 * `forgetMs` after the last failure, and at most `subjectsMax` are kept (least recently failed
 * dropped first), so the table's memory is bounded whatever an attacker sends.
 *
 * Refusing rather than delaying: a delayed answer holds a connection and a request's memory for
 * the delay, which an attacker can multiply; a refusal with `retryAfterMs` costs nothing.
 */
import { LRUCache } from 'lru-cache';

export interface ThrottleOptions {
  /** Failures allowed before lock-outs start. @default 5 */
  freeFailures?: number;
  /** First lock-out. @default 1000 */
  baseLockMs?: number;
  /** Longest lock-out. @default 900000 (15 min) */
  maxLockMs?: number;
  /** A subject's failures are forgotten this long after its last one. @default 86400000 (1 day) */
  forgetMs?: number;
  /** Subjects tracked at most. @default 100000 */
  subjectsMax?: number;
  now: () => number;
}

interface Record {
  failures: number;
  lockedUntil: number;
  lastFailure: number;
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterMs: number };

export class Throttle {
  private readonly records: LRUCache<string, Record>;
  private readonly freeFailures: number;
  private readonly baseLockMs: number;
  private readonly maxLockMs: number;
  private readonly forgetMs: number;

  constructor(private readonly options: ThrottleOptions) {
    this.freeFailures = options.freeFailures ?? 5;
    this.baseLockMs = options.baseLockMs ?? 1000;
    this.maxLockMs = options.maxLockMs ?? 15 * 60_000;
    this.forgetMs = options.forgetMs ?? 86_400_000;
    this.records = new LRUCache({ max: options.subjectsMax ?? 100_000 });
  }

  /** Whether an attempt concerning all of `subjects` may be checked now. */
  check(subjects: readonly string[]): ThrottleVerdict {
    const now = this.options.now();
    let wait = 0;
    for (const subject of subjects) {
      const record = this.current(subject, now);
      if (record !== undefined && record.lockedUntil > now) wait = Math.max(wait, record.lockedUntil - now);
    }
    return wait > 0 ? { allowed: false, retryAfterMs: wait } : { allowed: true };
  }

  /** Records a failed attempt against each subject. */
  fail(subjects: readonly string[]): void {
    const now = this.options.now();
    for (const subject of subjects) {
      const record = this.current(subject, now) ?? { failures: 0, lockedUntil: 0, lastFailure: now };
      record.failures++;
      record.lastFailure = now;
      const excess = record.failures - this.freeFailures;
      if (excess > 0) record.lockedUntil = now + Math.min(this.maxLockMs, this.baseLockMs * 2 ** Math.min(excess - 1, 30));
      this.records.set(subject, record);
    }
  }

  /** Clears a subject's failures (a user who got their password right). */
  succeed(subject: string): void {
    this.records.delete(subject);
  }

  private current(subject: string, now: number): Record | undefined {
    const record = this.records.get(subject);
    if (record === undefined) return undefined;
    if (now - record.lastFailure > this.forgetMs && record.lockedUntil <= now) {
      this.records.delete(subject);
      return undefined;
    }
    return record;
  }
}
