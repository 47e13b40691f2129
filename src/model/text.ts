/**
 * String diffs and three-way text merge, on diff-match-patch (dmp). This is the `d` operation of
 * jsondiff (see docs/JSONDIFF.md). Pure: no I/O, clock or randomness.
 *
 * Determinism: every replica must compute the same delta and the same merge from the same inputs,
 * so the shared dmp instance runs with `Diff_Timeout = 0` (no wall-clock cutoff; the default of 1 s
 * would make results depend on machine load), and its work is bounded by a step count instead
 * (BISECT_STEPS_MAX; dmp still reads the clock there, but the reading no longer decides anything).
 * All other dmp settings keep their defaults and are never changed after module load.
 */
import DiffMatchPatch from 'diff-match-patch';
import { ErrorCode, SyncError } from './errors.js';

type Diff = [number, string];

const DIFF_DELETE = -1;
const DIFF_INSERT = 1;

/**
 * Work limit of one diff, in steps of dmp's bisection (Myers' O(ND) middle-snake search, where
 * round d costs O(d)). Without a time cutoff, two unrelated 100 kB strings would take minutes;
 * with this limit the worst case is ~0.1 s, after which the remaining blocks are replaced whole
 * (a correct, coarser diff). Small edits in large texts stay far below it.
 */
const BISECT_STEPS_MAX = 4_000_000;

/** Steps spent by one top-level diff, shared by the bisections it recurses into. */
class StepBudget {
  steps = 0;
}

/**
 * What dmp's bisection receives as its deadline. dmp compares `now > deadline` once per round d
 * (its only use of the deadline), so valueOf() charges the round and answers "not yet" (+∞) or
 * "passed" (−∞) from the step count alone: a deterministic cutoff where dmp has a clock one.
 */
class StepDeadline {
  private round = 0;
  constructor(readonly budget: StepBudget) {}
  valueOf(): number {
    this.budget.steps += this.round++;
    return this.budget.steps > BISECT_STEPS_MAX ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
}

const dmp = new DiffMatchPatch();
dmp.Diff_Timeout = 0;
const dmpProto = DiffMatchPatch.prototype;
// Every diff, including those patch_apply runs internally, starts with a fresh budget; the
// recursive calls dmp makes pass the deadline along, so they share it.
dmp.diff_main = (text1, text2, checklines, deadline) =>
  dmpProto.diff_main.call(dmp, text1, text2, checklines, deadline ?? (new StepBudget() as unknown as number));
dmp.diff_bisect_ = (text1, text2, deadline) => {
  const passed: unknown = deadline;
  const budget =
    passed instanceof StepDeadline ? passed.budget : passed instanceof StepBudget ? passed : new StepBudget();
  return dmpProto.diff_bisect_.call(dmp, text1, text2, new StepDeadline(budget) as unknown as number);
};

/**
 * The dmp delta (`=N` keep, `-N` delete, `+text` insert; tab separated, as `diff_toDelta`) that
 * turns `from` into `to`. Lengths count UTF-16 code units, as every dmp implementation does.
 * Throws INVALID_INPUT when `to` inserts a lone surrogate: the delta format URI-encodes inserted
 * text and cannot carry one (callers that need a total function replace the whole string instead).
 */
export function textDelta(from: string, to: string): string {
  try {
    return dmp.diff_toDelta(diffText(from, to));
  } catch (error) {
    if (error instanceof URIError) {
      throw new SyncError(ErrorCode.INVALID_INPUT, 'text contains a lone surrogate, which a delta cannot carry');
    }
    throw error;
  }
}

/**
 * Applies a delta made against exactly `text`. Strict: a delta whose lengths do not add up to
 * `text`, or that is malformed, throws INVALID_INPUT (Simperium's "diff failed to apply").
 */
export function applyTextDelta(text: string, delta: string): string {
  return dmp.diff_text2(diffsFromDelta(text, delta));
}

/**
 * Applies a delta made against `deltaBase` to `text`, which may have drifted from it: the delta
 * becomes context patches and `patch_apply` places them by fuzzy matching. Hunks that cannot be
 * placed are dropped, as Simperium does. Throws INVALID_INPUT only if the delta does not fit
 * `deltaBase`.
 */
export function patchText(text: string, deltaBase: string, delta: string): string {
  return applyDiffsFuzzily(text, deltaBase, diffsFromDelta(deltaBase, delta));
}

/**
 * Three-way merge, as diff3 does it: both sides' edits of `base` are located in the base (never
 * searched for by fuzzy matching, which could place a hunk inside the other side's new text and
 * interleave them), and applied together. Edits of separate places both apply; two insertions at
 * one place are both kept, the earlier first; where both sides rewrote the same text, the later
 * edit wins, as it does for any other value. The argument order is the tie-break, so every
 * replica must call it in the same canonical order (earlier change first) to converge.
 */
export function mergeText(base: string, earlier: string, later: string): string {
  if (later === base || later === earlier) return earlier;
  if (earlier === base) return later;
  const a = hunksOf(diffText(base, earlier));
  const b = hunksOf(diffText(base, later));
  let out = '';
  let pos = 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // The next group: the first hunk to start (an insertion before a range at the same place,
    // the earlier side first), then every hunk of either side that overlaps the group.
    const firstA = a[i];
    const firstB = b[j];
    const takeA = firstB === undefined || (firstA !== undefined && precedes(firstA, firstB));
    const first = takeA ? firstA! : firstB!;
    if (takeA) i++;
    else j++;
    const group = { start: first.start, end: first.end, a: takeA ? [first] : [], b: takeA ? [] : [first] };
    for (let grew = true; grew; ) {
      grew = false;
      while (i < a.length && touches(group, a[i]!)) {
        group.a.push(a[i++]!);
        group.end = Math.max(group.end, group.a.at(-1)!.end);
        grew = true;
      }
      while (j < b.length && touches(group, b[j]!)) {
        group.b.push(b[j++]!);
        group.end = Math.max(group.end, group.b.at(-1)!.end);
        grew = true;
      }
    }
    out += base.slice(pos, group.start);
    const region = base.slice(group.start, group.end);
    const sideA = applyHunks(region, group.start, group.a);
    const sideB = applyHunks(region, group.start, group.b);
    if (group.a.length === 0) out += sideB;
    else if (group.b.length === 0 || sideA === sideB) out += sideA;
    else if (group.start === group.end) out += sideA + sideB; // both inserted at one place: both stay, earlier first
    else out += sideB; // both rewrote the same text: the later edit wins there, as for any other value
    pos = group.end;
  }
  return out + base.slice(pos);
}

/** An edit of the base text: `base[start, end)` replaced by `text` (start === end: an insertion). */
interface Hunk {
  start: number;
  end: number;
  text: string;
}

/** The hunks of a diff, in base positions. */
function hunksOf(diffs: Diff[]): Hunk[] {
  const hunks: Hunk[] = [];
  let pos = 0;
  let current: Hunk | undefined;
  for (const [op, segment] of diffs) {
    if (op === DIFF_DELETE || op === DIFF_INSERT) {
      current ??= { start: pos, end: pos, text: '' };
      if (op === DIFF_DELETE) current.end = pos += segment.length;
      else current.text += segment;
    } else {
      if (current !== undefined) hunks.push(current);
      current = undefined;
      pos += segment.length;
    }
  }
  if (current !== undefined) hunks.push(current);
  return hunks;
}

/** Order of groups: by start; at one place an insertion first, then the earlier side. */
function precedes(a: Hunk, b: Hunk): boolean {
  if (a.start !== b.start) return a.start < b.start;
  return a.start === a.end || b.start !== b.end;
}

/**
 * Whether a hunk belongs to a group: their ranges overlap, an insertion falls strictly inside the
 * other's range, or both are insertions at the same place. Edits that only meet at a boundary
 * are independent.
 */
function touches(group: { start: number; end: number }, hunk: Hunk): boolean {
  const groupEmpty = group.start === group.end;
  const hunkEmpty = hunk.start === hunk.end;
  if (groupEmpty && hunkEmpty) return group.start === hunk.start;
  if (groupEmpty) return hunk.start < group.start && group.start < hunk.end;
  if (hunkEmpty) return group.start < hunk.start && hunk.start < group.end;
  return hunk.start < group.end && group.start < hunk.end;
}

/** `region` (the base from `offset`) with `hunks` applied. */
function applyHunks(region: string, offset: number, hunks: readonly Hunk[]): string {
  let out = '';
  let pos = 0;
  for (const hunk of hunks) {
    out += region.slice(pos, hunk.start - offset) + hunk.text;
    pos = hunk.end - offset;
  }
  return out + region.slice(pos);
}

/**
 * Whether `delta` is well formed (tokens `=N`, `-N` or `+text` with URI-encoded text, tab
 * separated), regardless of the text it will be applied to. Lets input validation reject garbage
 * before any document is loaded.
 */
export function isTextDelta(delta: string): boolean {
  if (delta === '') return true;
  for (const token of delta.split('\t')) {
    const op = token[0];
    if (op === '=' || op === '-') {
      if (!/^\d{1,15}$/.test(token.slice(1))) return false;
    } else if (op === '+') {
      try {
        decodeURI(token.slice(1));
      } catch {
        return false;
      }
    } else {
      return false;
    }
  }
  return true;
}

function diffsFromDelta(text: string, delta: string): Diff[] {
  // dmp's own parser accepts sloppy tokens (parseInt reads "3abc" as 3); check the syntax first.
  if (!isTextDelta(delta)) throw new SyncError(ErrorCode.INVALID_INPUT, 'malformed text delta');
  try {
    return dmp.diff_fromDelta(text, delta);
  } catch {
    throw new SyncError(ErrorCode.INVALID_INPUT, 'text delta does not fit the text it is applied to');
  }
}

function applyDiffsFuzzily(text: string, deltaBase: string, diffs: Diff[]): string {
  if (diffs.every(([op]) => op !== DIFF_DELETE && op !== DIFF_INSERT)) return text;
  const patches = dmp.patch_make(deltaBase, diffs);
  const [patched] = dmp.patch_apply(patches, text);
  return patched;
}

/**
 * A cleaned-up diff that never splits a surrogate pair. dmp diffs UTF-16 code units, so two emoji
 * that share a high surrogate ("😀" → "😃") would be cut between the halves, and `diff_toDelta`
 * then throws on the lone half it must URI-encode. We diff stand-ins instead: each astral code
 * point present becomes one unused BMP code unit, and the segments are mapped back afterwards.
 */
function diffText(from: string, to: string): Diff[] {
  const pairs = new Set<string>();
  collectAstral(from, pairs);
  collectAstral(to, pairs);
  if (pairs.size === 0) return cleanDiff(from, to);

  const used = new Set<number>();
  for (const text of [from, to]) for (let i = 0; i < text.length; i++) used.add(text.charCodeAt(i));
  const standIns = allocateStandIns(pairs.size, used);
  // Beyond ~57,000 distinct astral characters there are no free stand-ins left: replacing the
  // whole text is still a correct (if large) diff and never splits a pair.
  if (standIns === undefined) {
    const whole: Diff[] = [];
    if (from !== '') whole.push([DIFF_DELETE, from]);
    if (to !== '') whole.push([DIFF_INSERT, to]);
    return whole;
  }

  const toStandIn = new Map<string, string>();
  const fromStandIn = new Map<string, string>();
  let next = 0;
  for (const pair of pairs) {
    const standIn = standIns[next++] as string;
    toStandIn.set(pair, standIn);
    fromStandIn.set(standIn, pair);
  }
  const diffs = cleanDiff(encodeAstral(from, toStandIn), encodeAstral(to, toStandIn));
  return diffs.map(([op, segment]): Diff => [op, decodeStandIns(segment, fromStandIn)]);
}

function cleanDiff(from: string, to: string): Diff[] {
  const diffs = dmp.diff_main(from, to);
  // The cleanup dmp's own patch_make applies: semantic first, which folds coincidental one- or
  // two-letter equalities into the surrounding edits so hunks follow what the user changed (and
  // patch more robustly onto drifted text), then efficiency, which merges short equalities
  // between edits: fewer tokens, compact deltas.
  if (diffs.length > 2) {
    dmp.diff_cleanupSemantic(diffs);
    dmp.diff_cleanupEfficiency(diffs);
  }
  return diffs;
}

function collectAstral(text: string, pairs: Set<string>): void {
  for (let i = 0; i < text.length - 1; i++) {
    const high = text.charCodeAt(i);
    if (high < 0xd800 || high > 0xdbff) continue;
    const low = text.charCodeAt(i + 1);
    if (low < 0xdc00 || low > 0xdfff) continue;
    pairs.add(text.slice(i, i + 2));
    i++;
  }
}

/** Private-use code units first (least likely to occur in text), then the rest of the BMP. */
function allocateStandIns(count: number, used: Set<number>): string[] | undefined {
  const ranges: Array<[number, number]> = [
    [0xe000, 0xf8ff],
    [0x0100, 0xd7ff],
    [0xf900, 0xfffd],
  ];
  const out: string[] = [];
  for (const [lo, hi] of ranges) {
    for (let c = lo; c <= hi && out.length < count; c++) if (!used.has(c)) out.push(String.fromCharCode(c));
  }
  return out.length === count ? out : undefined;
}

function encodeAstral(text: string, toStandIn: Map<string, string>): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const standIn = toStandIn.get(text.slice(i, i + 2));
    if (standIn !== undefined) {
      out += standIn;
      i++;
    } else {
      out += text[i];
    }
  }
  return out;
}

function decodeStandIns(segment: string, fromStandIn: Map<string, string>): string {
  let out = '';
  for (let i = 0; i < segment.length; i++) {
    const unit = segment[i] as string;
    out += fromStandIn.get(unit) ?? unit;
  }
  return out;
}
