/**
 * The client side of a WebSocket (RFC 6455) on a bare TCP socket, as lean as the bench needs.
 *
 * W2 reads 100,000 deliveries a second over 1,000 sockets in this one process, on the same cores
 * as the server it measures. With `ws`, each read went through a Writable stream, a frame parser
 * built for every case, and an event per message: the bench client then used about as much CPU
 * as the server, and since it serialises what 1,000 real devices would do in parallel, the time
 * it took to get through a burst of readable sockets was counted as the server's latency. Here a
 * read is parsed in place and each text frame handed over as a view of the received bytes.
 *
 * What it does not do, because neither server under test needs it: extensions (no
 * permessage-deflate is offered), fragmented messages from the server other than by plain
 * continuation frames, and TLS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Where every socket's reads land (see `open`). */
const readBuffer = Buffer.allocUnsafe(256 * 1024);

export interface WireHandlers {
  /** A complete text message; `data` is only valid during the call. */
  text(data: Buffer): void;
  /** The connection ended (close frame, socket closed, or error); called once. */
  closed(code: number, reason: string): void;
}

export class WireSocket {
  private pending: Buffer | undefined;
  /** The parts of a fragmented message received so far. */
  private fragments: Buffer[] | undefined;
  private ended = false;

  private constructor(
    private readonly socket: Socket,
    private readonly handlers: WireHandlers,
  ) {
    socket.on('close', () => this.end(1006, 'socket closed'));
    socket.on('error', (error) => this.end(1006, error.message));
  }

  /** Connects and completes the opening handshake, offering `protocol`. */
  static open(url: string, protocol: string, handlers: WireHandlers, timeoutMs = 15_000): Promise<WireSocket> {
    const target = new URL(url);
    const key = randomBytes(16).toString('base64');
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    return new Promise<WireSocket>((resolve, reject) => {
      let head = Buffer.alloc(0);
      let wire: WireSocket | undefined;
      // Reads go into one buffer shared by every socket (`onread`), handed over synchronously:
      // no Buffer and no stream event per read, which at 50,000 reads a second was a good part
      // of this process's CPU. So nothing may keep a view of it past the call.
      const received = (bytes: Buffer) => {
        if (wire !== undefined) return wire.receive(bytes);
        head = Buffer.concat([head, bytes]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('error', fail);
        clearTimeout(timer);
        const lines = head.toString('latin1', 0, end).split('\r\n');
        const headers = new Map(lines.slice(1).map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
        if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? '') || headers.get('sec-websocket-accept') !== accept) {
          socket.destroy();
          reject(new Error(`WebSocket handshake refused by ${url}: ${lines[0]}`));
          return;
        }
        if (headers.get('sec-websocket-protocol') !== protocol) {
          socket.destroy();
          reject(new Error(`${url} did not accept the subprotocol ${protocol}`));
          return;
        }
        wire = new WireSocket(socket, handlers);
        resolve(wire);
        if (head.length > end + 4) wire.receive(head.subarray(end + 4));
      };
      const socket = connect({
        host: target.hostname,
        port: Number(target.port),
        noDelay: true,
        onread: {
          buffer: readBuffer,
          callback: (length) => {
            received(readBuffer.subarray(0, length));
            return true;
          },
        },
      });
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`no WebSocket handshake from ${url} in ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.write(
          `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
        );
      });
    });
  }

  get open(): boolean {
    return !this.ended;
  }

  sendText(text: string): void {
    this.sendFrame(0x1, Buffer.from(text));
  }

  /** Sends a close frame; the server answers it and closes the connection. */
  close(code: number, reason: string): void {
    if (this.ended) return;
    const body = Buffer.alloc(2 + Buffer.byteLength(reason));
    body.writeUInt16BE(code, 0);
    body.write(reason, 2);
    this.sendFrame(0x8, body);
  }

  terminate(): void {
    this.socket.destroy();
    this.end(1006, 'terminated');
  }

  /** Client frames are masked (RFC 6455 §5.3). */
  private sendFrame(opcode: number, payload: Buffer): void {
    if (this.ended || this.socket.destroyed) return;
    const length = payload.length;
    const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
    const frame = Buffer.allocUnsafe(2 + extra + 4 + length);
    frame[0] = 0x80 | opcode;
    if (extra === 0) frame[1] = 0x80 | length;
    else if (extra === 2) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(length), 2);
    }
    const maskAt = 2 + extra;
    randomBytes(4).copy(frame, maskAt);
    for (let i = 0; i < length; i++) frame[maskAt + 4 + i] = payload[i]! ^ frame[maskAt + (i & 3)]!;
    this.socket.write(frame);
  }

  private receive(chunk: Buffer): void {
    const data = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = undefined;
    let at = 0;
    while (!this.ended) {
      if (data.length - at < 2) break;
      const first = data[at]!;
      const second = data[at + 1]!;
      let length = second & 0x7f;
      let start = at + 2;
      if (length === 126) {
        if (data.length - at < 4) break;
        length = data.readUInt16BE(at + 2);
        start = at + 4;
      } else if (length === 127) {
        if (data.length - at < 10) break;
        length = Number(data.readBigUInt64BE(at + 2));
        start = at + 10;
      }
      if ((second & 0x80) !== 0) {
        this.protocolError('masked frame from the server');
        return;
      }
      if (data.length - start < length) break;
      this.frame(first, data.subarray(start, start + length));
      at = start + length;
    }
    if (at < data.length && !this.ended) this.pending = Buffer.from(data.subarray(at));
  }

  private frame(first: number, payload: Buffer): void {
    const fin = (first & 0x80) !== 0;
    const opcode = first & 0x0f;
    switch (opcode) {
      case 0x0:
      case 0x1:
        if (opcode === 0x1 && fin && this.fragments === undefined) return this.handlers.text(payload);
        if (opcode === 0x1) this.fragments = [];
        if (this.fragments === undefined) return this.protocolError('continuation without a message');
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = undefined;
          this.handlers.text(whole);
        }
        return;
      case 0x8: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        const reason = payload.length > 2 ? payload.toString('utf8', 2) : '';
        if (!this.socket.destroyed) this.sendFrame(0x8, payload.subarray(0, 2));
        this.socket.end();
        this.end(code, reason);
        return;
      }
      case 0x9:
        this.sendFrame(0xa, Buffer.from(payload));
        return;
      case 0xa:
        return;
      default:
        this.protocolError(`unexpected opcode ${opcode}`);
    }
  }

  private protocolError(message: string): void {
    this.socket.destroy();
    this.end(1002, message);
  }

  private end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.handlers.closed(code, reason);
  }
}
