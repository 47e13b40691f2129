/**
 * Outgoing WebSocket text messages, framed by us and written in batches.
 *
 * Fanning a change out to a thousand sockets is dominated by per-message overhead, not by
 * producing the message: `ws` frames each message with two stream writes, Node's Writable
 * machinery handles each, and each socket write is a syscall that, on loopback, also runs the
 * receiver's TCP processing (about 10 µs here). So messages are framed here (RFC 6455 §5.2:
 * unmasked, unfragmented, uncompressed text frames, which is what a server without
 * permessage-deflate sends) and appended to the socket's outbox; a flush pass writes each
 * outbox in one write, a chunk of sockets per turn of the event loop, so that requests and
 * storage completions interleave with a long fanout.
 *
 * Passes for live deliveries start at most every `batchMs`: a lone change goes out at once, a
 * stream of them goes out in batches, so a socket costs one write per interval however fast its
 * bucket changes, and the cost per delivery falls as the load rises instead of building a
 * backlog. Replies (`urgent`) are flushed by a pass at the end of the turn.
 *
 * Only whole messages are written, so the control frames `ws` writes itself (ping, pong, close)
 * can only fall between them, as the protocol allows.
 */
import type { WebSocket } from 'ws';

/** `WebSocket.OPEN`. */
const OPEN = 1;
/** Sockets written per turn of a flush pass. */
const PASS_CHUNK = 64;
/** Bytes in one outbox that make it flush at once: waiting longer gains nothing. */
const FLUSH_BYTES = 64 * 1024;

interface Writable {
  write(data: Buffer, callback?: (error?: Error | null) => void): boolean;
  writableLength: number;
  on?(event: 'drain', listener: () => void): unknown;
}

export interface Outbox {
  socket: WebSocket;
  stream: Writable;
  chunks: Buffer[];
  bytes: number;
  /** False once the socket is closing: deliveries are refused. */
  open: boolean;
  /** What the socket's stream held unwritten after the last write (0 once it drained). */
  unwritten: number;
}

export class Outboxes {
  private readonly outboxes = new Map<WebSocket, Outbox>();
  /** Outboxes with something to write, in the order they filled. */
  private queued = new Set<Outbox>();
  /** The outboxes the pass under way has yet to write. */
  private passing = new Set<Outbox>();
  private pass: 'none' | 'soon' | 'later' | 'running' = 'none';
  /** A reply was queued while a pass ran: the next pass starts at once. */
  private urgentWaiting = false;
  private timer: NodeJS.Timeout | undefined;
  private lastPassStart = -Infinity;

  constructor(private readonly batchMs: number) {}

  /** Bytes the socket holds unwritten: in its outbox, and in its stream. */
  pending(socket: WebSocket): number {
    const outbox = this.outboxes.get(socket);
    return socket.bufferedAmount + (outbox?.bytes ?? 0);
  }

  /**
   * Queues a text message, given as a string or as the UTF-8 buffers that make it up (shared
   * parts are then neither encoded nor copied per socket until the write). With `done`, writes
   * it at once (after what is queued) and calls `done` once the socket has taken it: the caller
   * waits for a backed-up socket.
   */
  send(socket: WebSocket, message: string | readonly Buffer[], urgent: boolean, done?: (error?: Error | null) => void): void {
    if (socket.readyState !== socket.OPEN) return done?.();
    const outbox = this.outboxOf(socket);
    if (outbox === undefined) {
      // Not a socket of `ws`'s usual shape: no batching, but still correct.
      socket.send(typeof message === 'string' ? message : Buffer.concat(message), done);
      return;
    }
    const parts = typeof message === 'string' ? [Buffer.from(message)] : message;
    let length = 0;
    for (const part of parts) length += part.length;
    const header = frameHeader(length);
    outbox.chunks.push(header, ...parts);
    outbox.bytes += header.length + length;
    if (done !== undefined) this.write(outbox, done);
    else this.enqueue(outbox, urgent);
  }

  /**
   * The live-delivery path, for a subscriber's socket looked up once (`outboxOf`): queues a text
   * message made of three parts (a subscription's prefix, a shared payload, a suffix) if the
   * socket holds less than `max` bytes unwritten, and says whether it did. Equivalent to
   * `pending` then `send`, without the lookups and the array, since it runs once per subscriber
   * and change.
   */
  deliver(outbox: Outbox, head: Buffer, body: Buffer, tail: Buffer, max: number): boolean {
    // Only the outbox is looked at: with a thousand sockets, reading each one's state per change
    // (the socket objects are large, and cold) cost more than the rest of a delivery. Whether the
    // socket is still open is checked when it is written (`write`), and what its stream holds is
    // taken then (and reset when it drains).
    if (!outbox.open || outbox.unwritten + outbox.bytes >= max) return false;
    const length = head.length + body.length + tail.length;
    const header = frameHeader(length);
    outbox.chunks.push(header, head, body, tail);
    outbox.bytes += header.length + length;
    this.enqueue(outbox, false);
    return true;
  }

  /** An outbox that grew: written at once if it holds enough, else left for a pass. */
  private enqueue(outbox: Outbox, urgent: boolean): void {
    if (outbox.bytes >= FLUSH_BYTES) {
      this.write(outbox);
      return;
    }
    this.queued.add(outbox);
    this.schedule(urgent);
  }

  /** Writes what the socket has queued now (before closing it, say). */
  flush(socket: WebSocket): void {
    const outbox = this.outboxes.get(socket);
    // `write` finds a socket that is no longer open itself.
    if (outbox !== undefined) this.write(outbox);
  }

  /** Writes what the socket has queued, and takes no more for it: the server is closing it. */
  close(socket: WebSocket): void {
    this.flush(socket);
    const outbox = this.outboxes.get(socket);
    if (outbox !== undefined) outbox.open = false;
  }

  /** Forgets a closed socket. */
  forget(socket: WebSocket): void {
    const outbox = this.outboxes.get(socket);
    if (outbox === undefined) return;
    outbox.open = false;
    this.queued.delete(outbox);
    this.passing.delete(outbox);
    this.outboxes.delete(socket);
  }

  /** The socket's outbox, or undefined for a socket not of `ws`'s usual shape. */
  outboxOf(socket: WebSocket): Outbox | undefined {
    let outbox = this.outboxes.get(socket);
    if (outbox === undefined) {
      // `ws` keeps its net.Socket in `_socket`.
      const stream = (socket as unknown as { _socket?: Writable })._socket;
      if (stream === undefined) return undefined;
      const created: Outbox = { socket, stream, chunks: [], bytes: 0, open: true, unwritten: 0 };
      stream.on?.('drain', () => (created.unwritten = 0));
      outbox = created;
      this.outboxes.set(socket, outbox);
    }
    return outbox;
  }

  private write(outbox: Outbox, done?: (error?: Error | null) => void): void {
    this.queued.delete(outbox);
    this.passing.delete(outbox);
    const { chunks, bytes } = outbox;
    if (chunks.length === 0) return done?.();
    outbox.chunks = [];
    outbox.bytes = 0;
    // Closing (by either side): what is left goes nowhere.
    if (outbox.socket.readyState !== OPEN) {
      outbox.open = false;
      return done?.();
    }
    outbox.stream.write(Buffer.concat(chunks, bytes), done);
    outbox.unwritten = outbox.stream.writableLength;
  }

  private schedule(urgent: boolean): void {
    if (this.pass === 'running') {
      this.urgentWaiting ||= urgent;
      return;
    }
    if (this.pass === 'soon' || (this.pass === 'later' && !urgent)) return;
    if (this.pass === 'later') clearTimeout(this.timer);
    const wait = urgent ? 0 : this.lastPassStart + this.batchMs - performance.now();
    if (wait <= 0) {
      this.pass = 'soon';
      setImmediate(this.startPass);
    } else {
      this.pass = 'later';
      this.timer = setTimeout(this.startPass, wait);
    }
  }

  private readonly startPass = (): void => {
    this.timer = undefined;
    this.lastPassStart = performance.now();
    // A pass writes the outboxes queued when it starts. One that fills again while the pass is
    // under way waits for the next pass: otherwise, under a steady stream of changes, a pass
    // spread over many turns keeps meeting sockets again and never ends, and each change costs
    // every socket a write of its own, the very cost the interval is there to share.
    this.pass = 'running';
    this.passing = this.queued;
    this.queued = new Set();
    this.continuePass();
  };

  private readonly continuePass = (): void => {
    let n = 0;
    for (const outbox of this.passing) {
      this.passing.delete(outbox);
      this.write(outbox);
      if (++n === PASS_CHUNK) break;
    }
    if (this.passing.size > 0) {
      setImmediate(this.continuePass);
      return;
    }
    this.pass = 'none';
    const urgent = this.urgentWaiting;
    this.urgentWaiting = false;
    if (this.queued.size > 0) this.schedule(urgent);
  };
}

/** Headers by length: a fanout frames messages of a few lengths many times over. */
const headers = new Map<number, Buffer>();
let lastLength = -1;
let lastHeader: Buffer | undefined;

/** The header of a final, unmasked text frame of `length` bytes (RFC 6455 §5.2). */
function frameHeader(length: number): Buffer {
  // Subscribers of one change ask one after the other, mostly for the same length.
  if (length === lastLength) return lastHeader!;
  let header = headers.get(length);
  if (header === undefined) {
    if (headers.size >= 4096) headers.clear();
    headers.set(length, (header = encodeFrameHeader(length)));
  }
  lastLength = length;
  lastHeader = header;
  return header;
}

function encodeFrameHeader(length: number): Buffer {
  if (length < 126) return Buffer.from([0x81, length]);
  if (length < 65536) {
    const header = Buffer.allocUnsafe(4);
    header[0] = 0x81;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
    return header;
  }
  const header = Buffer.allocUnsafe(10);
  header[0] = 0x81;
  header[1] = 127;
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  header.writeUInt32BE(length >>> 0, 6);
  return header;
}
