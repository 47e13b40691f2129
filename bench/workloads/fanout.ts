/**
 * W2: live fanout. `subscribers` subscriptions to one bucket, dealt round-robin over `sockets`
 * graphql-ws sockets, all from the bucket's head cursor. Then:
 *  1. probes: a change with t = -1 every 300 ms until every subscriber has received one (so
 *     every subscription is known live before anything is measured; probes are not measured);
 *  2. idle memory: the server's VmRSS before opening the sockets, after opening them, and after
 *     the subscriptions are live, each after a quiet pause and a full GC (forced through the
 *     server's inspector, support/inspector.ts);
 *     the figure is (last - first) / subscribers: socket, graphql-ws and subscription state;
 *  3. a warm-up: the writer below runs for `warmupSeconds` unmeasured, and every subscriber gets
 *     all of it. A node that has just been idle has let its young generation shrink, and for its
 *     first seconds of load it collects garbage more often than it will in a steady state: W1
 *     warms up for the same reason;
 *  4. an open-loop writer submits `rate` changes per second (one per request, not waiting for
 *     acks) for `seconds`, each carrying its send time `t` (performance.now() of this process);
 *     each subscriber records receipt time - t for every change; then we wait for the last
 *     deliveries (at most `drainSeconds`). A delivery still missing then counts with its age at
 *     that moment (a lower bound), so a server that cannot keep up is not flattered.
 *     Per change, the writer's ack and the first and last subscriber's receipt are kept too, to
 *     tell a late commit from a slow fanout, and the server's GC pauses are watched meanwhile
 *     (support/gc-watch.ts).
 */
import { CpuMeter, rssKiB, Samples, sleep, type LatencySummary } from '../stats.js';
import { headCursor, SUBSCRIBE_CHANGES, type ChangeMaker, type GqlResult, type GqlTransport } from '../support/gql.js';
import { HttpGql } from '../support/http-client.js';
import { watchGc, type GcSummary } from '../support/gc-watch.js';
import type { Service } from '../support/services.js';
import { closeSockets, GqlSocket, openSockets } from '../support/ws-client.js';

export interface FanoutOptions {
  subscribers: number;
  sockets: number;
  rate: number;
  seconds: number;
  drainSeconds: number;
  /** Seconds of unmeasured load first (see above). */
  warmupSeconds: number;
  bucket: string;
  maker: ChangeMaker;
  writeTransport: 'http' | 'ws';
  /** The write operation (SUBMIT for the node, PUBLISH for the bare server) and its check. */
  writeQuery: string;
  checkWrite: (result: GqlResult) => void;
  /** Progress lines. */
  log: (line: string) => void;
}

export interface FanoutResult {
  subscribers: number;
  sockets: number;
  subscribeSeconds: number;
  rssBeforeKiB: number;
  /** After the sockets are open (handshake done), before any subscription. */
  rssSocketsKiB: number;
  rssIdleKiB: number;
  /** (idle - before) / subscribers, in kB (1000 bytes): socket and subscription together. */
  idleKBPerSubscriber: number;
  /** (sockets - before) / sockets, kB. */
  socketKB: number;
  /** (idle - sockets) / subscribers, kB. */
  subscriptionKB: number;
  /** Deliveries missing at the drain deadline; counted in `latency` with their age then. */
  censored: number;
  sent: number;
  expected: number;
  delivered: number;
  subscriptionErrors: number;
  firstError: string | undefined;
  latency: LatencySummary;
  writerAck: LatencySummary;
  /** Per change: send to its first receipt, and to its last (of those before the deadline). */
  firstDelivery: LatencySummary;
  lastDelivery: LatencySummary;
  /** Changes that some subscriber received later than the p99 of all deliveries. */
  changesPastP99: number;
  /** The server's GC pauses from the first write to the end of the drain. */
  serverGc: GcSummary;
  /** Fractions of one core from the first write to the last delivery. */
  serverCpu: number;
  serverMainCpu: number;
  clientCpu: number;
  /** The part of `clientCpu` spent in the kernel (socket reads and writes). */
  clientKernelCpu: number;
  /** Deliveries per second from the first write to the end of the drain. */
  deliveriesPerSecond: number;
}

interface Subscriber {
  count: number;
  probed: boolean;
  /** Warm-up changes received. */
  warm: number;
}

/** The send time a probe carries; a warm-up change carries WARM_UP. Neither is measured. */
const PROBE = -1;
const WARM_UP = -2;

const SETTLE_MS = 2_000;

/**
 * Calls `send(i)` for i in [0, count), the i-th `i * intervalMs` after the first, not waiting for
 * what each call starts (an open loop); stops early when `send` returns false.
 */
async function paced(count: number, intervalMs: number, send: (i: number) => boolean): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = started + i * intervalMs - performance.now();
    if (wait > 1) await sleep(wait);
    if (!send(i)) return;
  }
}

export async function runFanout(target: Service, options: FanoutOptions): Promise<FanoutResult> {
  const writer: GqlTransport & { close(): unknown } =
    options.writeTransport === 'http' ? new HttpGql(target.graphqlUrl, target.token, 32) : await GqlSocket.open(target.wsUrl, target.token);
  let sockets: GqlSocket[] = [];
  const stops: Array<() => void> = [];
  try {
    const since = await headCursor(writer, options.bucket);
    await sleep(1_000);
    await target.collectGarbage();
    const rssBeforeKiB = rssKiB(target.pid);

    const total = Math.max(1, Math.round(options.rate * options.seconds));
    const samples = new Samples(options.subscribers * total);
    const subscribers: Subscriber[] = [];
    let subscriptionErrors = 0;
    let firstError: string | undefined;
    const variables = JSON.stringify({ b: options.bucket, s: since });
    // Per change (by its send time): the first and last receipt.
    const changeOf = new Map<number, number>();
    const firstAt = new Float64Array(total).fill(NaN);
    const lastAt = new Float64Array(total).fill(NaN);

    const subscribeStarted = performance.now();
    sockets = await openSockets(target.wsUrl, target.token, options.sockets);
    await sleep(SETTLE_MS);
    await target.collectGarbage();
    const rssSocketsKiB = rssKiB(target.pid);
    for (let i = 0; i < options.subscribers; i++) {
      const subscriber: Subscriber = { count: 0, probed: false, warm: 0 };
      subscribers.push(subscriber);
      const socket = sockets[i % sockets.length]!;
      const received = (t: number, now: number) => {
        if (t === PROBE) subscriber.probed = true;
        if (t === WARM_UP) subscriber.warm++;
        if (t < 0) return;
        subscriber.count++;
        samples.push(now - t);
        const change = changeOf.get(t);
        if (change !== undefined) {
          if (!(firstAt[change]! <= now)) firstAt[change] = now;
          if (!(lastAt[change]! >= now)) lastAt[change] = now;
        }
      };
      stops.push(
        socket.subscribe(SUBSCRIBE_CHANGES, variables, {
          sendTime: (t) => received(t, performance.now()),
          next: (payload) => {
            const now = performance.now();
            const change = payload.data?.['changes'] as { data?: { t?: number } } | undefined;
            const t = change?.data?.t;
            if (typeof t !== 'number') {
              subscriptionErrors++;
              firstError ??= `unexpected payload: ${JSON.stringify(payload).slice(0, 300)}`;
              return;
            }
            received(t, now);
          },
          error: (error) => {
            subscriptionErrors++;
            firstError ??= error.message;
          },
        }),
      );
    }

    // Probes until every subscription is live.
    const probeDeadline = performance.now() + 30_000;
    while (subscribers.some((s) => !s.probed)) {
      if (performance.now() > probeDeadline || subscriptionErrors > 0) {
        const live = subscribers.filter((s) => s.probed).length;
        throw new Error(`only ${live} of ${options.subscribers} subscriptions became live${firstError ? `: ${firstError}` : ''}`);
      }
      options.checkWrite(await writer.execute(options.writeQuery, options.maker.variables(options.bucket, 1, PROBE)));
      await sleep(300);
    }
    const subscribeSeconds = (performance.now() - subscribeStarted) / 1000 - SETTLE_MS / 1000;
    options.log(`${options.subscribers} subscriptions live on ${sockets.length} sockets in ${subscribeSeconds.toFixed(1)} s`);
    await sleep(SETTLE_MS);
    await target.collectGarbage();
    const rssIdleKiB = rssKiB(target.pid);

    // The warm-up: the same open-loop writes, unmeasured, all delivered before the measured ones.
    const interval = 1000 / options.rate;
    const warmTotal = Math.round(options.rate * options.warmupSeconds);
    if (warmTotal > 0) {
      const warmWrites: Array<Promise<void>> = [];
      await paced(warmTotal, interval, () => {
        warmWrites.push(writer.execute(options.writeQuery, options.maker.variables(options.bucket, 1, WARM_UP)).then(options.checkWrite));
        return true;
      });
      await Promise.all(warmWrites);
      const warmDeadline = performance.now() + options.drainSeconds * 1000;
      while (subscribers.some((s) => s.warm < warmTotal)) {
        if (performance.now() > warmDeadline || subscriptionErrors > 0) {
          throw new Error(`the warm-up's changes did not all arrive within ${options.drainSeconds} s${firstError ? `: ${firstError}` : ''}`);
        }
        await sleep(20);
      }
    }

    // The open-loop writer.
    const stopGcWatch = await watchGc(target);
    const meter = new CpuMeter([target.pid]);
    const acks = new Samples(total);
    const sendTimes = new Float64Array(total);
    const pending: Array<Promise<void>> = [];
    let writeError: unknown;
    await paced(total, interval, (i) => {
      const t = performance.now();
      sendTimes[i] = t;
      changeOf.set(t, i);
      pending.push(
        writer.execute(options.writeQuery, options.maker.variables(options.bucket, 1, t)).then(
          (result) => {
            options.checkWrite(result);
            acks.push(performance.now() - t);
          },
          (error: unknown) => {
            writeError ??= error;
          },
        ),
      );
      return writeError === undefined;
    });
    let acked = 0;
    for (const p of pending) void p.then(() => acked++);
    const drainDeadline = performance.now() + options.drainSeconds * 1000;
    while (
      (acked < pending.length || subscribers.some((s) => s.count < total)) &&
      performance.now() < drainDeadline &&
      subscriptionErrors === 0 &&
      writeError === undefined
    ) {
      await sleep(20);
    }
    if (writeError !== undefined) throw writeError;
    const cpu = meter.read();
    const serverGc = await stopGcWatch();
    // Deliveries still missing at the deadline count with their age then: a lower bound.
    const deadline = performance.now();
    const delivered = subscribers.reduce((sum, s) => sum + s.count, 0);
    let censored = 0;
    for (const subscriber of subscribers) {
      for (let j = subscriber.count; j < total; j++) {
        samples.push(deadline - (sendTimes[j] ?? deadline));
        censored++;
      }
    }

    // Unmeasured: drop the subscribers (the server stops fanning out), then let the writes finish
    // so that the next workload starts on an idle server.
    for (const stop of stops.splice(0)) stop();
    await closeSockets(sockets);
    await Promise.race([Promise.all(pending), sleep(60_000)]);
    if (writeError !== undefined) throw writeError;

    const latency = samples.summary();
    return {
      subscribers: options.subscribers,
      sockets: sockets.length,
      subscribeSeconds,
      rssBeforeKiB,
      rssSocketsKiB,
      rssIdleKiB,
      idleKBPerSubscriber: ((rssIdleKiB - rssBeforeKiB) * 1.024) / options.subscribers,
      socketKB: ((rssSocketsKiB - rssBeforeKiB) * 1.024) / sockets.length,
      subscriptionKB: ((rssIdleKiB - rssSocketsKiB) * 1.024) / options.subscribers,
      censored,
      sent: total,
      expected: total * options.subscribers,
      delivered,
      subscriptionErrors,
      firstError,
      latency,
      writerAck: acks.summary(),
      ...perChange(sendTimes, firstAt, lastAt, latency.p99),
      serverGc,
      serverCpu: cpu.others[0] ?? NaN,
      serverMainCpu: cpu.mains[0] ?? NaN,
      deliveriesPerSecond: delivered / cpu.seconds,
      clientCpu: cpu.self,
      clientKernelCpu: cpu.selfKernel,
    };
  } finally {
    for (const stop of stops) stop();
    await closeSockets(sockets);
    writer.close();
  }
}

/** Per change received at all: the first and last receipt, and how many changes had one past the p99. */
export function perChange(sendTimes: Float64Array, firstAt: Float64Array, lastAt: Float64Array, p99: number) {
  const first = new Samples(sendTimes.length);
  const last = new Samples(sendTimes.length);
  let changesPastP99 = 0;
  for (let i = 0; i < sendTimes.length; i++) {
    if (Number.isNaN(firstAt[i]!)) continue;
    first.push(firstAt[i]! - sendTimes[i]!);
    last.push(lastAt[i]! - sendTimes[i]!);
    if (lastAt[i]! - sendTimes[i]! > p99) changesPastP99++;
  }
  return { firstDelivery: first.summary(), lastDelivery: last.summary(), changesPastP99 };
}
