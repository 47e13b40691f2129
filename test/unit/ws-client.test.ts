/**
 * The bench's graphql-ws client (bench/support/ws-client.ts) reads a delivery's operation and send
 * time off its frame without decoding it: W2's latencies are only as good as that reading.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { GqlSocket } from '../../bench/support/ws-client.js';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A graphql-ws server that acknowledges the connection and hands out each subscribe's id. */
async function serve() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'graphql-transport-ws' });
  servers.push(server);
  await once(server, 'listening');
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/graphql`;
  const subscribed: string[] = [];
  let peer: WebSocket | undefined;
  let wake: (() => void) | undefined;
  server.on('connection', (socket) => {
    peer = socket;
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; id?: string };
      if (message.type === 'connection_init') socket.send('{"type":"connection_ack"}');
      if (message.type === 'subscribe') subscribed.push(message.id!);
      wake?.();
    });
  });
  return {
    url,
    subscribed,
    send: (text: string) => peer!.send(text),
    async until(condition: () => boolean) {
      while (!condition()) await new Promise<void>((resolve) => (wake = resolve));
    },
  };
}

describe('GqlSocket (bench/support/ws-client.ts)', () => {
  it('reads the send time of plain deliveries off the frame, and decodes everything else in full', async () => {
    const server = await serve();
    const socket = await GqlSocket.open(server.url, 'token');
    const times: number[] = [];
    const decoded: unknown[] = [];
    const other = { times: [] as number[], decoded: [] as unknown[] };
    socket.subscribe('"subscription { changes { data } }"', '{}', {
      sendTime: (t) => times.push(t),
      next: (payload) => decoded.push(payload),
      error: (error) => decoded.push(error.message),
    });
    socket.subscribe('"subscription { changes { data } }"', '{}', {
      sendTime: (t) => other.times.push(t),
      next: (payload) => other.decoded.push(payload),
      error: (error) => other.decoded.push(error.message),
    });
    await server.until(() => server.subscribed.length === 2);
    const [id, otherId] = server.subscribed;
    const values = [1234.5678901234567, -1, 0, 42, 0.000001, 1e-7, 98765432.123, 3.14159e21];
    const next = (to: string, data: unknown, extra = '') => server.send(`{"id":"${to}","type":"next","payload":{"data":${JSON.stringify(data)}${extra}}}`);
    for (const t of values) next(id!, { changes: { key: 'k', data: { t, s: 'x' } } });
    next(otherId!, { changes: { data: { t: 7.5 } } });
    // Not plain deliveries: no `t`, errors after the data, errors first, an unknown operation.
    next(id!, { changes: { data: { other: 1 } } });
    next(id!, { changes: { data: { t: 5 } } }, ',"errors":[{"message":"boom"}]');
    server.send(`{"id":"${id}","type":"next","payload":{"errors":[{"message":"first"}],"data":null}}`);
    next('999', { changes: { data: { t: 9 } } });
    await new Promise<void>((resolve) => {
      const check = () => (decoded.length === 3 && other.times.length === 1 ? resolve() : setTimeout(check, 5));
      check();
    });
    // Read digit by digit: equal to JSON.parse's value within a few units in the last place.
    expect(times).toHaveLength(values.length);
    times.forEach((t, i) => expect(t).toBeCloseTo(values[i]!, 9));
    expect(times[0]).toBeCloseTo(1234.5678901234567, 12);
    expect(other.times).toEqual([7.5]);
    expect(other.decoded).toEqual([]);
    expect(decoded).toEqual([
      { data: { changes: { data: { other: 1 } } } },
      { data: { changes: { data: { t: 5 } } }, errors: [{ message: 'boom' }] },
      { errors: [{ message: 'first' }], data: null },
    ]);
    await socket.close();
  });
});
