/**
 * Version retention, as Simperium documents it: the `versionMax` most recent versions of an
 * entity are kept, then every 10th version, at most `version10Max` of those.
 */
export interface RetentionPolicy {
  /** @default 50 */
  versionMax: number;
  /** @default 100 */
  version10Max: number;
}

export const defaultRetention: RetentionPolicy = { versionMax: 50, version10Max: 100 };

/** Whether `version` is still retained once the entity reached `latest`. */
export function isRetained(version: number, latest: number, policy: RetentionPolicy): boolean {
  if (version < 1 || version > latest) return false;
  if (version > latest - policy.versionMax) return true;
  if (version % 10 !== 0) return false;
  const oldestRecent = latest - policy.versionMax; // highest version outside the recent window
  const newestTen = oldestRecent - (oldestRecent % 10);
  return version > newestTen - 10 * policy.version10Max;
}

/**
 * The versions that stop being retained when the entity moves from `previous` to `latest`
 * (usually one step). Pruning is incremental, so each write deletes at most a few keys.
 */
export function versionsToPrune(previous: number, latest: number, policy: RetentionPolicy): number[] {
  const candidates = new Set<number>();
  // Versions leaving the recent window...
  for (let v = Math.max(1, previous - policy.versionMax + 1); v <= latest - policy.versionMax && v <= previous; v++) {
    candidates.add(v);
  }
  // ...and tens leaving the window of tens.
  const tensFloor = (latest: number) => {
    const oldestRecent = latest - policy.versionMax;
    return oldestRecent - (oldestRecent % 10) - 10 * policy.version10Max;
  };
  for (let t = Math.max(10, tensFloor(previous) + 10); t <= tensFloor(latest); t += 10) candidates.add(t);
  return [...candidates]
    .filter((v) => isRetained(v, previous, policy) && !isRetained(v, latest, policy))
    .sort((a, b) => a - b);
}
