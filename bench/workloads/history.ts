/**
 * The `history` part: bytes on disk per live entity after a long update-heavy run, on one fresh
 * node (the part runs it twice: with history collection at a 1 s horizon, and with the defaults,
 * which collect nothing during the run).
 *
 * Load: `entities` entities are created, then updated round-robin until `updates` updates are
 * acknowledged, in submitChanges requests of `batchSize` changes from `clients` closed-loop HTTP
 * clients. Every key belongs to one client, which sends as `baseVersion` the version the node last
 * answered for it, so no change takes the merge path; `data` is the whole object with a counter
 * changed. Every answer is checked: no error, no duplicate, no no-op, version = baseVersion + 1.
 *
 * Then the node's `syncgraph_history_collected_total{kind="scanned"}` is polled until it has not
 * moved for `quietSeconds` (a collection round runs every second on the collecting node; on the
 * other it stays 0), and the bytes of `<data>/db` are summed. Every entity's version is checked
 * against what the clients were answered, and the bucket's entity count (replicaStatus) too.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CpuMeter, sleep } from '../stats.js';
import { dataOf, type GqlResult } from '../support/gql.js';
import { HttpGql } from '../support/http-client.js';
import type { Service } from '../support/services.js';

const q = (query: string) => JSON.stringify(query.replace(/\s+/g, ' ').trim());

/** The answer's fields the checks need (no cursor: encoding one per change is work the load does not need). */
const SUBMIT_UPDATES = q(`mutation($b:String!,$c:[ChangeInput!]!){
  submitChanges(bucket:$b, changes:$c){ ccid duplicate noop error{code} change{ version } } }`);
const ENTITY_PAGE = q(`query($b:String!,$a:String){ entities(bucket:$b, first:1000, after:$a){ key version } }`);
const ENTITY_COUNT = q(`query($b:String!){ replicaStatus(bucket:$b){ entities } }`);
const CHANGES_PAGE = q(`query($b:String!,$s:Cursor){ changes(bucket:$b, since:$s, limit:1000){ changes{ key version } cursor hasMore } }`);
const VERSIONS = q(`query($b:String!,$k:ID!){ versions(bucket:$b, key:$k){ version } }`);

/** Longest wait for the collection counter to settle after the load. */
const SETTLE_TIMEOUT_SECONDS = 120;
/** How often the counter is read while waiting. */
const SETTLE_POLL_MS = 250;
/** Disk readings taken during the load (one each time this fraction of the updates is acknowledged). */
const DISK_SAMPLES = 10;

export interface HistoryOptions {
  /** Whether this node collects history (for the report; the flags are the caller's). */
  collecting: boolean;
  entities: number;
  updates: number;
  batchSize: number;
  clients: number;
  /** Approximate JSON size of each entity's data. */
  valueBytes: number;
  /** The counter must stay still this long before disk is measured. */
  quietSeconds: number;
  bucket: string;
  log: (line: string) => void;
}

export interface HistoryResult {
  collecting: boolean;
  entities: number;
  updates: number;
  batchSize: number;
  clients: number;
  /** Exact JSON size of one entity's data. */
  dataBytes: number;
  createSeconds: number;
  updateSeconds: number;
  updatesPerSecond: number;
  /** The node process and its JavaScript thread during the updates, fractions of one core; the bench process. */
  nodeCpu: number;
  nodeMainCpu: number;
  clientCpu: number;
  /** Seconds from the load's end until the scanned counter had been still for `quietSeconds`. */
  settleSeconds: number;
  /** Bytes of `<data>/db` after every `updates / DISK_SAMPLES` updates, then at the load's end, then once settled (the figure). */
  bytesDuringLoad: number[];
  bytesAtLoadEnd: number;
  bytes: number;
  /** Files in `<data>/db` once settled, and the bytes of its write-ahead log among `bytes`. */
  files: number;
  walBytes: number;
  /** Entities the bucket holds (replicaStatus), checked against `entities`. */
  liveEntities: number;
  bytesPerEntity: number;
  /** syncgraph_history_collected_total by kind, once settled. */
  collected: { scanned: number; superseded: number; tombstones: number; ccids: number };
  /**
   * Change records still in the log: those written (`entities + updates`) less those collected
   * (superseded and tombstones). Collection at its best leaves one per live entity.
   */
  recordsLeft: number;
  /**
   * A reader paging the change stream from the start (limit 1000), on the collecting node only:
   * the changes and pages it got, and the error code that stopped it, if one did.
   */
  readFromStart?: { changes: number; pages: number; errorCode?: string };
  /** Retained versions of the first entity (the `versions` query). */
  versionsOfOne: number;
}

/**
 * Sum of the sizes of the files under `dir` (LevelDB's tables, write-ahead log, manifest), and
 * of the write-ahead log alone (`NNNNNN.log`: what the memtable holds, up to its size, 64 MiB).
 */
export function diskUsage(dir: string): { bytes: number; files: number; walBytes: number } {
  const usage = { bytes: 0, files: 0, walBytes: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = diskUsage(path);
      usage.bytes += inner.bytes;
      usage.files += inner.files;
      usage.walBytes += inner.walBytes;
    } else if (entry.isFile()) {
      // A table LevelDB deletes between the listing and the stat is simply not counted.
      try {
        const size = statSync(path).size;
        usage.bytes += size;
        usage.files++;
        if (/^\d+\.log$/.test(entry.name)) usage.walBytes += size;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  }
  return usage;
}

/** syncgraph_history_collected_total by kind (0 for a kind not counted yet). */
async function collectedCounts(node: Service): Promise<HistoryResult['collected']> {
  const response = await fetch(new URL('/metrics', node.graphqlUrl), { headers: { authorization: `Bearer ${node.token}` } });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}: ${text.slice(0, 300)}`);
  const counts = { scanned: 0, superseded: 0, tombstones: 0, ccids: 0 };
  for (const match of text.matchAll(/^syncgraph_history_collected_total\{kind="(\w+)"\} (\S+)$/gm)) {
    const kind = match[1] as keyof typeof counts;
    if (kind in counts) counts[kind] = Number(match[2]);
  }
  return counts;
}

interface SubmitRow {
  ccid: string;
  duplicate: boolean;
  noop: boolean;
  error: { code: string } | null;
  change: { version: number } | null;
}

/**
 * Checks one answer against the changes sent (same order): each applied, not a duplicate nor a
 * no-op, at `baseVersion + 1` (anything else would mean the merge path or a lost update).
 */
function checkAnswer(result: GqlResult, sent: ReadonlyArray<{ ccid: string; baseVersion: number }>): number[] {
  const rows = dataOf(result, 'submitChanges')['submitChanges'] as SubmitRow[] | undefined;
  if (!Array.isArray(rows) || rows.length !== sent.length) {
    throw new Error(`submitChanges: expected ${sent.length} results, got ${JSON.stringify(rows).slice(0, 300)}`);
  }
  return rows.map((row, i) => {
    const change = sent[i]!;
    if (row.ccid !== change.ccid || row.error !== null || row.duplicate || row.noop || row.change?.version !== change.baseVersion + 1) {
      throw new Error(`submitChanges: change not applied as sent (baseVersion ${change.baseVersion}): ${JSON.stringify(row)}`);
    }
    return row.change.version;
  });
}

export async function runHistory(node: Service & { dataDir: string }, options: HistoryOptions): Promise<HistoryResult> {
  const { log, bucket } = options;
  const dbDir = join(node.dataDir, 'db');
  const http = new HttpGql(node.graphqlUrl, node.token, options.clients);
  const keyOf = (i: number) => `e${i.toString().padStart(6, '0')}`;
  const text = 'x'.repeat(Math.max(0, options.valueBytes - 60));
  const dataOfEntity = (i: number, n: number) => `{"key":"${keyOf(i)}","n":${n},"text":"${text}"}`;
  // The last version the node answered for each entity (0: not created yet); each key is one client's.
  const versions = new Int32Array(options.entities);
  // ccids are hex (or dashed UUIDs): a per-run random prefix and a counter.
  const ccidPrefix = randomBytes(8).toString('hex');
  let ccids = 0;
  try {
    /** One request updating (or creating) `keys`, all one client's; records the versions answered. */
    const send = async (keys: number[]) => {
      const sent = keys.map((i) => ({ i, ccid: ccidPrefix + (++ccids).toString(16).padStart(12, '0'), baseVersion: versions[i]! }));
      const changes = sent.map(
        (c) => `{"ccid":"${c.ccid}","key":"${keyOf(c.i)}","op":"MODIFY","baseVersion":${c.baseVersion},"data":${dataOfEntity(c.i, c.baseVersion + 1)}}`,
      );
      const answered = checkAnswer(await http.execute(SUBMIT_UPDATES, `{"b":${JSON.stringify(bucket)},"c":[${changes.join(',')}]}`), sent);
      sent.forEach((c, j) => (versions[c.i] = answered[j]!));
    };
    // Client c owns the keys i with i % clients === c, and walks them in order, round after round.
    const owned = Array.from({ length: options.clients }, (_, c) => {
      const keys: number[] = [];
      for (let i = c; i < options.entities; i += options.clients) keys.push(i);
      return keys;
    });
    // A request never holds the same key twice (its baseVersion would be stale).
    const perRequest = (keys: number[]) => Math.max(1, Math.min(options.batchSize, keys.length));

    // 1. Create every entity.
    const createStarted = performance.now();
    await Promise.all(
      owned.map(async (keys) => {
        for (let at = 0; at < keys.length; at += perRequest(keys)) await send(keys.slice(at, at + perRequest(keys)));
      }),
    );
    const createSeconds = (performance.now() - createStarted) / 1000;
    log(`history: ${options.entities} entities created in ${createSeconds.toFixed(1)} s`);

    // 2. Update them round-robin until `updates` are acknowledged.
    const bytesDuringLoad: number[] = [];
    const step = Math.max(1, Math.floor(options.updates / DISK_SAMPLES));
    let remaining = options.updates;
    let acknowledged = 0;
    let nextSample = step;
    let failure: unknown;
    const meter = new CpuMeter([node.pid]);
    const updateStarted = performance.now();
    await Promise.all(
      owned.map(async (keys) => {
        let at = 0;
        try {
          while (remaining > 0 && failure === undefined && keys.length > 0) {
            const count = Math.min(perRequest(keys), remaining);
            remaining -= count;
            const batch: number[] = [];
            for (let j = 0; j < count; j++) {
              batch.push(keys[at]!);
              at = (at + 1) % keys.length;
            }
            await send(batch);
            acknowledged += count;
            if (acknowledged >= nextSample && bytesDuringLoad.length < DISK_SAMPLES) {
              nextSample += step;
              bytesDuringLoad.push(diskUsage(dbDir).bytes);
            }
          }
        } catch (error) {
          failure ??= error;
        }
      }),
    );
    if (failure !== undefined) throw failure;
    const updateSeconds = (performance.now() - updateStarted) / 1000;
    const cpu = meter.read();
    const bytesAtLoadEnd = diskUsage(dbDir).bytes;
    log(`history: ${acknowledged} updates in ${updateSeconds.toFixed(1)} s (${Math.round(acknowledged / updateSeconds)}/s); ${(bytesAtLoadEnd / 2 ** 20).toFixed(1)} MiB on disk`);

    // 3. Wait until the collection counter has been still for `quietSeconds`.
    const settleStarted = performance.now();
    let collected = await collectedCounts(node);
    let stillSince = performance.now();
    for (;;) {
      await sleep(SETTLE_POLL_MS);
      const now = await collectedCounts(node);
      if (now.scanned !== collected.scanned) stillSince = performance.now();
      collected = now;
      if (performance.now() - stillSince >= options.quietSeconds * 1000) break;
      if (performance.now() - settleStarted > SETTLE_TIMEOUT_SECONDS * 1000) {
        throw new Error(`history collection still scanning ${SETTLE_TIMEOUT_SECONDS} s after the load (${JSON.stringify(collected)})`);
      }
    }
    const settleSeconds = (performance.now() - settleStarted) / 1000;
    const disk = diskUsage(dbDir);
    log(`history: counter still for ${options.quietSeconds} s after ${settleSeconds.toFixed(1)} s (${JSON.stringify(collected)}); ${(disk.bytes / 2 ** 20).toFixed(1)} MiB on disk`);

    // 4. What the node holds: the entity count, every entity at the version its client was answered.
    const counted = dataOf(await http.execute(ENTITY_COUNT, JSON.stringify({ b: bucket })), 'replicaStatus')['replicaStatus'] as Array<{ entities: number | null }>;
    const liveEntities = counted[0]?.entities ?? NaN;
    if (liveEntities !== options.entities) throw new Error(`the bucket holds ${liveEntities} entities, expected ${options.entities}`);
    let seen = 0;
    let after: string | null = null;
    for (;;) {
      const page = dataOf(await http.execute(ENTITY_PAGE, JSON.stringify({ b: bucket, a: after })), 'entities')['entities'] as Array<{ key: string; version: number }>;
      for (const entity of page) {
        const i = Number(entity.key.slice(1));
        if (keyOf(i) !== entity.key || entity.version !== versions[i]) {
          throw new Error(`entity ${entity.key} is at version ${entity.version}, its client was answered ${versions[i]}`);
        }
        seen++;
      }
      if (page.length < 1000) break;
      after = page.at(-1)!.key;
    }
    if (seen !== options.entities) throw new Error(`entities listed ${seen}, expected ${options.entities}`);

    // What a reader from the start gets (only where that is short: collected history). An error
    // answer is an observation about the node, reported, not a failure of the measurement.
    let readFromStart: HistoryResult['readFromStart'];
    if (options.collecting) {
      const read: NonNullable<HistoryResult['readFromStart']> = { changes: 0, pages: 0 };
      let since: string | null = null;
      for (let pages = 0; pages <= options.entities + options.updates; pages++) {
        const result = await http.execute(CHANGES_PAGE, JSON.stringify({ b: bucket, s: since }));
        const code = result.errors?.[0]?.extensions?.['code'];
        if (typeof code === 'string') {
          read.errorCode = code;
          break;
        }
        const page = dataOf(result, 'changes')['changes'] as { changes: unknown[]; cursor: string; hasMore: boolean };
        read.pages++;
        read.changes += page.changes.length;
        if (!page.hasMore) break;
        since = page.cursor;
      }
      readFromStart = read;
    }
    const kept = dataOf(await http.execute(VERSIONS, JSON.stringify({ b: bucket, k: keyOf(0) })), 'versions')['versions'] as unknown[];

    return {
      collecting: options.collecting,
      entities: options.entities,
      updates: acknowledged,
      batchSize: options.batchSize,
      clients: options.clients,
      dataBytes: dataOfEntity(0, 1_000).length,
      createSeconds,
      updateSeconds,
      updatesPerSecond: acknowledged / updateSeconds,
      nodeCpu: cpu.others[0] ?? NaN,
      nodeMainCpu: cpu.mains[0] ?? NaN,
      clientCpu: cpu.self,
      settleSeconds,
      bytesDuringLoad,
      bytesAtLoadEnd,
      bytes: disk.bytes,
      files: disk.files,
      walBytes: disk.walBytes,
      liveEntities,
      bytesPerEntity: disk.bytes / liveEntities,
      collected,
      recordsLeft: options.entities + acknowledged - collected.superseded - collected.tombstones,
      ...(readFromStart === undefined ? {} : { readFromStart }),
      versionsOfOne: kept.length,
    };
  } finally {
    http.close();
  }
}
