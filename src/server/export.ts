/**
 * Export and import of an app, or of one bucket of it, as NDJSON (GET /admin/export and POST
 * /admin/import, used by `syncgraph export` / `import`). Unlike a backup, an export is portable:
 * it carries each bucket instance's current entities, its events and its settings, and an import
 * writes them through the normal write path (the cluster's, in a cluster) into any node and app:
 *
 *   {"format":"syncgraph-export","version":1,"app":"shop","bucket":null,"createdAt":"..."}
 *   {"type":"config","bucket":"cart","owner":"dana","config":{"conflictMode":"MERGE",...}}
 *   {"type":"entity","bucket":"cart","owner":"dana","key":"apples","data":{...}}
 *   {"type":"event","bucket":"log","owner":null,"event":{"uuid":...}}
 *   {"end":true,"entities":N,"events":M,"configs":K}
 *
 * History is not carried: an imported entity starts at version 1 (merged into an existing one
 * like a create made offline). Each imported entity has a ccid derived from the exported line, and
 * each event keeps its uuid, so importing a file twice changes nothing the second time.
 */
import { createHash } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { Caller, ChangeInput, Partition } from '../engine/partition.js';
import type { BucketConfig } from '../engine/records.js';
import type { EventInput } from '../model/event.js';
import { isJsonObject, type JsonObject } from '../model/json.js';
import type { Router } from '../replication/router.js';

export const EXPORT_FORMAT = 'syncgraph-export';
const EXPORT_VERSION = 1;
const PAGE = 500;

export type ExportLine =
  | { type: 'config'; bucket: string; owner: string | null; config: Pick<BucketConfig, 'conflictMode' | 'versionMax' | 'version10Max'> }
  | { type: 'entity'; bucket: string; owner: string | null; key: string; data: JsonObject }
  | { type: 'event'; bucket: string; owner: string | null; event: EventInput };

export class ExportError extends Error {}

/** The lines of an export of `app` (or of its `bucket` alone), each ending with a newline. */
export async function* exportLines(engine: Engine, router: Router, app: string, bucket: string | null): AsyncGenerator<string> {
  yield `${JSON.stringify({ format: EXPORT_FORMAT, version: EXPORT_VERSION, app, bucket, createdAt: new Date().toISOString() })}\n`;
  const counts = { entities: 0, events: 0, configs: 0 };
  const line = (value: ExportLine) => `${JSON.stringify(value)}\n`;
  // In a cluster, every member's: a node holds copies of only some of the app's buckets.
  const instances = (await router.instances(app)).filter((i) => bucket === null || i.bucket === bucket);
  for (const { bucket: name, owner } of instances) {
    const partition = await engine.partition(app, name, owner);
    await router.beforeRead(partition);
    const stored = await partition.storedConfig();
    if (stored !== undefined) {
      counts.configs++;
      yield line({ type: 'config', bucket: name, owner, config: { conflictMode: stored.conflictMode, versionMax: stored.versionMax, version10Max: stored.version10Max } });
    }
    for (let after: string | null = null; ; ) {
      const page = await partition.entities(PAGE, after, false);
      let chunk = '';
      for (const entity of page) chunk += line({ type: 'entity', bucket: name, owner, key: entity.key, data: entity.data! });
      counts.entities += page.length;
      if (chunk !== '') yield chunk;
      if (page.length < PAGE) break;
      after = page.at(-1)!.key;
    }
    for (let since: string | null = null; ; ) {
      const page = await partition.events(since, PAGE);
      let chunk = '';
      for (const e of page.events) {
        const event: EventInput = { uuid: e.uuid, timestamp: e.timestamp, user: e.user, item: e.item, action: e.action, payload: e.payload };
        chunk += line({ type: 'event', bucket: name, owner, event });
      }
      counts.events += page.events.length;
      if (chunk !== '') yield chunk;
      if (!page.hasMore) break;
      since = page.cursor;
    }
  }
  yield `${JSON.stringify({ end: true, ...counts })}\n`;
}

export interface ImportSummary {
  entities: { applied: number; unchanged: number; rejected: number };
  events: { accepted: number; rejected: number };
  configs: number;
  /** The first few refusals, with their line numbers. */
  problems: Array<{ line: number; code: string; message: string }>;
}

/** Checks one line of an export; the reason it is not one, or the line. */
export function parseExportLine(text: string): ExportLine | { end: true; entities: number; events: number; configs: number } | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isJsonObject(value)) return 'not an object';
  if (value['end'] === true) {
    const { entities, events, configs } = value;
    return typeof entities === 'number' && typeof events === 'number' && typeof configs === 'number' ? { end: true, entities, events, configs } : 'a malformed trailer';
  }
  const { type, bucket, owner } = value;
  if (typeof bucket !== 'string' || (owner !== null && typeof owner !== 'string')) return 'bucket and owner missing';
  if (type === 'entity') return typeof value['key'] === 'string' && isJsonObject(value['data']) ? (value as unknown as ExportLine) : 'an entity needs key and data';
  if (type === 'event') return isJsonObject(value['event']) ? (value as unknown as ExportLine) : 'an event needs its event';
  if (type === 'config') {
    const config = value['config'];
    if (!isJsonObject(config) || (config['conflictMode'] !== 'MERGE' && config['conflictMode'] !== 'OPTIMISTIC')) return 'a config needs its conflictMode';
    return typeof config['versionMax'] === 'number' && typeof config['version10Max'] === 'number' ? (value as unknown as ExportLine) : 'a config needs versionMax and version10Max';
  }
  return `unknown line type ${String(type)}`;
}

/**
 * Imports export lines into `app`: entities as changes, events as pushed events, settings as
 * `configureBucket`, in batches per bucket instance, through `router`. A line that is not one of
 * an export stops the import there with an ExportError (the CLI checks a file whole first).
 */
export async function importLines(engine: Engine, router: Router, app: string, lines: AsyncIterable<string>): Promise<ImportSummary> {
  const summary: ImportSummary = { entities: { applied: 0, unchanged: 0, rejected: 0 }, events: { accepted: 0, rejected: 0 }, configs: 0, problems: [] };
  const admin: Caller = { admin: true };
  let pending: { partitionKey: string; partition: Partition; kind: 'entity' | 'event'; items: Array<{ line: number; input: ChangeInput | EventInput }> } | undefined;
  const problem = (line: number, code: string, message: string) => {
    if (summary.problems.length < 20) summary.problems.push({ line, code, message });
  };
  const flush = async () => {
    if (pending === undefined) return;
    const { partition, kind, items } = pending;
    pending = undefined;
    if (kind === 'entity') {
      const outcomes = await router.submitChanges(partition, items.map((i) => i.input as ChangeInput), 'import', admin);
      outcomes.forEach((outcome, i) => {
        if (outcome.error !== null) {
          summary.entities.rejected++;
          problem(items[i]!.line, outcome.error.code, outcome.error.message);
        } else if (outcome.duplicate || outcome.noop) summary.entities.unchanged++;
        else summary.entities.applied++;
      });
    } else {
      const outcome = await router.pushEvents(partition, items.map((i) => i.input as EventInput), null, null);
      summary.events.accepted += outcome.accepted.length;
      summary.events.rejected += outcome.rejected.length;
      for (const rejected of outcome.rejected) problem(items.find((i) => (i.input as EventInput).uuid === rejected.uuid)?.line ?? 0, rejected.code, rejected.message);
    }
  };
  let lineNo = 0;
  let header = false;
  let ended = false;
  for await (const text of lines) {
    lineNo++;
    if (text === '') continue;
    if (ended) throw new ExportError(`line ${lineNo}: data after the end of the export`);
    if (!header) {
      const value = (() => {
        try {
          return JSON.parse(text) as { format?: unknown; version?: unknown };
        } catch {
          return undefined;
        }
      })();
      if (value?.format !== EXPORT_FORMAT) throw new ExportError('not a syncgraph export');
      if (value.version !== EXPORT_VERSION) throw new ExportError(`export format version ${String(value.version)}; this syncgraph reads version ${EXPORT_VERSION}`);
      header = true;
      continue;
    }
    const parsed = parseExportLine(text);
    if (typeof parsed === 'string') throw new ExportError(`line ${lineNo}: ${parsed}`);
    if ('end' in parsed) {
      ended = true;
      continue;
    }
    const partitionKey = `${parsed.bucket}\u0000${parsed.owner ?? ''}`;
    if (parsed.type === 'config') {
      await flush();
      const partition = await engine.partition(app, parsed.bucket, parsed.owner);
      const { conflictMode, versionMax, version10Max } = parsed.config;
      await router.configure(partition, { conflictMode, versionMax, version10Max }, admin);
      summary.configs++;
      continue;
    }
    if (pending !== undefined && (pending.partitionKey !== partitionKey || pending.kind !== parsed.type || pending.items.length >= PAGE)) await flush();
    pending ??= { partitionKey, partition: await engine.partition(app, parsed.bucket, parsed.owner), kind: parsed.type, items: [] };
    if (parsed.type === 'entity') {
      // The same line always makes the same ccid: a second import of a file is all duplicates.
      const ccid = createHash('sha256').update(text).digest('hex').slice(0, 32);
      pending.items.push({ line: lineNo, input: { ccid, key: parsed.key, op: 'MODIFY', baseVersion: 0, data: parsed.data } });
    } else pending.items.push({ line: lineNo, input: parsed.event });
  }
  await flush();
  if (!header) throw new ExportError('empty: not a syncgraph export');
  if (!ended) throw new ExportError(`the export ends at line ${lineNo} without its trailer: it is incomplete (what came before was imported)`);
  return summary;
}
