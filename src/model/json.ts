/** JSON values as they travel through syncgraph. Pure helpers, no I/O. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Structural equality of two JSON values (key order does not matter). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i] as JsonValue, b[i] as JsonValue)) return false;
    return true;
  }
  if (Array.isArray(b) || typeof a !== 'object' || typeof b !== 'object') return false;
  const aKeys = Object.keys(a);
  if (aKeys.length !== Object.keys(b).length) return false;
  for (const key of aKeys) {
    if (!Object.prototype.hasOwnProperty.call(b, key)) return false;
    if (!jsonEqual(a[key] as JsonValue, b[key] as JsonValue)) return false;
  }
  return true;
}

/** A deep copy; JSON values are small trees, so recursion depth is bounded by the depth limit. */
export function cloneJson<T extends JsonValue>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => cloneJson(v)) as T;
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cloneJson(v)])) as T;
}

export interface JsonShape {
  /** Deepest nesting of arrays/objects; a primitive has depth 0, `{}` depth 1. */
  depth: number;
  /** Length of the value's JSON encoding in UTF-8 bytes. */
  bytes: number;
}

/**
 * Checks that `value` is plain JSON (no undefined, functions, non-finite numbers, cycles) within a
 * depth limit, and measures it. Returns an error message naming the offending path, or the shape.
 * The depth check comes first so that hostile input cannot blow the stack of JSON.stringify.
 */
export function inspectJson(value: unknown, depthMax: number, path = '$'): JsonShape | string {
  const depth = measureDepth(value, depthMax, 0);
  if (typeof depth !== 'number') return `${path}${depth.path.reverse().join('')} ${depth.problem}`;
  return { depth, bytes: utf8Length(JSON.stringify(value)) };
}

/**
 * Node's native count where there is one (the server measures every change), else the browser's
 * encoder: model code runs in the client SDK too.
 */
const nodeBuffer = (globalThis as { Buffer?: { byteLength(text: string, encoding: 'utf8'): number } }).Buffer;
const encoder = nodeBuffer === undefined ? new TextEncoder() : undefined;

/** Length of `text` in UTF-8 bytes. */
export function utf8Length(text: string): number {
  return nodeBuffer !== undefined ? nodeBuffer.byteLength(text, 'utf8') : encoder!.encode(text).length;
}

/** What is wrong, and where: the path's segments innermost first (added as the walk unwinds). */
interface JsonProblem {
  problem: string;
  path: string[];
}

// Every change is walked: the path of a problem is put together only when there is one.
function measureDepth(value: unknown, depthMax: number, level: number): number | JsonProblem {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return 0;
  if (typeof value === 'number') return Number.isFinite(value) ? 0 : { problem: 'is not a finite number', path: [] };
  if (typeof value !== 'object') return { problem: 'is not a JSON value', path: [] };
  if (level >= depthMax) return { problem: `is nested deeper than ${depthMax} levels`, path: [] };
  let deepest = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const d = measureDepth(value[i], depthMax, level + 1);
      if (typeof d !== 'number') {
        d.path.push(`[${i}]`);
        return d;
      }
      if (d > deepest) deepest = d;
    }
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return { problem: 'is not a plain JSON object', path: [] };
    for (const k in value) {
      if (!Object.prototype.hasOwnProperty.call(value, k)) continue;
      const d = measureDepth((value as Record<string, unknown>)[k], depthMax, level + 1);
      if (typeof d !== 'number') {
        d.path.push(`.${k}`);
        return d;
      }
      if (d > deepest) deepest = d;
    }
  }
  return deepest + 1;
}

/**
 * JSON with object keys sorted at every level: equal values give equal strings, whatever order
 * their keys were set in (replica digests compare these).
 */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`).join(',')}}`;
}
