/**
 * Group commit: writes submitted while a synced write is in flight are gathered into the next
 * one, so N concurrent changes cost one fsync instead of N. Each submission stays atomic (it is
 * wholly inside one batch) and submissions become durable in the order they were submitted.
 */
import type { KeyValueStore, WriteOp } from './store.js';

export interface GroupCommitOptions {
  /** Most operations in one synced batch; a submission is never split. @default 20_000 */
  batchOpsMax?: number;
  /** Called after a batch is durable with its size, for metrics. */
  onBatch?: (submissions: number, ops: number, durationMs: number) => void;
  /** Called when an `onDurable` callback throws. */
  onCallbackError?: (error: unknown) => void;
}

interface Submission {
  ops: WriteOp[];
  onDurable: (() => void) | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class GroupCommitter {
  private queue: Submission[] = [];
  private writing: Promise<void> | undefined;
  private readonly batchOpsMax: number;

  constructor(
    private readonly store: KeyValueStore,
    private readonly options: GroupCommitOptions & {
      /** Called when a write fails, after its submissions and everything queued were rejected. */
      onFailure: (error: unknown) => void;
    },
  ) {
    this.batchOpsMax = options.batchOpsMax ?? 20_000;
  }

  /**
   * Resolves once `ops` are durable. `onDurable` runs synchronously right after, in submission
   * order, before any later batch is written: the place to publish to live feeds in order.
   */
  submit(ops: WriteOp[], onDurable?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, onDurable, resolve, reject });
      this.writing ??= this.drain();
    });
  }

  /** Resolves when everything submitted so far is durable (or failed). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  get pending(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    // Start on a later tick: `submit` must have stored this promise in `writing` before the loop
    // can end (a store whose write throws synchronously would otherwise finish first).
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        const taken: Submission[] = [];
        let ops: WriteOp[] = [];
        let count = 0;
        while (this.queue.length > 0) {
          const next = this.queue[0]!;
          if (taken.length > 0 && count + next.ops.length > this.batchOpsMax) break;
          this.queue.shift();
          taken.push(next);
          count += next.ops.length;
        }
        ops = taken.length === 1 ? taken[0]!.ops : taken.flatMap((s) => s.ops);
        const started = performance.now();
        try {
          await this.store.write(ops, { sync: true });
        } catch (error) {
          // Later submissions were computed on top of these ones: none of them may land.
          const failed = [...taken, ...this.queue];
          this.queue = [];
          for (const s of failed) s.reject(error);
          guard(() => this.options.onFailure(error), this.options.onCallbackError);
          continue;
        }
        guard(() => this.options.onBatch?.(taken.length, count, performance.now() - started), this.options.onCallbackError);
        for (const s of taken) {
          try {
            s.onDurable?.();
          } catch (error) {
            // A listener's failure must not undo or stall durable writes; report it and go on.
            this.options.onCallbackError?.(error);
          }
          s.resolve();
        }
      }
    } finally {
      this.writing = undefined;
    }
  }
}

/** Runs an observer callback: its failure is reported, never allowed to stall the write loop. */
function guard(callback: () => void, report: ((error: unknown) => void) | undefined): void {
  try {
    callback();
  } catch (error) {
    report?.(error);
  }
}
