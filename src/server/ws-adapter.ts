/**
 * The graphql-ws server on `ws` sockets: graphql-ws's protocol core (`makeServer`) behind an
 * adapter of our own, which differs from graphql-ws's `use/ws` where throughput is at stake:
 * - messages are not awaited until flushed: `send` returns at once while the socket holds less
 *   than `bufferedBytesMax`, and waits beyond that (graphql-ws awaits every send before it pulls
 *   the next result, which costs a write-completion round trip per message);
 * - messages are framed and written in batches by the node (ws-outbox.ts);
 * - live results take a fast path: a pushable result stream (engine/async-map.ts) hands them
 *   straight to the socket while graphql-ws waits for the next one.
 * Back-pressure stays bounded: a client that does not read stalls its sends, its live queue
 * fills, and it is cut off (SLOW_CONSUMER).
 */
import type { IncomingMessage } from 'node:http';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';
import { FUSE, isFusable, isPushable, LATER, PUSH, type FusedTarget, type SharedStep } from '../engine/async-map.js';
import { Outboxes, type Outbox } from './ws-outbox.js';

export interface WsExtra {
  socket: WebSocket;
  request: IncomingMessage;
}

export interface WsAdapterOptions {
  /** Bytes a socket may hold unflushed before `send` waits for the flush. @default 262144 */
  bufferedBytesMax?: number;
  /** Interval of keep-alive pings; a client silent for twice this is dropped. @default 12000 */
  keepAliveMs?: number;
  /**
   * Least interval between write passes for live deliveries (see ws-outbox.ts); 0 writes each
   * turn's deliveries at the end of the turn. @default 20
   */
  deliveryBatchMs?: number;
  /** Reports unexpected errors (the client only sees a close code). */
  onError: (error: unknown, what: string) => void;
  /**
   * The JSON of a `next` payload when it is already known (a result shared by many subscribers
   * is encoded once): the message is then assembled around it instead of encoding it again.
   */
  encodePayload?: (payload: unknown) => string | undefined;
}

/**
 * Stands in for a pre-encoded payload while graphql-ws encodes the rest of the message. It
 * contains a control character, which JSON escapes, so no encoded string equals it unescaped; and
 * it is only looked for as the last member of the message, where graphql-ws puts `payload`.
 */
const CLOSE_BRACE = Buffer.from('}');

/** A subscriber's socket, where the fused path (engine/async-map.ts) delivers. */
class OutboxTarget implements FusedTarget {
  constructor(
    private readonly outboxes: Outboxes,
    private readonly outbox: Outbox,
    private readonly prefix: Buffer,
    private readonly max: number,
  ) {}

  deliver(body: unknown): boolean {
    return this.outboxes.deliver(this.outbox, this.prefix, body as Buffer, CLOSE_BRACE, this.max);
  }
}

const PAYLOAD_MARK = '\u0001syncgraph-payload\u0001';
const PAYLOAD_MARK_JSON = JSON.stringify(PAYLOAD_MARK);

export function serveGraphQLWs<P extends Record<string, unknown> | undefined>(
  options: ServerOptions<P, WsExtra>,
  wss: WebSocketServer,
  adapter: WsAdapterOptions,
): { dispose(reason: string): Promise<void> } {
  const { bufferedBytesMax = 256 * 1024, keepAliveMs = 12_000, deliveryBatchMs = 20, onError, encodePayload } = adapter;
  // One pre-encoded payload at a time: graphql-ws encodes and sends a message synchronously
  // one after the other (stringify, then send), so the slot is filled and emptied in turn.
  let pendingPayload: string | undefined;
  const outboxes = new Outboxes(deliveryBatchMs);
  // Where each subscription's results go, for the fast path below: recorded when graphql-ws has
  // the operation's arguments in hand, looked up when it subscribes with them.
  const targets = new WeakMap<object, { socket: WebSocket; id: string }>();
  const server = makeServer<P, WsExtra>({
    ...options,
    onSubscribe: async (ctx, id, payload) => {
      const args = await options.onSubscribe?.(ctx, id, payload);
      if (args !== undefined && args !== null && !Array.isArray(args)) targets.set(args, { socket: ctx.extra.socket, id });
      return args;
    },
    // The fast path: a live result stream that can push (engine/async-map.ts) hands each result
    // straight to the socket while graphql-ws waits for the next one, saving the chain of
    // promises through every layer, which is most of the cost of fanning a change out. What it
    // refuses (errors, a backed-up socket) takes graphql-ws's way, in order.
    subscribe: async (args: ExecutionArgs) => {
      const result = await (options.subscribe ?? (() => Promise.reject(new Error('no subscribe'))))(args);
      const target = targets.get(args);
      if (target !== undefined && isPushable<ExecutionResult>(result)) {
        const prefix = Buffer.from(`{"id":${JSON.stringify(target.id)},"type":"next","payload":`);
        const outbox = outboxes.outboxOf(target.socket);
        if (outbox !== undefined) {
          const socketTarget = new OutboxTarget(outboxes, outbox, prefix, bufferedBytesMax);
          result[PUSH]((next) => next.errors === undefined && socketTarget.deliver(payloadBuffer(next)));
          if (isFusable(result)) result[FUSE]([encodeStep], socketTarget);
        } else {
          result[PUSH]((next) => sendNow(target.socket, prefix, next));
        }
      }
      return result;
    },
    ...(encodePayload === undefined
      ? {}
      : {
          // graphql-ws sends a copy of each result; hand it the result itself when its JSON is
          // known, so that the replacer below recognises it.
          onNext: (ctx, id, payload, args, result) =>
            options.onNext !== undefined
              ? options.onNext(ctx, id, payload, args, result)
              : encodePayload(result) !== undefined
                ? result
                : undefined,
          jsonMessageReplacer: (key: string, value: unknown) => {
            if (key === 'payload') {
              const json = encodePayload(value);
              if (json !== undefined) {
                pendingPayload = json;
                return PAYLOAD_MARK;
              }
            }
            return value;
          },
        }),
  });
  /** Sends a `next` message at once, or refuses (false) when graphql-ws must handle it. */
  const sendNow = (socket: WebSocket, prefix: Buffer, result: ExecutionResult): boolean => {
    if (result.errors !== undefined || socket.readyState !== socket.OPEN || outboxes.pending(socket) >= bufferedBytesMax) return false;
    outboxes.send(socket, [prefix, payloadBuffer(result), CLOSE_BRACE], false);
    return true;
  };
  // The UTF-8 of shared results, encoded once for all their subscribers.
  const payloadBuffers = new WeakMap<ExecutionResult, Buffer>();
  // The last one asked for: a change goes to its subscribers one after the other.
  let lastResult: ExecutionResult | undefined;
  let lastBuffer: Buffer | undefined;
  const payloadBuffer = (result: ExecutionResult): Buffer => {
    if (result === lastResult) return lastBuffer!;
    let buffer = payloadBuffers.get(result);
    if (buffer === undefined) {
      const json = encodePayload?.(result);
      if (json === undefined) return Buffer.from(JSON.stringify(result));
      payloadBuffers.set(result, (buffer = Buffer.from(json)));
    }
    lastResult = result;
    lastBuffer = buffer;
    return buffer;
  };
  // The fused path's last step (engine/async-map.ts): a shared result's bytes, the same for
  // every subscriber; a result with errors takes graphql-ws's way.
  const encodeStep: SharedStep = {
    key: 'graphql-ws next',
    map: (result: ExecutionResult) => (result.errors === undefined ? payloadBuffer(result) : LATER),
  };
  const assemble = (data: string): string => {
    const json = pendingPayload;
    if (json === undefined) return data;
    pendingPayload = undefined;
    const tail = PAYLOAD_MARK_JSON + '}';
    return data.endsWith(tail) ? data.slice(0, data.length - tail.length) + json + '}' : data;
  };
  wss.options.handleProtocols = handleProtocols;

  wss.on('connection', (socket, request) => {
    socket.once('error', (error) => {
      onError(error, 'websocket error');
      socket.close(CloseCode.InternalServerError, 'Internal server error');
    });

    // Keep-alive: a peer that does not answer a ping within the interval is gone.
    let alive = true;
    socket.on('pong', () => (alive = true));
    const ping = setInterval(() => {
      if (!alive) return socket.terminate();
      alive = false;
      socket.ping();
    }, keepAliveMs);
    ping.unref();

    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (raw) => {
          const data = assemble(raw);
          if (socket.readyState !== socket.OPEN) return;
          if (outboxes.pending(socket) < bufferedBytesMax) {
            outboxes.send(socket, data, true);
            return;
          }
          return new Promise<void>((resolve, reject) => outboxes.send(socket, data, true, (err) => (err ? reject(err) : resolve())));
        },
        close: (code, reason) => {
          outboxes.close(socket);
          socket.close(code, reason);
        },
        onMessage: (handle) =>
          socket.on('message', async (message) => {
            try {
              await handle(String(message));
            } catch (error) {
              onError(error, 'graphql-ws message handling failed');
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      { socket, request },
    );

    socket.once('close', (code, reason) => {
      clearInterval(ping);
      outboxes.forget(socket);
      void closed(code, String(reason));
    });
  });

  return {
    /** Closes every socket (1001 going away), after writing what it has queued. */
    async dispose(reason) {
      for (const client of wss.clients) {
        outboxes.close(client);
        client.close(1001, reason);
      }
      wss.removeAllListeners('connection');
    },
  };
}
