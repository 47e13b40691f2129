/**
 * W1 and W1b: closed-loop submitChanges, one change per request (W1) or a batch per request
 * (W1b), over HTTP (one keep-alive connection per client) or graphql-ws (one socket per client).
 * The same code drives the bare server, whose submitChanges does nothing.
 */
import { checkSubmitted, SUBMIT, type ChangeMaker, type GqlTransport } from '../support/gql.js';
import { HttpGql } from '../support/http-client.js';
import type { Service } from '../support/services.js';
import { closeSockets, openSockets } from '../support/ws-client.js';
import { runClosedLoop, type ClosedLoopResult } from './closed-loop.js';

export interface SubmitOptions {
  transport: 'http' | 'ws';
  clients: number;
  perRequest: number;
  bucket: string;
  /** Spread the requests round-robin over this many buckets (`{bucket}-{i}`); default 1: `bucket`. */
  buckets?: number;
  warmupSeconds: number;
  seconds: number;
  maker: ChangeMaker;
}

export async function runSubmit(target: Service, options: SubmitOptions): Promise<ClosedLoopResult> {
  let transports: GqlTransport[];
  let close: () => Promise<void>;
  if (options.transport === 'http') {
    const http = new HttpGql(target.graphqlUrl, target.token, options.clients);
    transports = Array.from({ length: options.clients }, () => http);
    close = async () => http.close();
  } else {
    const sockets = await openSockets(target.wsUrl, target.token, options.clients);
    transports = sockets;
    close = () => closeSockets(sockets);
  }
  const buckets = options.buckets ?? 1;
  let n = 0;
  const nextBucket = buckets === 1 ? () => options.bucket : () => `${options.bucket}-${n++ % buckets}`;
  try {
    return await runClosedLoop({
      transports,
      warmupSeconds: options.warmupSeconds,
      seconds: options.seconds,
      query: SUBMIT,
      variables: () => options.maker.variables(nextBucket(), options.perRequest),
      perRequest: options.perRequest,
      check: (result) => checkSubmitted(result, options.perRequest),
      serverPid: target.pid,
    });
  } finally {
    await close();
  }
}
