/**
 * Stability of a partition's records across its replicas: which records every current replica
 * holds, and beyond that, after which no record concurrent with them can still turn up anywhere
 * (causal stability). History collection on a replica (engine/partition-history.ts) removes only records
 * this vector covers, so that no replica ever needs one another has dropped, and so that the
 * records left decide every entity the same way on every replica.
 *
 * Inputs are the vectors the replicas reported in anti-entropy (a vector is an exact summary of
 * the records a copy holds). Two steps:
 *  1. `min`, the element-wise minimum over every current replica (this one included): the
 *     records all of them hold. A replica never heard from blocks: nothing is stable.
 *  2. A record of `min` at time t1 is *causally* stable once `min` at a later time t2 covers
 *     `max` at t1 (the element-wise maximum of the same vectors). Why: each replica reported its
 *     vector after it held that record, so the records its own origin made before receiving it
 *     (the only ones that can be concurrent with it) are in its vector, hence in `max`(t1); once
 *     every replica holds all of `max`(t1), every record that can still arrive anywhere was made
 *     after the record, knowing it. That is what lets a ccid be forgotten and a key's earlier
 *     records be dropped without a late concurrent record being merged differently on two replicas.
 *
 * A change of the replica set starts over from nothing (a new replica blocks collection until it
 * has caught up and reported). Records accepted by nodes outside the set (stand-ins that have not
 * handed over yet) are not seen here: see docs/ARCHITECTURE.md, "History collection".
 *
 * Pure: no I/O, no clock.
 */
import { dominates, emptyVector, merge, seqOf, type VersionVector } from '../model/version-vector.js';

export interface Stability {
  /** The replica set (sorted ids, comma-separated) this state was computed for. */
  replicas: string;
  /** Causally stable: what history collection may act on. Only grows while the set stays. */
  stable: VersionVector;
  /** `min` and `max` of an earlier step, waiting for `min` to reach that `max`. */
  pending: { min: VersionVector; max: VersionVector } | null;
}

export const initialStability: Stability = Object.freeze({ replicas: '', stable: emptyVector, pending: null }) as Stability;

/** Element-wise minimum: the records every vector covers (an origin missing from one counts 0). */
export function minVector(vectors: readonly VersionVector[]): VersionVector {
  if (vectors.length === 0) return emptyVector;
  const out: Record<string, number> = {};
  for (const [origin, seq] of Object.entries(vectors[0]!)) {
    let low = seq;
    for (const vector of vectors.slice(1)) low = Math.min(low, seqOf(vector, origin));
    if (low > 0) out[origin] = low;
  }
  return out;
}

/** Element-wise maximum. */
export function maxVector(vectors: readonly VersionVector[]): VersionVector {
  return vectors.reduce<VersionVector>((a, b) => merge(a, b), emptyVector);
}

/**
 * One step: `replicas` are the partition's current replicas (this node included), `vectors`
 * what each last reported (undefined: never heard from since this node started or since the set
 * changed).
 */
export function advanceStability(state: Stability, replicas: readonly string[], vectors: ReadonlyArray<VersionVector | undefined>): Stability {
  const set = [...replicas].sort().join(',');
  let current: Stability = state.replicas === set ? state : { replicas: set, stable: emptyVector, pending: null };
  if (replicas.length === 0 || vectors.some((v) => v === undefined)) return current;
  const known = vectors as readonly VersionVector[];
  const min = minVector(known);
  const max = maxVector(known);
  if (current.pending !== null && dominates(min, current.pending.max)) {
    current = { ...current, stable: merge(current.stable, current.pending.min), pending: null };
  }
  if (current.pending === null) current = { ...current, pending: { min, max } };
  return current;
}

