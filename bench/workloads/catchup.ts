/**
 * W3: catch-up. Fills a fresh bucket with `changes` changes (batches of `batchSize` over
 * `fillClients` concurrent clients), then reads the whole change stream from the start:
 *  (a) paging `changes(since, limit: 1000)` over HTTP, one page after the other;
 *  (b) one graphql-ws subscription from `since: null` until it has received every change.
 * Both select `key version cursor data` (a catch-up needs the data).
 */
import { CpuMeter, sleep } from '../stats.js';
import { CHANGES_PAGE, checkSubmitted, dataOf, SUBMIT, SUBSCRIBE_CHANGES, type ChangeMaker, type GqlTransport } from '../support/gql.js';
import { HttpGql } from '../support/http-client.js';
import type { Service } from '../support/services.js';
import { GqlSocket, openSockets, closeSockets } from '../support/ws-client.js';

export interface CatchupOptions {
  changes: number;
  batchSize: number;
  fillClients: number;
  bucket: string;
  maker: ChangeMaker;
  writeTransport: 'http' | 'ws';
  timeoutSeconds: number;
  pageSize: number;
  log: (line: string) => void;
}

export interface ReadResult {
  received: number;
  seconds: number;
  perSecond: number;
  requests: number;
  serverCpu: number;
  serverMainCpu: number;
  clientCpu: number;
}

export interface CatchupResult {
  written: number;
  fillSeconds: number;
  fillPerSecond: number;
  paging: ReadResult;
  subscription: ReadResult;
}

export async function runCatchup(target: Service, options: CatchupOptions): Promise<CatchupResult> {
  const fill = await fillBucket(target, options);
  options.log(`wrote ${options.changes} changes in ${fill.seconds.toFixed(1)} s (${Math.round(options.changes / fill.seconds)}/s)`);
  await sleep(500);
  const paging = await readByPaging(target, options);
  options.log(`paging: ${paging.received} changes in ${paging.seconds.toFixed(2)} s`);
  const subscription = await readBySubscription(target, options);
  options.log(`subscription: ${subscription.received} changes in ${subscription.seconds.toFixed(2)} s`);
  return { written: options.changes, fillSeconds: fill.seconds, fillPerSecond: options.changes / fill.seconds, paging, subscription };
}

async function fillBucket(target: Service, options: CatchupOptions): Promise<{ seconds: number }> {
  let transports: GqlTransport[];
  let close: () => Promise<void>;
  if (options.writeTransport === 'http') {
    const http = new HttpGql(target.graphqlUrl, target.token, options.fillClients);
    transports = Array.from({ length: options.fillClients }, () => http);
    close = async () => http.close();
  } else {
    const sockets = await openSockets(target.wsUrl, target.token, options.fillClients);
    transports = sockets;
    close = () => closeSockets(sockets);
  }
  let remaining = options.changes;
  const started = performance.now();
  try {
    await Promise.all(
      transports.map(async (transport) => {
        while (remaining > 0) {
          const count = Math.min(options.batchSize, remaining);
          remaining -= count;
          checkSubmitted(await transport.execute(SUBMIT, options.maker.variables(options.bucket, count)), count);
        }
      }),
    );
  } finally {
    await close();
  }
  return { seconds: (performance.now() - started) / 1000 };
}

interface Page {
  changes: unknown[];
  cursor: string;
  hasMore: boolean;
}

async function readByPaging(target: Service, options: CatchupOptions): Promise<ReadResult> {
  const http = new HttpGql(target.graphqlUrl, target.token, 1);
  try {
    const meter = new CpuMeter([target.pid]);
    const started = performance.now();
    const deadline = started + options.timeoutSeconds * 1000;
    let since: string | null = null;
    let received = 0;
    let requests = 0;
    for (;;) {
      const result = await http.execute(CHANGES_PAGE, JSON.stringify({ b: options.bucket, s: since, l: options.pageSize }));
      requests++;
      const page = dataOf(result, 'changes')['changes'] as Page;
      received += page.changes.length;
      since = page.cursor;
      if (!page.hasMore) break;
      if (performance.now() > deadline) throw new Error(`paging: only ${received} of ${options.changes} changes in ${options.timeoutSeconds} s`);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = meter.read();
    if (received !== options.changes) throw new Error(`paging: read ${received} changes, expected ${options.changes}`);
    return { received, seconds, perSecond: received / seconds, requests, serverCpu: cpu.others[0] ?? NaN, serverMainCpu: cpu.mains[0] ?? NaN, clientCpu: cpu.self };
  } finally {
    http.close();
  }
}

async function readBySubscription(target: Service, options: CatchupOptions): Promise<ReadResult> {
  const socket = await GqlSocket.open(target.wsUrl, target.token);
  let stop: (() => void) | undefined;
  try {
    const meter = new CpuMeter([target.pid]);
    const started = performance.now();
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`subscription: only ${received} of ${options.changes} changes in ${options.timeoutSeconds} s`)),
        options.timeoutSeconds * 1000,
      );
      stop = socket.subscribe(SUBSCRIBE_CHANGES, JSON.stringify({ b: options.bucket, s: null }), {
        next: (payload) => {
          if (payload.errors?.length || !payload.data) {
            clearTimeout(timer);
            reject(new Error(`subscription: ${JSON.stringify(payload).slice(0, 300)}`));
            return;
          }
          if (++received === options.changes) {
            clearTimeout(timer);
            resolve();
          }
        },
        error: (error) => {
          clearTimeout(timer);
          reject(error);
        },
        complete: () => {
          clearTimeout(timer);
          reject(new Error(`subscription completed after ${received} of ${options.changes} changes`));
        },
      });
    });
    const seconds = (performance.now() - started) / 1000;
    const cpu = meter.read();
    return { received, seconds, perSecond: received / seconds, requests: 1, serverCpu: cpu.others[0] ?? NaN, serverMainCpu: cpu.mains[0] ?? NaN, clientCpu: cpu.self };
  } finally {
    stop?.();
    await socket.close();
  }
}
