/**
 * Per-credential quotas: requests per second (rate-limiter-flexible's in-memory limiter) and
 * live subscriptions, for metered credentials (auth/access.ts `isMetered`). Both answer
 * LIMIT_EXCEEDED with what to do.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { ErrorCode, SyncError } from '../model/errors.js';
import { isMetered, type Access } from './access.js';

export class Quotas {
  private readonly rate: RateLimiterMemory;
  private readonly live = new Map<string, number>();

  constructor(
    private readonly limits: { requestsPerSecondMax: number; subscriptionsPerCredentialMax: number },
  ) {
    this.rate = new RateLimiterMemory({ points: limits.requestsPerSecondMax, duration: 1 });
  }

  /** Counts one request of the credential; LIMIT_EXCEEDED past its rate. */
  async request(access: Access): Promise<void> {
    if (!isMetered(access)) return;
    try {
      await this.rate.consume(access.credential);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      throw new SyncError(
        ErrorCode.LIMIT_EXCEEDED,
        `more than ${this.limits.requestsPerSecondMax} requests per second with this credential: retry in ${error.msBeforeNext} ms`,
      );
    }
  }

  /** Takes a live-subscription place of the credential; call the result when it ends. */
  subscribe(access: Access): () => void {
    if (!isMetered(access)) return () => undefined;
    const count = this.live.get(access.credential) ?? 0;
    if (count >= this.limits.subscriptionsPerCredentialMax) {
      throw new SyncError(ErrorCode.LIMIT_EXCEEDED, `at most ${this.limits.subscriptionsPerCredentialMax} live subscriptions per credential`);
    }
    this.live.set(access.credential, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.live.get(access.credential) ?? 1) - 1;
      if (left === 0) this.live.delete(access.credential);
      else this.live.set(access.credential, left);
    };
  }
}
