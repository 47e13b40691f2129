/**
 * Simperium's jsondiff: object diffs as they travel between clients and syncgraph, with the
 * validation, diffing, strict and lenient application and the transform (rebase) that merges
 * concurrent changes. The format and the rules are written down in docs/JSONDIFF.md; this module
 * follows it. Pure: no I/O, clock or randomness, and inputs are never mutated. Outputs of the
 * public functions share no objects with their inputs, so callers may mutate them freely.
 */
import { ErrorCode, SyncError } from './errors.js';
import { inspectJson, isJsonObject, jsonEqual, type JsonObject, type JsonValue } from './json.js';
import { applyTextDelta, isTextDelta, mergeText, textDelta } from './text.js';

/** One operation on a key or a list element; see docs/JSONDIFF.md for each. */
export type DiffOp =
  | { o: '+'; v: JsonValue }
  | { o: '-'; v?: JsonValue }
  | { o: 'r'; v: JsonValue }
  | { o: 'I'; v: number }
  | { o: 'O'; v: ObjectDiff }
  | { o: 'L'; v: ListDiff }
  | { o: 'd'; v: string };
export type ObjectDiff = { [key: string]: DiffOp };
/** Keys are canonical decimal indices; see {@link applyDiff} for what they index. */
export type ListDiff = { [index: string]: DiffOp };

/**
 * A diff that does not fit the value it is applied to: Simperium's 440 "diff failed to apply",
 * after which the client resends the full object. A SyncError with code INVALID_INPUT, so that
 * the edge reports it as a refused change rather than a system failure.
 */
export class DiffApplyError extends SyncError {
  constructor(message: string) {
    super(ErrorCode.INVALID_INPUT, message);
  }
}

export function isEmptyDiff(d: ObjectDiff): boolean {
  return Object.keys(d).length === 0;
}

// ---------------------------------------------------------------------------------------------
// Validation of untrusted diffs
// ---------------------------------------------------------------------------------------------

/**
 * Validates a diff received from a client and returns a detached copy. The top-level diff is
 * level 1 and every `O`/`L` adds a level, mirroring the depth of the containers they edit, so at
 * most `depthMax` levels are accepted and a value inserted at level ℓ may be at most
 * `depthMax − ℓ` deep: a valid diff cannot push a document past the same depth limit. Op objects
 * may carry only `o` and `v`. Throws SyncError(INVALID_INPUT) naming the path (`diff.title.v`).
 * Whether the diff fits a document is decided later, by {@link applyDiff}.
 */
export function parseDiff(value: unknown, depthMax: number): ObjectDiff {
  return parseObjectDiff(value, depthMax, 1, 'diff');
}

function parseObjectDiff(value: unknown, depthMax: number, level: number, path: string): ObjectDiff {
  if (!isPlainObject(value)) throw invalid(path, 'must be an object diff');
  if (level > depthMax) throw invalid(path, `nests deeper than ${depthMax} levels`);
  const out: ObjectDiff = {};
  for (const key of Object.keys(value)) {
    setOwn(out, key, parseOp(value[key], depthMax, level, keyPath(path, key)));
  }
  return out;
}

function parseListDiff(value: unknown, depthMax: number, level: number, path: string): ListDiff {
  if (!isPlainObject(value)) throw invalid(path, 'must be a list diff');
  if (level > depthMax) throw invalid(path, `nests deeper than ${depthMax} levels`);
  const out: ListDiff = {};
  for (const key of Object.keys(value)) {
    if (parseIndex(key) === undefined) throw invalid(keyPath(path, key), 'is not a list index');
    out[key] = parseOp(value[key], depthMax, level, `${path}[${key}]`);
  }
  return out;
}

function parseOp(value: unknown, depthMax: number, level: number, path: string): DiffOp {
  if (!isPlainObject(value)) throw invalid(path, 'must be an operation {o, v}');
  for (const key of Object.keys(value)) {
    if (key !== 'o' && key !== 'v') throw invalid(keyPath(path, key), 'is not an operation field');
  }
  const o = getOwn(value, 'o');
  const hasV = Object.hasOwn(value, 'v');
  const v = getOwn(value, 'v');
  const vPath = `${path}.v`;
  switch (o) {
    case '+':
    case 'r':
      if (!hasV) throw invalid(vPath, 'is required');
      return { o, v: parseValue(v, depthMax - level, vPath) };
    case '-':
      return hasV ? { o, v: parseValue(v, depthMax - level, vPath) } : { o };
    case 'I':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(vPath, 'must be a finite number');
      return { o, v };
    case 'd':
      if (typeof v !== 'string' || !isTextDelta(v)) throw invalid(vPath, 'must be a text delta');
      return { o, v };
    case 'O':
      return { o, v: parseObjectDiff(v, depthMax, level + 1, vPath) };
    case 'L':
      return { o, v: parseListDiff(v, depthMax, level + 1, vPath) };
    default:
      throw invalid(`${path}.o`, 'is not a known operation');
  }
}

function parseValue(value: unknown, depthMax: number, path: string): JsonValue {
  const shape = inspectJson(value, depthMax, path);
  if (typeof shape === 'string') throw new SyncError(ErrorCode.INVALID_INPUT, shape);
  return cloneValue(value as JsonValue);
}

function invalid(path: string, reason: string): SyncError {
  return new SyncError(ErrorCode.INVALID_INPUT, `${path}: ${reason}`);
}

// ---------------------------------------------------------------------------------------------
// Diffing
// ---------------------------------------------------------------------------------------------

/**
 * The diff turning `a` into `b`, with Simperium's defaults: added keys `+`, removed keys `-`,
 * objects `O`, arrays `L`, strings `d` (or `r` when the delta would not be shorter than the new
 * string, or cannot carry it: a lone surrogate), anything else and any type change `r`. Equal
 * values get no entry, so equal objects give `{}`. `applyDiff(a, diffObjects(a, b))` equals `b`.
 *
 * Lists are diffed as Simperium does: trim the common prefix and suffix, pair the remaining
 * elements by position (`r`/`O`/`L`/`d` where they differ), then `-` the surplus old elements
 * or `+` the surplus new ones. Such a diff never mixes `+` and `-`.
 */
export function diffObjects(a: JsonObject, b: JsonObject): ObjectDiff {
  return cloneDiff(diffObjectsShared(a, b));
}

/**
 * The diff that makes `data` from nothing (`diffObjects({}, data)`): every key added. Its values
 * are `data`'s own, not copies: for reading only (a create's diff is derived on read, not stored).
 */
export function diffFromNothing(data: JsonObject): ObjectDiff {
  return diffObjectsShared({}, data);
}

function diffObjectsShared(a: JsonObject, b: JsonObject): ObjectDiff {
  const out: ObjectDiff = {};
  for (const key of Object.keys(a)) {
    const after = getOwn(b, key);
    if (after === undefined) {
      setOwn(out, key, { o: '-' });
      continue;
    }
    const op = diffValue(a[key] as JsonValue, after);
    if (op !== null) setOwn(out, key, op);
  }
  for (const key of Object.keys(b)) {
    if (!Object.hasOwn(a, key)) setOwn(out, key, { o: '+', v: b[key] as JsonValue });
  }
  return out;
}

function diffValue(a: JsonValue, b: JsonValue): DiffOp | null {
  if (jsonEqual(a, b)) return null;
  if (isJsonObject(a) && isJsonObject(b)) return { o: 'O', v: diffObjectsShared(a, b) };
  if (Array.isArray(a) && Array.isArray(b)) return { o: 'L', v: diffLists(a, b) };
  if (typeof a === 'string' && typeof b === 'string') {
    const delta = tryTextDelta(a, b);
    if (delta !== undefined && delta.length < b.length) return { o: 'd', v: delta };
  }
  return { o: 'r', v: b };
}

function diffLists(a: JsonValue[], b: JsonValue[]): ListDiff {
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && jsonEqual(a[prefix] as JsonValue, b[prefix] as JsonValue)) prefix++;
  let suffix = 0;
  while (
    suffix < a.length - prefix &&
    suffix < b.length - prefix &&
    jsonEqual(a[a.length - 1 - suffix] as JsonValue, b[b.length - 1 - suffix] as JsonValue)
  ) {
    suffix++;
  }
  const oldCount = a.length - prefix - suffix;
  const newCount = b.length - prefix - suffix;
  const out: ListDiff = {};
  for (let i = 0; i < Math.max(oldCount, newCount); i++) {
    const index = prefix + i;
    if (i < oldCount && i < newCount) {
      const op = diffValue(a[index] as JsonValue, b[index] as JsonValue);
      if (op !== null) out[index] = op;
    } else if (i < oldCount) {
      out[index] = { o: '-' };
    } else {
      out[index] = { o: '+', v: b[index] as JsonValue };
    }
  }
  return out;
}

function tryTextDelta(from: string, to: string): string | undefined {
  try {
    return textDelta(from, to);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Strict application
// ---------------------------------------------------------------------------------------------

/**
 * Applies a diff made against exactly `a`. Throws {@link DiffApplyError} when an op does not fit:
 * `+` of an existing key; `-`, `r`, `O`, `L`, `d`, `I` of a missing key; `I` on a non-number (or
 * a sum that is not finite); `O` on a non-object; `L` on a non-array; `d` that does not fit the
 * string (see `applyTextDelta`).
 *
 * List index convention (Simperium's, made exact): `-`, `r`, `O`, `L`, `d` and `I` address
 * elements of the original list; `+` gives the index the new element has in the resulting list.
 * Equivalently, as Simperium applies them: edits in place, then deletions, then insertions in
 * ascending index order. An edit or deletion past the end, or an insertion past the end of the
 * list it is inserted into, throws.
 */
export function applyDiff(a: JsonObject, diff: ObjectDiff): JsonObject {
  return cloneValue(applyObject(a, diff, 'diff'));
}

function applyObject(a: JsonObject, diff: ObjectDiff, path: string): JsonObject {
  const out: JsonObject = { ...a };
  for (const key of Object.keys(diff)) {
    const next = applyOp(getOwn(a, key), diff[key] as DiffOp, keyPath(path, key));
    if (next === undefined) delete out[key];
    else setOwn(out, key, next);
  }
  return out;
}

/** The value after `op`, or undefined when the key or element is gone. */
function applyOp(current: JsonValue | undefined, op: DiffOp, path: string): JsonValue | undefined {
  switch (op.o) {
    case '+':
      if (current !== undefined) throw new DiffApplyError(`${path}: '+' of a key that exists`);
      return requireValue(op.v, path);
    case '-':
      if (current === undefined) throw new DiffApplyError(`${path}: '-' of a missing key`);
      return undefined;
    case 'r':
      if (current === undefined) throw new DiffApplyError(`${path}: 'r' of a missing key`);
      return requireValue(op.v, path);
    case 'I': {
      if (typeof current !== 'number') throw new DiffApplyError(`${path}: 'I' on a non-number`);
      const sum = current + op.v;
      if (!Number.isFinite(sum)) throw new DiffApplyError(`${path}: 'I' gives a non-finite number`);
      return sum;
    }
    case 'O':
      if (!isJsonObject(current)) throw new DiffApplyError(`${path}: 'O' on a non-object`);
      if (!isJsonObject(op.v)) throw new DiffApplyError(`${path}: 'O' without an object diff`);
      return applyObject(current, op.v, path);
    case 'L':
      if (!Array.isArray(current)) throw new DiffApplyError(`${path}: 'L' on a non-array`);
      if (!isJsonObject(op.v)) throw new DiffApplyError(`${path}: 'L' without a list diff`);
      return applyList(current, op.v, path);
    case 'd':
      if (typeof current !== 'string') throw new DiffApplyError(`${path}: 'd' on a non-string`);
      try {
        return applyTextDelta(current, op.v);
      } catch {
        throw new DiffApplyError(`${path}: 'd' does not fit the string`);
      }
    default:
      throw new DiffApplyError(`${path}: unknown operation`);
  }
}

function requireValue(value: JsonValue | undefined, path: string): JsonValue {
  if (value === undefined) throw new DiffApplyError(`${path}: operation without a value`);
  return value;
}

function applyList(list: JsonValue[], diff: ListDiff, path: string): JsonValue[] {
  const plan = planList(list, diff, true, path);
  return renderList(list, plan, (value, op, index) => applyOp(value, op, `${path}[${index}]`));
}

/**
 * A list diff resolved against a list: what happens to each original element, and which new
 * elements go into each gap. Gap g lies just before original element g (gap `length` is the
 * end). Both strict and lenient application, and the list merge, work from this one reading of
 * the index convention.
 */
interface ListPlan {
  /** `-` or an edit, by original index. */
  ops: Map<number, DiffOp>;
  /** Inserted values by gap, in their order in the result. */
  inserts: Map<number, JsonValue[]>;
}

function planList(list: JsonValue[], diff: ListDiff, strict: boolean, path: string): ListPlan {
  const ops = new Map<number, DiffOp>();
  const pending: Array<[number, JsonValue]> = [];
  for (const key of Object.keys(diff)) {
    const op = diff[key] as DiffOp;
    const index = parseIndex(key);
    if (index === undefined) {
      if (strict) throw new DiffApplyError(`${keyPath(path, key)}: not a list index`);
      continue;
    }
    if (op.o === '+') {
      if (op.v === undefined) {
        if (strict) throw new DiffApplyError(`${path}[${index}]: operation without a value`);
        continue;
      }
      pending.push([index, op.v]);
    } else if (index < list.length) {
      ops.set(index, op);
    } else if (strict) {
      throw new DiffApplyError(`${path}[${index}]: '${op.o}' past the end of the list`);
    } else if (op.o === 'r' && op.v !== undefined) {
      // Lenient: a replacement whose element is gone still carries a value the writer wanted.
      pending.push([index, op.v]);
    }
  }

  const survivors: number[] = [];
  for (let i = 0; i < list.length; i++) if (ops.get(i)?.o !== '-') survivors.push(i);

  // Insert k (in ascending order) lands at result index j with k earlier inserts before it, so
  // j − k surviving originals precede it; that count is also the strict range check.
  pending.sort((x, y) => x[0] - y[0]);
  const inserts = new Map<number, JsonValue[]>();
  pending.forEach(([index, value], rank) => {
    let before = index - rank;
    if (before > survivors.length) {
      if (strict) throw new DiffApplyError(`${path}[${index}]: '+' past the end of the list`);
      before = survivors.length;
    }
    const gap = before === 0 ? 0 : (survivors[before - 1] as number) + 1;
    const values = inserts.get(gap);
    if (values === undefined) inserts.set(gap, [value]);
    else values.push(value);
  });
  return { ops, inserts };
}

function renderList(
  list: JsonValue[],
  plan: ListPlan,
  apply: (value: JsonValue, op: DiffOp, index: number) => JsonValue | undefined,
): JsonValue[] {
  const out: JsonValue[] = [];
  for (let gap = 0; gap <= list.length; gap++) {
    const inserted = plan.inserts.get(gap);
    if (inserted !== undefined) out.push(...inserted);
    if (gap === list.length) break;
    const value = list[gap] as JsonValue;
    const op = plan.ops.get(gap);
    const next = op === undefined ? value : apply(value, op, gap);
    if (next !== undefined) out.push(next);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lenient application
// ---------------------------------------------------------------------------------------------

/**
 * Field-level last-writer-wins, for a stale change whose base version is no longer retained:
 * never throws on content, and resolves every op deterministically against whatever is there.
 * - `+` and `r` set the value; `-` removes it if present.
 * - `I` adds to a number; on a missing or non-number value it sets `v`; a non-finite sum keeps
 *   the old number.
 * - `O` recurses into the object, or into `{}` if the value is missing or not an object.
 * - `L` applies leniently to the array, or to `[]`: indices past the end are clamped for `+`,
 *   appended for `r`, ignored for the other ops; malformed indices are ignored.
 * - `d` applies when the delta fits the current string. A dmp delta records lengths, not the
 *   text it was made against, so there is nothing to match fuzzily: when it does not fit, or the
 *   value is not a string, the value is left as it is.
 * - Unknown ops, and ops without a usable `v`, leave the value as it is.
 */
export function applyDiffLenient(a: JsonObject, diff: ObjectDiff): JsonObject {
  return cloneValue(applyObjectLenient(a, diff));
}

function applyObjectLenient(a: JsonObject, diff: ObjectDiff): JsonObject {
  const out: JsonObject = { ...a };
  for (const key of Object.keys(diff)) {
    const next = applyOpLenient(getOwn(a, key), diff[key] as DiffOp);
    if (next === undefined) delete out[key];
    else setOwn(out, key, next);
  }
  return out;
}

function applyOpLenient(current: JsonValue | undefined, op: DiffOp): JsonValue | undefined {
  switch (op.o) {
    case '+':
    case 'r':
      return op.v === undefined ? current : op.v;
    case '-':
      return undefined;
    case 'I': {
      if (typeof op.v !== 'number' || !Number.isFinite(op.v)) return current;
      if (typeof current !== 'number') return op.v;
      const sum = current + op.v;
      return Number.isFinite(sum) ? sum : current;
    }
    case 'O':
      if (!isJsonObject(op.v)) return current;
      return applyObjectLenient(isJsonObject(current) ? current : {}, op.v);
    case 'L': {
      if (!isJsonObject(op.v)) return current;
      const list = Array.isArray(current) ? current : [];
      return renderList(list, planList(list, op.v, false, ''), (value, elementOp) =>
        applyOpLenient(value, elementOp),
      );
    }
    case 'd':
      if (typeof current !== 'string' || typeof op.v !== 'string') return current;
      try {
        return applyTextDelta(current, op.v);
      } catch {
        return current;
      }
    default:
      return current;
  }
}

// ---------------------------------------------------------------------------------------------
// Transform (rebase)
// ---------------------------------------------------------------------------------------------

/**
 * Rebases `local` over `remote`: both were made against `base`; the result is to be applied on
 * `applyDiff(base, remote)` and carries local's intent. The winner (`local` if `localWins`, else
 * `remote`) decides conflicts. Simperium's rules, per key:
 * - a key only local touched keeps local's op; a key only remote touched gets nothing;
 * - both `O`: recurse key by key (every conflicting key, unlike the published implementation);
 * - both `L`: local's ops re-indexed around remote's inserts and deletes, recursing into
 *   elements both edited; concurrent inserts in one gap keep both, the winner's first; an element
 *   one side deleted and the other edited follows the winner (a winning edit re-inserts it);
 * - both `d`: `mergeText(baseText, earlierText, laterText)` with the winner's text as the later
 *   one; local' is a `d` (or `r`) from remote's text to the merged text;
 * - both `I`: increments add;
 * - otherwise the winner's op stands: remote deleting a key local edits drops local's edit, or,
 *   if local wins, re-inserts the key with local's edit applied to the base value; both setting
 *   the same value, or both deleting, leaves nothing to do.
 *
 * Convergence: the result at every key is a function of (base, loser's op, winner's op) alone,
 * so `applyDiff(applyDiff(base, A), transform(B, A, base, true))` equals
 * `applyDiff(applyDiff(base, B), transform(A, B, base, false))`, and both apply strictly.
 * local' states exactly the change from remote's result to that merged value; it reuses local's
 * own op whenever that op still produces it. For lists, a re-indexed diff would sometimes need a
 * `+` and another op on the same index, which the format cannot hold; local' is then the
 * prefix/suffix-trimmed diff between the two lists (same result, coarser ops).
 *
 * Increments add as `(base + loser's) + winner's`; a number replaced (`r`) against a concurrent
 * `I` counts as an increment by its difference from the base. When floating-point rounding makes local's `I`
 * on the remote result miss that exact sum, local' is an `r` of the sum, and if the sum
 * overflows, the winner's increment alone is kept. Throws DiffApplyError if a diff does not fit
 * `base`.
 */
export function transform(local: ObjectDiff, remote: ObjectDiff, base: JsonObject, localWins: boolean): ObjectDiff {
  return cloneDiff(transformObject(local, remote, base, localWins, 'diff'));
}

function transformObject(
  local: ObjectDiff,
  remote: ObjectDiff,
  base: JsonObject,
  localWins: boolean,
  path: string,
): ObjectDiff {
  const out: ObjectDiff = {};
  for (const key of Object.keys(local)) {
    const localOp = local[key] as DiffOp;
    const remoteOp = getOwn(remote, key);
    if (remoteOp === undefined) {
      setOwn(out, key, localOp);
      continue;
    }
    const op = transformOp(getOwn(base, key), localOp, remoteOp, localWins, keyPath(path, key));
    if (op !== null) setOwn(out, key, op);
  }
  return out;
}

/** The op turning remote's result into the merged value, or null when they already agree. */
function transformOp(
  baseValue: JsonValue | undefined,
  localOp: DiffOp,
  remoteOp: DiffOp,
  localWins: boolean,
  path: string,
): DiffOp | null {
  if (localOp.o === 'O' && remoteOp.o === 'O' && isJsonObject(baseValue)) {
    const inner = transformObject(localOp.v, remoteOp.v, baseValue, localWins, path);
    return isEmptyDiff(inner) ? null : { o: 'O', v: inner };
  }
  if (localOp.o === 'L' && remoteOp.o === 'L' && Array.isArray(baseValue)) {
    const inner = transformList(localOp.v, remoteOp.v, baseValue, localWins, path);
    return Object.keys(inner).length === 0 ? null : { o: 'L', v: inner };
  }
  const remoteResult = applyOp(baseValue, remoteOp, path);
  const merged = localWins
    ? mergeOp(baseValue, remoteOp, localOp, path)
    : mergeOp(baseValue, localOp, remoteOp, path);
  return express(remoteResult, merged, localOp, path);
}

/** The op from `from` to `to` (undefined: absent), preferring `preferred` if it does exactly that. */
function express(
  from: JsonValue | undefined,
  to: JsonValue | undefined,
  preferred: DiffOp | undefined,
  path: string,
): DiffOp | null {
  if (to === undefined) return from === undefined ? null : { o: '-' };
  if (from === undefined) return { o: '+', v: to };
  if (jsonEqual(from, to)) return null;
  if (preferred !== undefined) {
    try {
      const result = applyOp(from, preferred, path);
      if (result !== undefined && jsonEqual(result, to)) return preferred;
    } catch (error) {
      if (!(error instanceof DiffApplyError)) throw error;
    }
  }
  return diffValue(from, to);
}

/**
 * The merged value of one key or element both sides touched (undefined: absent). The single
 * source of truth for conflicts: the transform only ever expresses this value as an op, which is
 * why both orders of application converge.
 */
function mergeOp(
  baseValue: JsonValue | undefined,
  loser: DiffOp,
  winner: DiffOp,
  path: string,
): JsonValue | undefined {
  if (loser.o === 'O' && winner.o === 'O' && isJsonObject(baseValue)) {
    return mergeObjects(baseValue, loser.v, winner.v, path);
  }
  if (loser.o === 'L' && winner.o === 'L' && Array.isArray(baseValue)) {
    const loserPlan = planList(baseValue, loser.v, true, path);
    const winnerPlan = planList(baseValue, winner.v, true, path);
    return mergeLists(baseValue, { plan: loserPlan, tag: 'a' }, { plan: winnerPlan, tag: 'b' }, path).map(
      (entry) => entry.value,
    );
  }
  if (loser.o === 'd' && winner.o === 'd' && typeof baseValue === 'string') {
    const earlier = applyOp(baseValue, loser, path) as string;
    const later = applyOp(baseValue, winner, path) as string;
    return mergeText(baseValue, earlier, later);
  }
  if (typeof baseValue === 'number' && (loser.o === 'I' || winner.o === 'I') && isNumberEdit(loser) && isNumberEdit(winner)) {
    // Increments add. A number replaced (`r`) against a concurrent increment is read as an
    // increment too: the server derives a side's diff from two states, and diffObjects writes any
    // changed number as `r`, so a client's `I` must still add to a concurrent change of a counter.
    // Validate both as ops on the base first, so the finite fallback below is finite.
    const loserValue = applyOp(baseValue, loser, path) as number;
    const winnerValue = applyOp(baseValue, winner, path) as number;
    const sum = baseValue + (loser.o === 'I' ? loser.v : loserValue - baseValue) + (winner.o === 'I' ? winner.v : winnerValue - baseValue);
    return Number.isFinite(sum) ? sum : winnerValue;
  }
  applyOp(baseValue, loser, path);
  return applyOp(baseValue, winner, path);
}

function isNumberEdit(op: DiffOp): boolean {
  return op.o === 'I' || (op.o === 'r' && typeof op.v === 'number');
}

function mergeObjects(base: JsonObject, loser: ObjectDiff, winner: ObjectDiff, path: string): JsonObject {
  const out: JsonObject = { ...base };
  const keys = new Set([...Object.keys(loser), ...Object.keys(winner)]);
  for (const key of keys) {
    const loserOp = getOwn(loser, key);
    const winnerOp = getOwn(winner, key);
    const baseValue = getOwn(base, key);
    const keyAt = keyPath(path, key);
    let next: JsonValue | undefined;
    if (loserOp !== undefined && winnerOp !== undefined) next = mergeOp(baseValue, loserOp, winnerOp, keyAt);
    else next = applyOp(baseValue, (loserOp ?? winnerOp) as DiffOp, keyAt);
    if (next === undefined) delete out[key];
    else setOwn(out, key, next);
  }
  return out;
}

interface TaggedPlan {
  plan: ListPlan;
  /** Names this side's inserted elements, so that they can be recognised in another layout. */
  tag: string;
}

/** An element of a list layout, with an identity that survives re-indexing. */
interface Entry {
  /** `#i` for original element i; `<tag><gap>:<k>` for the k-th element a side inserted in a gap. */
  id: string;
  value: JsonValue;
}

/**
 * The merged list: gap by gap, the winner's inserts then the loser's (each side's in its own
 * order), then the original element as {@link mergeOp} resolves it. Both sides' layouts keep the
 * original elements in order, so any two layouts list their common entries in the same order.
 */
function mergeLists(base: JsonValue[], loser: TaggedPlan, winner: TaggedPlan, path: string): Entry[] {
  const out: Entry[] = [];
  for (let gap = 0; gap <= base.length; gap++) {
    for (const side of [winner, loser]) {
      side.plan.inserts.get(gap)?.forEach((value, k) => out.push({ id: `${side.tag}${gap}:${k}`, value }));
    }
    if (gap === base.length) break;
    const baseValue = base[gap] as JsonValue;
    const loserOp = loser.plan.ops.get(gap);
    const winnerOp = winner.plan.ops.get(gap);
    const elementPath = `${path}[${gap}]`;
    let value: JsonValue | undefined = baseValue;
    if (loserOp !== undefined && winnerOp !== undefined) value = mergeOp(baseValue, loserOp, winnerOp, elementPath);
    else if (loserOp !== undefined || winnerOp !== undefined) {
      value = applyOp(baseValue, (loserOp ?? winnerOp) as DiffOp, elementPath);
    }
    if (value !== undefined) out.push({ id: `#${gap}`, value });
  }
  return out;
}

function layoutList(base: JsonValue[], side: TaggedPlan, path: string): Entry[] {
  const out: Entry[] = [];
  for (let gap = 0; gap <= base.length; gap++) {
    side.plan.inserts.get(gap)?.forEach((value, k) => out.push({ id: `${side.tag}${gap}:${k}`, value }));
    if (gap === base.length) break;
    const op = side.plan.ops.get(gap);
    const value = op === undefined ? (base[gap] as JsonValue) : applyOp(base[gap] as JsonValue, op, `${path}[${gap}]`);
    if (value !== undefined) out.push({ id: `#${gap}`, value });
  }
  return out;
}

/**
 * Local's list diff re-indexed over remote's: walking remote's result and the merged list side by
 * side, an entry only remote's result has is deleted (at its index there), an entry only the
 * merged list has is inserted (at its index there), and a common element gets local's edit, or
 * the transform of both edits.
 */
function transformList(
  local: ListDiff,
  remote: ListDiff,
  base: JsonValue[],
  localWins: boolean,
  path: string,
): ListDiff {
  const localSide: TaggedPlan = { plan: planList(base, local, true, path), tag: 'l' };
  const remoteSide: TaggedPlan = { plan: planList(base, remote, true, path), tag: 'r' };
  const merged = localWins
    ? mergeLists(base, remoteSide, localSide, path)
    : mergeLists(base, localSide, remoteSide, path);
  const remoteResult = layoutList(base, remoteSide, path);

  const inMerged = new Set(merged.map((entry) => entry.id));
  const inRemote = new Set(remoteResult.map((entry) => entry.id));
  const out: ListDiff = {};
  let collision = false;
  const put = (index: number, op: DiffOp): void => {
    if (Object.hasOwn(out, index)) collision = true;
    out[index] = op;
  };

  let i = 0;
  let j = 0;
  while (i < remoteResult.length || j < merged.length) {
    const before = remoteResult[i];
    const after = merged[j];
    if (before !== undefined && !inMerged.has(before.id)) {
      put(i++, { o: '-' });
    } else if (after !== undefined && !inRemote.has(after.id)) {
      put(j++, { o: '+', v: after.value });
    } else {
      if (before === undefined || after === undefined || before.id !== after.id) {
        throw new Error(`invariant: list layouts disagree on the order of common elements at ${path}`);
      }
      const op = commonElementOp(before, after, localSide.plan, remoteSide.plan, base, localWins, path);
      if (op !== null) put(i, op);
      i++;
      j++;
    }
  }
  if (!collision) return out;
  return diffLists(
    remoteResult.map((entry) => entry.value),
    merged.map((entry) => entry.value),
  );
}

function commonElementOp(
  before: Entry,
  after: Entry,
  localPlan: ListPlan,
  remotePlan: ListPlan,
  base: JsonValue[],
  localWins: boolean,
  path: string,
): DiffOp | null {
  if (!before.id.startsWith('#')) return null; // remote's own insert: already in place
  const index = Number(before.id.slice(1));
  const elementPath = `${path}[${index}]`;
  const localOp = localPlan.ops.get(index);
  const remoteOp = remotePlan.ops.get(index);
  if (localOp !== undefined && localOp.o !== '-') {
    if (remoteOp === undefined) return localOp;
    if (remoteOp.o !== '-') return transformOp(base[index] as JsonValue, localOp, remoteOp, localWins, elementPath);
  }
  return express(before.value, after.value, localOp, elementPath);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Canonical decimal index ("0", "17"; not "01", "-1", "1e3"), or undefined. */
function parseIndex(key: string): number | undefined {
  if (!/^(0|[1-9]\d{0,15})$/.test(key)) return undefined;
  const index = Number(key);
  return Number.isSafeInteger(index) ? index : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Own properties only: `obj['__proto__']` on a plain object would read the prototype. */
function getOwn<T>(obj: { [key: string]: T }, key: string): T | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Assignment to `__proto__` would set the prototype instead of storing a key: define it. */
function setOwn<T>(obj: { [key: string]: T }, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

function keyPath(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function cloneValue<T extends JsonValue>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((element) => cloneValue(element)) as T;
  const out: JsonObject = {};
  for (const key of Object.keys(value)) setOwn(out, key, cloneValue((value as JsonObject)[key] as JsonValue));
  return out as T;
}

function cloneDiff(diff: ObjectDiff): ObjectDiff {
  const out: ObjectDiff = {};
  for (const key of Object.keys(diff)) setOwn(out, key, cloneOp(diff[key] as DiffOp));
  return out;
}

function cloneOp(op: DiffOp): DiffOp {
  switch (op.o) {
    case 'O':
    case 'L':
      return { o: op.o, v: cloneDiff(op.v) };
    case '-':
      return op.v === undefined ? { o: '-' } : { o: '-', v: cloneValue(op.v) };
    case '+':
    case 'r':
      return { o: op.o, v: cloneValue(op.v) };
    default:
      return { ...op };
  }
}
