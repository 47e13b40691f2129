/**
 * Version vectors: a replica's knowledge of a partition as `{origin -> highest contiguous seq}`.
 * Every record carries its origin (the node that accepted it) and a dense per-origin sequence, so
 * a vector says exactly which records a holder has seen, on whichever replica it got them.
 */
export type VersionVector = Readonly<Record<string, number>>;

export const emptyVector: VersionVector = Object.freeze({});

export function seqOf(vector: VersionVector, origin: string): number {
  // Own properties only: an origin named "constructor" must not read Object.prototype.
  return Object.hasOwn(vector, origin) ? (vector[origin] as number) : 0;
}

/** The vector after also seeing `seq` of `origin` (sequences only move forward). */
export function advance(vector: VersionVector, origin: string, seq: number): VersionVector {
  if (seqOf(vector, origin) >= seq) return vector;
  // Every change advances its log's vector: copied by hand, not through arrays of entries.
  // "__proto__" is an origin like any other, which only a defined property can hold.
  if (origin === '__proto__' || Object.hasOwn(vector, '__proto__')) return Object.fromEntries([...Object.entries(vector), [origin, seq]]);
  const out: Record<string, number> = {};
  for (const key in vector) if (Object.hasOwn(vector, key)) out[key] = vector[key] as number;
  out[origin] = seq;
  return out;
}

/** True when `a` has seen everything `b` has. */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  for (const [origin, seq] of Object.entries(b)) if (seqOf(a, origin) < seq) return false;
  return true;
}

/** Pointwise maximum. */
export function merge(a: VersionVector, b: VersionVector): VersionVector {
  const out = new Map(Object.entries(a));
  for (const [origin, seq] of Object.entries(b)) if ((out.get(origin) ?? 0) < seq) out.set(origin, seq);
  return Object.fromEntries(out);
}

/** True when the record `(origin, seq)` is already covered by `vector`. */
export function covers(vector: VersionVector, origin: string, seq: number): boolean {
  return seqOf(vector, origin) >= seq;
}
