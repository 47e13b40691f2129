/**
 * History collection on a replica of a cluster: which change records may go, given the vector of
 * records that are causally stable (replication/stability.ts: every replica holds them, and no
 * record concurrent with them can still arrive anywhere). The partition applies these rules
 * (engine/partition-history.ts `collectReplicated`); they are pure so that every replica decides alike.
 *
 * Why the rules keep replicas converging (model/converge.ts replays a key from its records):
 * - *Superseded*: an ancestor of a *checkpoint*: a stable record S on the chain of single parents
 *   that ends at the entity's single head (`checkpointChain`). A single head descends from every
 *   other record of the key, so every record is on that chain or an ancestor of S, and the state
 *   after S is S's own data; S being stable, every later record descends from S too. Replaying
 *   from S onwards gives what replaying everything gives, except the version (a count of records):
 *   where history was collected, a record counts at least what its origin counted
 *   (`collectedBase`), which includes them, since its origin held all its ancestors.
 * - *Tombstone*: a stable DELETE that is a head: it goes with its ancestors, its entity and its
 *   versions. A replica that already dropped it may later accept a new record of the key made
 *   on nothing; a replica still holding the DELETE sees that record as concurrent, then drops
 *   the DELETE and its ancestors too and replays the key from what is left: both end with the
 *   same records, hence the same entity (`tombstoneGoes`). A concurrent record *before* the
 *   DELETE in the total order was deleted by it: then the DELETE stays (until a later write
 *   merges the heads and it is superseded like any record).
 * - *Cleared* by an EMPTY/DROP: a stable record the cut covers counts for nothing anywhere.
 * - *Rival*: a record that lost its ccid to an earlier one counts for nothing either.
 * - *ccids*: the index entry of a stable record goes after the ccid window. Every rival made
 *   concurrently with it is then already on every replica (causal stability) and was decided
 *   alike; a record with the same ccid made later is a retry after the window, which every
 *   replica applies as a new change (`isRetryAfterWindow`), remembered or not.
 *
 * Pure: no I/O, no clock.
 */
import { compareOrder, type Ordered } from './converge.js';
import { seqOf, type VersionVector } from './version-vector.js';

export type Verdict = 'keep' | 'superseded' | 'tombstone' | 'cleared';

export interface CollectableRecord {
  ref: string;
  key: string | null;
  op: string;
  /** Lost its ccid to an earlier record. */
  superseded: boolean;
  /** An EMPTY/DROP cleared it here. */
  cleared: boolean;
}

/**
 * What to do with a stable record older than the horizon. `entity`: its entity's heads here and
 * its `chain` (see {@link checkpointChain}), or undefined when the entity is gone (its tombstone
 * was collected: the record is one of its ancestors).
 */
export function replicaVerdict(record: CollectableRecord, entity: { heads: readonly string[]; chain: ReadonlySet<string> | undefined } | undefined): Verdict {
  if (record.superseded) return 'superseded';
  if (record.key === null) return 'keep'; // EMPTY and DROP stay: they tell readers to clear
  if (record.cleared) return 'cleared';
  if (entity === undefined) return 'superseded';
  if (!entity.heads.includes(record.ref) && entity.heads.length === 1 && entity.chain !== undefined && !entity.chain.has(record.ref)) return 'superseded';
  // A DELETE that is not (yet) an ancestor of a checkpoint: a tombstone, if `tombstoneGoes` says so.
  return record.op === 'DELETE' ? 'tombstone' : 'keep';
}

/**
 * From an entity's single head H back along records with a single parent, up to and including the
 * first stable one S: every record of the key is on this chain or an ancestor of S, so S is a
 * checkpoint and its ancestors may go. Walking back (rather than waiting for H to be stable) is
 * what lets an entity updated without pause be collected. `parentsOf` reads a record's parents
 * (undefined: not here); at most `stepsMax` steps; undefined when no stable record is found.
 */
export async function checkpointChain(
  head: string,
  isStable: (ref: string) => boolean,
  parentsOf: (ref: string) => Promise<readonly string[] | undefined>,
  stepsMax = 64,
): Promise<Set<string> | undefined> {
  const chain = new Set<string>();
  let ref = head;
  for (let step = 0; step <= stepsMax; step++) {
    chain.add(ref);
    if (isStable(ref)) return chain;
    const parents = await parentsOf(ref);
    if (parents === undefined || parents.length !== 1) return undefined;
    ref = parents[0]!;
  }
  return undefined;
}

/** `{origin}:{seq}` back to its parts (origins contain no `:`). */
export function parseRef(ref: string): { origin: string; seq: number } {
  const at = ref.lastIndexOf(':');
  return { origin: ref.slice(0, at), seq: Number(ref.slice(at + 1)) };
}

export function refCovered(vector: VersionVector, ref: string): boolean {
  const { origin, seq } = parseRef(ref);
  return seqOf(vector, origin) >= seq;
}

/** `ref` and every record it descends from, among `records` (a key's records). */
export function ancestorsOf(ref: string, records: ReadonlyArray<{ ref: string; deps: readonly string[] }>): Set<string> {
  const byRef = new Map(records.map((r) => [r.ref, r]));
  const seen = new Set<string>();
  const stack = [ref];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    for (const dep of byRef.get(next)?.deps ?? []) stack.push(dep);
  }
  return seen;
}

/**
 * The version before a record, as its origin counted, on a copy where history was collected
 * (a collection `floor`): replaying what is left then counts the collected records too, which its
 * origin held when it made the record. Undefined without a floor, for a record made on nothing,
 * and for one made only on records an EMPTY's `cut` cleared (counting restarts after an EMPTY).
 * Without collection the origin's count is never above the replay's, so this changes nothing.
 */
export function collectedBase(record: { deps?: readonly string[]; version: number | null }, floor: VersionVector | undefined, cut: VersionVector | undefined): number | undefined {
  const deps = record.deps ?? [];
  if (floor === undefined || record.version === null || deps.length === 0) return undefined;
  if (cut !== undefined && deps.every((dep) => refCovered(cut, dep))) return undefined;
  return record.version - 1;
}

/**
 * A stable DELETE that is not the single head of its entity: the records that go with it (itself
 * and its ancestors) when removing them changes nothing the others decide, else undefined. That
 * holds when every other record of the key comes after it in the total order (so none of them was
 * deleted by it) and none was made on one of its ancestors but not on it (so none needs them as
 * its base): the others descend from the DELETE, or were made on nothing where it was already
 * collected. Then every replica ends up dropping the same records, whichever rule it applied.
 */
export function tombstoneGoes(
  tombstone: Ordered & { ref: string },
  records: ReadonlyArray<Ordered & { ref: string; deps: readonly string[] }>,
): Set<string> | undefined {
  const gone = ancestorsOf(tombstone.ref, records);
  for (const record of records) {
    if (gone.has(record.ref)) continue;
    if (compareOrder(tombstone, record) >= 0) return undefined;
    for (const dep of record.deps) if (dep !== tombstone.ref && gone.has(dep)) return undefined;
  }
  return gone;
}

/** Whether the record's clock is past the ccid window (µs clocks, ms window and time). */
export function ccidExpired(hlc: number, now: number, ccidWindowMs: number): boolean {
  return hlc < (now - ccidWindowMs) * 1000;
}

/**
 * Two records with one ccid are one change (the first in the total order) only when made within
 * the ccid window of each other: a later one is a retry after the window, a new change on every
 * replica, whether it still remembers the ccid or not.
 */
export function isRetryAfterWindow(first: { hlc?: number }, other: { hlc?: number }, ccidWindowMs: number | undefined): boolean {
  if (ccidWindowMs === undefined) return false;
  return Math.abs((other.hlc ?? 0) - (first.hlc ?? 0)) > ccidWindowMs * 1000;
}

/**
 * Whether a copy holding `mine` can take records from a copy whose collected part is `floor`
 * as they come (gaps below the floor are records collected there): yes unless it holds some but
 * not all of an origin's records below the floor, beyond what it already took that way (`taken`:
 * the floors it took over). It may then hold entities whose later records (a deletion, say) were
 * collected there and will never come: it must be rebuilt from the other copy instead.
 */
export function needsRebuild(mine: VersionVector, floor: VersionVector, taken: VersionVector = {}): boolean {
  for (const [origin, seq] of Object.entries(floor)) {
    const have = seqOf(mine, origin);
    if (have > 0 && have < seq && have > seqOf(taken, origin)) return true;
  }
  return false;
}
