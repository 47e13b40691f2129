/**
 * The bench's own WebSocket client (bench/support/ws-wire.ts) against `ws`'s server: the figures
 * of W2 and W3b are only as good as its reading of frames.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { WireSocket } from '../../bench/support/ws-wire.js';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A `ws` server accepting `protocol`; resolves with its URL and the next connection. */
async function serve(protocol = 'graphql-transport-ws') {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (offered) => (offered.has(protocol) ? protocol : false) });
  servers.push(server);
  await once(server, 'listening');
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/graphql`;
  const connection = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  return { url, connection };
}

function collector() {
  const texts: string[] = [];
  const closes: Array<[number, string]> = [];
  let wake: (() => void) | undefined;
  return {
    texts,
    closes,
    handlers: {
      text: (data: Buffer) => {
        texts.push(data.toString('utf8'));
        wake?.();
      },
      closed: (code: number, reason: string) => {
        closes.push([code, reason]);
        wake?.();
      },
    },
    async until(condition: () => boolean) {
      while (!condition()) await new Promise<void>((resolve) => (wake = resolve));
    },
  };
}

describe('WireSocket (bench/support/ws-wire.ts)', () => {
  it('reads text frames of every length encoding, split and coalesced across reads, and sends masked frames the server reads', async () => {
    const { url, connection } = await serve();
    const c = collector();
    const wire = await WireSocket.open(url, 'graphql-transport-ws', c.handlers);
    const peer = await connection;
    const received: string[] = [];
    peer.on('message', (data) => received.push(String(data)));
    // 7-bit, 16-bit and 64-bit lengths, multi-byte UTF-8, and an empty message.
    const sent = ['a', 'é'.repeat(100), 'x'.repeat(70_000), '{"t":1}', '', 'ü'.repeat(40_000)];
    for (const text of sent) peer.send(text);
    await c.until(() => c.texts.length === sent.length);
    expect(c.texts).toEqual(sent);
    wire.sendText('hello');
    wire.sendText('z'.repeat(300));
    wire.sendText('w'.repeat(70_000));
    await new Promise<void>((resolve) => {
      const check = () => (received.length === 3 ? resolve() : setTimeout(check, 5));
      check();
    });
    expect(received).toEqual(['hello', 'z'.repeat(300), 'w'.repeat(70_000)]);
  });

  it('keeps the messages of sockets read one after the other into the one read buffer apart', async () => {
    // Every socket's reads land in one shared buffer: a frame split across reads must be copied
    // out before another socket's read overwrites it.
    const first = await serve();
    const second = await serve();
    const a = collector();
    const b = collector();
    await WireSocket.open(first.url, 'graphql-transport-ws', a.handlers);
    await WireSocket.open(second.url, 'graphql-transport-ws', b.handlers);
    const [peerA, peerB] = await Promise.all([first.connection, second.connection]);
    const sentA: string[] = [];
    const sentB: string[] = [];
    for (let i = 0; i < 20; i++) {
      sentA.push(`a${i}:` + 'A'.repeat(30_000 + i * 1_000));
      sentB.push(`b${i}:` + 'B'.repeat(45_000 - i * 1_000));
      peerA.send(sentA[i]!);
      peerB.send(sentB[i]!);
    }
    await a.until(() => a.texts.length === sentA.length);
    await b.until(() => b.texts.length === sentB.length);
    expect(a.texts).toEqual(sentA);
    expect(b.texts).toEqual(sentB);
  });

  it('joins a fragmented message and answers pings', async () => {
    const { url, connection } = await serve();
    const c = collector();
    await WireSocket.open(url, 'graphql-transport-ws', c.handlers);
    const peer = await connection;
    peer.send('part one, ', { fin: false });
    peer.send('part two', { fin: true });
    const pong = once(peer, 'pong');
    peer.ping(Buffer.from('are you there'));
    const [payload] = (await pong) as [Buffer];
    expect(payload.toString()).toBe('are you there');
    await c.until(() => c.texts.length === 1);
    expect(c.texts).toEqual(['part one, part two']);
  });

  it('reports the close code and reason, once, and closes cleanly from its side', async () => {
    const { url, connection } = await serve();
    const c = collector();
    await WireSocket.open(url, 'graphql-transport-ws', c.handlers);
    const peer = await connection;
    peer.close(4403, 'Forbidden');
    await c.until(() => c.closes.length > 0);
    expect(c.closes).toEqual([[4403, 'Forbidden']]);

    const second = await serve();
    const d = collector();
    const wire = await WireSocket.open(second.url, 'graphql-transport-ws', d.handlers);
    const other = await second.connection;
    const closedThere = once(other, 'close');
    wire.close(1000, 'bench done');
    const [code, reason] = (await closedThere) as [number, Buffer];
    expect([code, String(reason)]).toEqual([1000, 'bench done']);
    await d.until(() => d.closes.length > 0);
    expect(d.closes).toHaveLength(1);
    expect(wire.open).toBe(false);
  });

  it('refuses a server that does not take the subprotocol', async () => {
    const { url } = await serve('something-else');
    await expect(WireSocket.open(url, 'graphql-transport-ws', collector().handlers)).rejects.toThrow(/subprotocol|refused/);
  });
});
