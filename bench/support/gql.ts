/**
 * The GraphQL documents the bench sends (identical for the node and the bare server, which has a
 * schema of the same shape), the transport interface, and the generator of unique changes whose
 * request variables are assembled from pre-encoded parts.
 */
import { randomBytes } from 'node:crypto';

export interface GqlResult {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

/** HTTP or WebSocket: run one operation, given its pre-encoded query and variables. */
export interface GqlTransport {
  readonly kind: 'http' | 'ws';
  execute(queryJson: string, variablesJson: string): Promise<GqlResult>;
}

const q = (query: string) => JSON.stringify(query.replace(/\s+/g, ' ').trim());

export const SUBMIT = q(`mutation($b:String!,$c:[ChangeInput!]!){
  submitChanges(bucket:$b, changes:$c){ ccid duplicate error{code} change{ version cursor } } }`);
/** The bare server's trigger: publishes each change to the bucket's subscribers. */
export const PUBLISH = q(`mutation($b:String!,$c:[ChangeInput!]!){ publish(bucket:$b, changes:$c) }`);
export const CHANGES_PAGE = q(`query($b:String!,$s:Cursor,$l:Int){
  changes(bucket:$b, since:$s, limit:$l){ changes{ key version cursor data } cursor hasMore } }`);
export const SUBSCRIBE_CHANGES = q(`subscription($b:String!,$s:Cursor){ changes(bucket:$b, since:$s){ key version cursor data } }`);
export const BUCKET_HEAD = q(`query($n:String!){ bucket(name:$n){ changesCursor } }`);

/** Throws on GraphQL errors; returns `data`. */
export function dataOf(result: GqlResult, what: string): Record<string, unknown> {
  if (result.errors?.length || !result.data) {
    throw new Error(`${what}: ${JSON.stringify(result.errors ?? result).slice(0, 500)}`);
  }
  return result.data;
}

interface SubmitResult {
  ccid: string;
  duplicate: boolean;
  error: { code: string } | null;
  change: { version: number; cursor: string } | null;
}

/** Checks a submitChanges answer: every change applied (none a duplicate or an error). */
export function checkSubmitted(result: GqlResult, expected: number): void {
  const results = dataOf(result, 'submitChanges')['submitChanges'] as SubmitResult[] | undefined;
  if (!Array.isArray(results) || results.length !== expected) {
    throw new Error(`submitChanges: expected ${expected} results, got ${JSON.stringify(results).slice(0, 300)}`);
  }
  for (const r of results) {
    if (r.error !== null || r.duplicate || r.change === null) throw new Error(`submitChanges: change not applied: ${JSON.stringify(r)}`);
  }
}

export async function headCursor(transport: GqlTransport, bucket: string): Promise<string> {
  const data = dataOf(await transport.execute(BUCKET_HEAD, JSON.stringify({ n: bucket })), 'bucket');
  const cursor = (data['bucket'] as { changesCursor?: unknown } | null)?.changesCursor;
  if (typeof cursor !== 'string') throw new Error(`bucket: no changesCursor in ${JSON.stringify(data)}`);
  return cursor;
}

/**
 * Makes unique changes: every change creates a new entity (a key unique to this run, baseVersion 0),
 * with a hex ccid made of a per-run random prefix and a counter. Data is `{ n, t, text }` of about
 * `valueBytes` bytes of JSON; `t` carries a send time for latency measurement.
 */
export class ChangeMaker {
  private counter = 0;
  private readonly prefix = randomBytes(8).toString('hex');
  /** Keys are unique across runs too (a re-created key would merge into a no-op). */
  private readonly keyPrefix = `k${this.prefix.slice(0, 8)}-`;
  private readonly text: string;

  constructor(valueBytes: number) {
    this.text = 'x'.repeat(Math.max(0, valueBytes - 50));
  }

  /** One change as JSON. */
  change(t = 0): string {
    const n = ++this.counter;
    const ccid = this.prefix + n.toString(16).padStart(12, '0');
    return `{"ccid":"${ccid}","key":"${this.keyPrefix}${n.toString(36)}","op":"MODIFY","baseVersion":0,"data":{"n":${n},"t":${t},"text":"${this.text}"}}`;
  }

  /** Variables `{ b, c }` for submitChanges (or publish) with `count` fresh changes. */
  variables(bucket: string, count: number, t = 0): string {
    let changes = this.change(t);
    for (let i = 1; i < count; i++) changes += `,${this.change(t)}`;
    return `{"b":${JSON.stringify(bucket)},"c":[${changes}]}`;
  }

  /** The exact JSON size of one value `data` (for reporting). */
  get dataBytes(): number {
    return `{"n":1000000,"t":0,"text":"${this.text}"}`.length;
  }
}
