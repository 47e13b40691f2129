/**
 * The graphql-ws server on `ws` sockets: graphql-ws's protocol core (`makeServer`) behind a thin
 * adapter of our own. It differs from graphql-ws's `use/ws` in one way that matters for
 * throughput: a message is not awaited until the socket has flushed it. graphql-ws awaits every
 * `send` before it pulls the next result, so the stock adapter costs one write-completion round
 * trip per message; here `send` returns at once while the socket holds less than
 * `bufferedBytesMax`, and waits for the flush beyond that. Back-pressure stays bounded: a client
 * that does not read stalls its sends, its live queue fills, and it is cut off (SLOW_CONSUMER).
 */
import type { IncomingMessage } from 'node:http';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';

export interface WsExtra {
  socket: WebSocket;
  request: IncomingMessage;
}

export interface WsAdapterOptions {
  /** Bytes a socket may hold unflushed before `send` waits for the flush. @default 262144 */
  bufferedBytesMax?: number;
  /** Interval of keep-alive pings; a client silent for twice this is dropped. @default 12000 */
  keepAliveMs?: number;
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
const PAYLOAD_MARK = '\u0001syncgraph-payload\u0001';
const PAYLOAD_MARK_JSON = JSON.stringify(PAYLOAD_MARK);

export function serveGraphQLWs<P extends Record<string, unknown> | undefined>(
  options: ServerOptions<P, WsExtra>,
  wss: WebSocketServer,
  adapter: WsAdapterOptions,
): { dispose(): Promise<void> } {
  const { bufferedBytesMax = 256 * 1024, keepAliveMs = 12_000, onError, encodePayload } = adapter;
  // One pre-encoded payload at a time: graphql-ws encodes and sends a message synchronously
  // one after the other (stringify, then send), so the slot is filled and emptied in turn.
  let pendingPayload: string | undefined;
  const server = makeServer<P, WsExtra>(
    encodePayload === undefined
      ? options
      : {
          ...options,
          // graphql-ws sends a copy of each result; hand it the result itself when its JSON is
          // known, so that the replacer below recognises it.
          onNext: (ctx, id, payload, args, result) =>
            options.onNext !== undefined
              ? options.onNext(ctx, id, payload, args, result)
              : encodePayload(result) !== undefined
                ? result
                : undefined,
          jsonMessageReplacer: (key, value: unknown) => {
            if (key === 'payload') {
              const json = encodePayload(value);
              if (json !== undefined) {
                pendingPayload = json;
                return PAYLOAD_MARK;
              }
            }
            return value;
          },
        },
  );
  const assemble = (data: string): string => {
    const json = pendingPayload;
    if (json === undefined) return data;
    pendingPayload = undefined;
    const tail = PAYLOAD_MARK_JSON + '}';
    return data.endsWith(tail) ? data.slice(0, data.length - tail.length) + json + '}' : data;
  };
  wss.options.handleProtocols = handleProtocols;

  // Frames sent to one socket in one turn of the event loop leave in one write: the socket is
  // corked at the first send of a turn and uncorked after the turn (a syscall costs about 10 µs
  // here, more than encoding a message). Catch-up replays and multiplexed subscriptions send many
  // frames per turn.
  const corked = new Set<{ cork(): void; uncork(): void }>();
  const uncorkAll = () => {
    for (const stream of corked) stream.uncork();
    corked.clear();
  };
  const corkForThisTurn = (socket: WebSocket) => {
    // `ws` keeps its net.Socket in `_socket`; without it we only lose the coalescing.
    const stream = (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (stream === undefined || corked.has(stream)) return;
    if (corked.size === 0) setImmediate(uncorkAll);
    stream.cork();
    corked.add(stream);
  };

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
          if (socket.bufferedAmount < bufferedBytesMax) {
            corkForThisTurn(socket);
            socket.send(data);
            return;
          }
          return new Promise<void>((resolve, reject) => socket.send(data, (err) => (err ? reject(err) : resolve())));
        },
        close: (code, reason) => socket.close(code, reason),
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
      void closed(code, String(reason));
    });
  });

  return {
    async dispose() {
      for (const client of wss.clients) client.close(1001, 'Going away');
      wss.removeAllListeners('connection');
    },
  };
}
