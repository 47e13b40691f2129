/**
 * Convergence of one entity across replicas: its state is a deterministic function of the *set*
 * of records that changed it, whatever order they arrived in (DESIGN: "ordering, versions and
 * convergence").
 *
 * Records are put in one total order that respects causality: the hybrid logical clock of their
 * origin, then the origin's id (a record's clock is above that of every record its origin had
 * seen, so causes come first). Each record names its causal parents for the key (`deps`: the
 * key's heads where it was made) and carries the state it left there. Replaying in order:
 * - a record made on everything before it (its parents are the current heads) is the new state,
 *   as it was at its origin: this is every record when only one node accepts writes;
 * - a record made concurrently with some of what precedes it is merged three-way: its own edit
 *   (from the state of its causal past to its state) is rebased over everything else
 *   (`transform`, the same rebase the engine applies to a client's stale change), so different
 *   fields both survive, edits of one string merge, and otherwise the later record wins.
 * The version is the number of records: every replica holding the same set reports the same
 * version, and it grows whenever a replica learns of another record.
 *
 * Pure: no I/O, no clock.
 */
import { applyDiff, applyDiffLenient, diffObjects, transform } from './jsondiff.js';
import type { JsonObject } from './json.js';

/** A record's place in the total order. */
export interface Ordered {
  hlc: number;
  origin: string;
}

/** Total order of records: clock, then origin (an origin never reuses a clock value). */
export function compareOrder(a: Ordered, b: Ordered): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
}

/** The reference of a record: `{origin}:{seq}`, unique in a partition. */
export function recordRef(origin: string, seq: number): string {
  return `${origin}:${seq}`;
}

export interface KeyRecord extends Ordered {
  ref: string;
  /** The key's heads at the record's origin when it was made: its causal parents. */
  deps: readonly string[];
  /** The state the record left at its origin: the object, or null when it deleted the entity. */
  data: JsonObject | null;
  /**
   * Where history was collected (model/replica-history.ts): the version before it as its origin
   * counted. The version is a count of records; this keeps collected ones counted. Without
   * collection it changes nothing: a record's origin never counts more than precede it.
   */
  base?: number;
}

export interface KeyState {
  /** null: deleted (or never created, when `version` is 0). */
  data: JsonObject | null;
  version: number;
  /** Records no other record of the set descends from, sorted. */
  heads: string[];
  /** The last record in the total order. */
  last: Ordered | null;
}

export const emptyKeyState: KeyState = Object.freeze({ data: null, version: 0, heads: [], last: null }) as KeyState;

/** Same set of references (both sorted or not; small arrays). */
export function sameRefs(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (const ref of a) if (!b.includes(ref)) return false;
  return true;
}

/**
 * Whether `record` can be applied to `state` as it is (the common case): it was made on exactly
 * the state's heads and comes after its last record. Otherwise the key must be replayed.
 */
export function extendsState(state: KeyState, record: Ordered & { deps: readonly string[] }): boolean {
  return sameRefs(record.deps, state.heads) && (state.last === null || compareOrder(state.last, record) < 0);
}

/** The state after `record` when {@link extendsState} holds. */
export function extend(state: KeyState, record: KeyRecord): KeyState {
  return { data: record.data, version: state.version + 1, heads: [record.ref], last: { hlc: record.hlc, origin: record.origin } };
}

/** The state of a key from the set of its records, in any order. Duplicated refs count once. */
export function replayKey(records: readonly KeyRecord[]): KeyState {
  const byRef = new Map<string, KeyRecord>();
  for (const record of records) if (!byRef.has(record.ref)) byRef.set(record.ref, record);
  const sorted = [...byRef.values()].sort(compareOrder);
  return replaySorted(sorted, byRef);
}

function replaySorted(sorted: readonly KeyRecord[], byRef: ReadonlyMap<string, KeyRecord>): KeyState {
  let state: KeyState = emptyKeyState;
  const heads = new Set<string>();
  for (const record of sorted) {
    // Parents outside the set (superseded, or cleared by an EMPTY) do not count.
    const deps = record.deps.filter((ref) => byRef.has(ref));
    let data: JsonObject | null;
    if (sameRefs(deps, [...heads])) {
      data = record.data;
    } else {
      const base = replaySorted(causalPast(deps, byRef), byRef).data;
      data = merge3(base, state.data, record.data);
    }
    for (const ref of deps) heads.delete(ref);
    heads.add(record.ref);
    // Where history was collected: at least as many records as its origin counted.
    const before = record.base !== undefined ? Math.max(state.version, record.base) : state.version;
    state = { data, version: before + 1, heads: [...heads].sort(), last: { hlc: record.hlc, origin: record.origin } };
  }
  return state;
}

/** The records `deps` descend from, themselves included, in the total order. */
function causalPast(deps: readonly string[], byRef: ReadonlyMap<string, KeyRecord>): KeyRecord[] {
  const seen = new Set<string>();
  const stack = [...deps];
  while (stack.length > 0) {
    const ref = stack.pop()!;
    if (seen.has(ref)) continue;
    const record = byRef.get(ref);
    if (record === undefined) continue;
    seen.add(ref);
    stack.push(...record.deps);
  }
  return [...seen].map((ref) => byRef.get(ref)!).sort(compareOrder);
}

/**
 * Three-way merge of entity states: `theirs` (the later record's state) edited `base`
 * concurrently with `ours` (everything else). null is a deleted or absent entity. A later delete
 * wins; a later edit of a concurrently deleted entity brings it back as that edit left it.
 */
export function merge3(base: JsonObject | null, ours: JsonObject | null, theirs: JsonObject | null): JsonObject | null {
  if (theirs === null) return null;
  if (ours === null) return theirs;
  const from = base ?? {};
  const local = diffObjects(from, theirs);
  try {
    return applyDiff(ours, transform(local, diffObjects(from, ours), from, true));
  } catch {
    // The rebased edit should always fit; if it does not, the field-level fallback is just as
    // deterministic (same inputs on every replica).
    return applyDiffLenient(ours, local);
  }
}
