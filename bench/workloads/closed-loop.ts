/**
 * Closed-loop load: N clients, each sending one request and awaiting its answer before the next,
 * for a warm-up then a measured span. Counts requests that complete inside the measured span.
 * Any error (transport or GraphQL, or a change not applied) ends the run with that error: a
 * throughput made of failures is not a figure.
 */
import { CpuMeter, Samples, type LatencySummary } from '../stats.js';
import type { GqlResult, GqlTransport } from '../support/gql.js';

export interface ClosedLoopOptions {
  /** One transport per client (several clients may share one HTTP transport). */
  transports: readonly GqlTransport[];
  warmupSeconds: number;
  seconds: number;
  query: string;
  /** Fresh variables for the next request (pre-encoded JSON). */
  variables: () => string;
  /** Changes (or operations) per request, for the rate. */
  perRequest: number;
  /** Throws when an answer is not what it should be. */
  check: (result: GqlResult) => void;
  /** Processes whose CPU use is reported (the server). */
  serverPid: number;
}

export interface ClosedLoopResult {
  clients: number;
  requests: number;
  perSecond: number;
  requestsPerSecond: number;
  /** Request round-trip times of the measured span, ms. */
  latency: LatencySummary;
  /** Fractions of one core during the measured span. */
  serverCpu: number;
  /** The server's main (JavaScript) thread alone. */
  serverMainCpu: number;
  clientCpu: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const started = performance.now();
  const measureFrom = started + options.warmupSeconds * 1000;
  const end = measureFrom + options.seconds * 1000;
  const latencies = new Samples(1 << 14);
  let requests = 0;
  let failure: unknown;
  let meter: CpuMeter | undefined;
  let cpu: ReturnType<CpuMeter['read']> | undefined;
  const meterStart = setTimeout(() => (meter = new CpuMeter([options.serverPid])), Math.max(0, measureFrom - performance.now()));
  const meterEnd = setTimeout(() => (cpu = meter?.read()), Math.max(0, end - performance.now()));

  const client = async (transport: GqlTransport) => {
    while (failure === undefined) {
      const sent = performance.now();
      if (sent >= end) return;
      const result = await transport.execute(options.query, options.variables());
      const received = performance.now();
      options.check(result);
      if (received >= measureFrom && received <= end) {
        requests++;
        latencies.push(received - sent);
      }
    }
  };
  await Promise.all(
    options.transports.map((transport) =>
      client(transport).catch((error: unknown) => {
        failure ??= error;
      }),
    ),
  );
  clearTimeout(meterStart);
  clearTimeout(meterEnd);
  if (failure !== undefined) throw failure;
  cpu ??= meter?.read();
  return {
    clients: options.transports.length,
    requests,
    perSecond: (requests * options.perRequest) / options.seconds,
    requestsPerSecond: requests / options.seconds,
    latency: latencies.summary(),
    serverCpu: cpu?.others[0] ?? NaN,
    serverMainCpu: cpu?.mains[0] ?? NaN,
    clientCpu: cpu?.self ?? NaN,
  };
}
