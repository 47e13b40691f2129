/**
 * Exponential backoff with full jitter (a random delay up to the exponential bound), so that
 * clients cut off together do not come back together. Pure: the random source is passed in.
 */
export interface BackoffOptions {
  /** First retry delay bound. @default 500 */
  initialMs: number;
  /** Largest delay. @default 30_000 */
  maxMs: number;
}

export const defaultBackoff: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

/** The delay before retry number `attempt` (0-based): in [bound/2, bound], bound = min(max, initial·2^attempt). */
export function backoffMs(attempt: number, options: BackoffOptions, random: () => number): number {
  const bound = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  // Half fixed, half random: never a zero delay (a hot loop), still spread out.
  return Math.round(bound / 2 + (random() * bound) / 2);
}
