/**
 * A fault-injecting TCP proxy for black-box cluster tests: it listens on its own port of
 * 127.0.0.1 and forwards each connection to a target port, until told to cut some of them.
 *
 * Which connections pass is decided per connection by a label, found by `identify` in the first
 * bytes the client sends (for peer links, `peerHelloNodeId`: the node id of the dialing node, from
 * its handshake `hello`). A connection whose label the filter refuses is cut (both sockets
 * destroyed) before the bytes that identified it are forwarded, and `setFilter` cuts the open
 * connections it now refuses. A partition of a cluster is then a filter per proxy.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** `undefined`: more bytes needed; `null`: not identifiable; a string: the connection's label. */
export type Identify = (clientBytes: Buffer) => string | null | undefined;

export interface TcpProxy {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** `127.0.0.1:port`. */
  address: string;
  /** Which labels may pass from now on; open connections it refuses are cut at once. */
  setFilter(allow: (label: string | null) => boolean): void;
  /** Labels of the open connections (undefined: not identified yet). */
  labels(): Array<string | null | undefined>;
  /** Connections cut by the filter so far. */
  readonly cut: number;
  close(): Promise<void>;
}

interface Piped {
  client: Socket;
  upstream: Socket;
  label: string | null | undefined;
}

/** Bytes read from a client before giving up identifying it (the label is then null). */
const IDENTIFY_BYTES_MAX = 64 * 1024;

/** `targetPort` may be a function: read at each connection (the target's port can be chosen after the proxy's). */
export async function startTcpProxy(options: { targetPort: number | (() => number); targetHost?: string; identify?: Identify }): Promise<TcpProxy> {
  const { targetPort, targetHost = '127.0.0.1', identify } = options;
  const open = new Set<Piped>();
  let allow: (label: string | null) => boolean = () => true;
  let cut = 0;

  const destroy = (piped: Piped) => {
    open.delete(piped);
    piped.client.destroy();
    piped.upstream.destroy();
  };

  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect({ port: typeof targetPort === 'number' ? targetPort : targetPort(), host: targetHost });
    upstream.setNoDelay(true);
    const piped: Piped = { client, upstream, label: identify === undefined ? null : undefined };
    open.add(piped);
    if (piped.label === null && !allow(null)) {
      cut++;
      destroy(piped);
      return;
    }
    let seen = Buffer.alloc(0);
    const forward = (from: Socket, to: Socket, chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    };
    client.on('data', (chunk: Buffer) => {
      if (piped.label === undefined && identify !== undefined) {
        seen = Buffer.concat([seen, chunk]);
        const label = identify(seen);
        if (label !== undefined || seen.length > IDENTIFY_BYTES_MAX) {
          piped.label = label ?? null;
          seen = Buffer.alloc(0);
          if (!allow(piped.label)) {
            cut++;
            destroy(piped);
            return;
          }
        }
      }
      forward(client, upstream, chunk);
    });
    upstream.on('data', (chunk: Buffer) => forward(upstream, client, chunk));
    for (const socket of [client, upstream]) {
      socket.on('error', () => destroy(piped));
      socket.on('close', () => destroy(piped));
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    setFilter(filter) {
      allow = filter;
      for (const piped of [...open]) {
        if (piped.label !== undefined && !allow(piped.label)) {
          cut++;
          destroy(piped);
        }
      }
    },
    labels: () => [...open].map((p) => p.label),
    get cut() {
      return cut;
    },
    close() {
      for (const piped of [...open]) destroy(piped);
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The node id a syncgraph peer announces in its handshake (`{t:'hello', nodeId}`, the first
 * WebSocket frame it sends on `/cluster`), read from the bytes a dialing node sent so far.
 */
export function peerHelloNodeId(bytes: Buffer): string | null | undefined {
  const headerEnd = bytes.indexOf('\r\n\r\n');
  if (headerEnd < 0) return undefined;
  if (!bytes.subarray(0, headerEnd).toString('latin1').startsWith('GET /cluster ')) return null;
  let at = headerEnd + 4;
  if (bytes.length < at + 2) return undefined;
  const opcode = bytes[at]! & 0x0f;
  const masked = (bytes[at + 1]! & 0x80) !== 0;
  let length = bytes[at + 1]! & 0x7f;
  at += 2;
  if (length === 126) {
    if (bytes.length < at + 2) return undefined;
    length = bytes.readUInt16BE(at);
    at += 2;
  } else if (length === 127) {
    if (bytes.length < at + 8) return undefined;
    length = Number(bytes.readBigUInt64BE(at));
    at += 8;
  }
  const mask = masked ? bytes.subarray(at, at + 4) : undefined;
  if (masked) at += 4;
  if (bytes.length < at + length) return undefined;
  if (opcode !== 0x1) return null;
  const payload = Buffer.from(bytes.subarray(at, at + length));
  if (mask !== undefined) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
  try {
    const frame = JSON.parse(payload.toString('utf8')) as { t?: unknown; nodeId?: unknown };
    return frame.t === 'hello' && typeof frame.nodeId === 'string' ? frame.nodeId : null;
  } catch {
    return null;
  }
}
