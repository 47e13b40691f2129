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
}

export function serveGraphQLWs<P extends Record<string, unknown> | undefined>(
  options: ServerOptions<P, WsExtra>,
  wss: WebSocketServer,
  adapter: WsAdapterOptions,
): { dispose(): Promise<void> } {
  const { bufferedBytesMax = 256 * 1024, keepAliveMs = 12_000, onError } = adapter;
  const server = makeServer<P, WsExtra>(options);
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
        send: (data) => {
          if (socket.readyState !== socket.OPEN) return;
          if (socket.bufferedAmount < bufferedBytesMax) {
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
