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
 * backlog. Replies (`urgent`) are written at the end of the turn, each socket's on its own (with
 * whatever it has queued before them): a reply neither waits for a pass over every socket nor
 * starts one.
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
  /**
   * The parts of the messages queued, `parts[0..count)`. The array is kept and reused: a new
   * one per socket and pass was most of what the fan-out left for the garbage collector to
   * promote (it lives from one pass to the next, across a scavenge), and those promotions
   * brought on mark-compacts of 15-20 ms.
   */
  parts: Buffer[];
  count: number;
  bytes: number;
  /** False once the socket is closing: deliveries are refused. */
  open: boolean;
  /** Listed for the next pass (Outboxes `queue`). */
  queued: boolean;
  /** Listed to be written at the end of the turn (Outboxes `replies`). */
  replying: boolean;
  /** What the socket's stream held unwritten after the last write (0 once it drained). */
  unwritten: number;
}

export class Outboxes {
  private readonly outboxes = new Map<WebSocket, Outbox>();
  /**
   * Outboxes queued for the next pass, in the order they filled: `queue[0..queued)`, each with
   * its `queued` flag set. Two arrays kept and swapped, not a Set made per pass: the fan-out
   * should leave the garbage collector as little as it can to promote (see `Outbox.parts`).
   * An outbox written meanwhile (a flush) stays listed, and the pass finds it empty.
   */
  private queue: Array<Outbox | undefined> = [];
  private queued = 0;
  /** The outboxes of the pass under way: `passList[passAt..passEnd)` are yet to be written. */
  private passList: Array<Outbox | undefined> = [];
  private passAt = 0;
  private passEnd = 0;
  /** Whether a pass is due (`scheduled`) or under way: either way, a new delivery joins it or the next. */
  private pass: 'none' | 'scheduled' | 'running' = 'none';
  /** Outboxes holding a reply, written at the end of the turn (`writeReplies`). */
  private replies: Outbox[] = [];
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
    append(outbox, header);
    for (const part of parts) append(outbox, part);
    outbox.bytes += header.length + length;
    if (done !== undefined) this.write(outbox, done);
    else if (urgent) this.reply(outbox);
    else this.enqueue(outbox);
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
    append(outbox, header);
    append(outbox, head);
    append(outbox, body);
    append(outbox, tail);
    outbox.bytes += header.length + length;
    this.enqueue(outbox);
    return true;
  }

  /** An outbox that grew: written at once if it holds enough, else left for a pass. */
  private enqueue(outbox: Outbox): void {
    if (this.flushedWhenFull(outbox)) return;
    if (!outbox.queued) {
      outbox.queued = true;
      this.queue[this.queued++] = outbox;
    }
    this.schedule();
  }

  /** An outbox that holds a reply: written at the end of the turn (several replies of one turn, in one write). */
  private reply(outbox: Outbox): void {
    if (this.flushedWhenFull(outbox) || outbox.replying) return;
    outbox.replying = true;
    if (this.replies.push(outbox) === 1) setImmediate(this.writeReplies);
  }

  /** Writes an outbox at once if it holds enough that waiting gains nothing; says whether it did. */
  private flushedWhenFull(outbox: Outbox): boolean {
    if (outbox.bytes < FLUSH_BYTES) return false;
    this.write(outbox);
    return true;
  }

  private readonly writeReplies = (): void => {
    const replies = this.replies;
    this.replies = [];
    for (const outbox of replies) {
      outbox.replying = false;
      // If also listed for a pass, the pass finds it empty (or holding only what came later).
      this.write(outbox);
    }
  };

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
    // A pass that still lists it finds it closed.
    outbox.open = false;
    this.outboxes.delete(socket);
  }

  /** The socket's outbox, or undefined for a socket not of `ws`'s usual shape. */
  outboxOf(socket: WebSocket): Outbox | undefined {
    let outbox = this.outboxes.get(socket);
    if (outbox === undefined) {
      // `ws` keeps its net.Socket in `_socket`.
      const stream = (socket as unknown as { _socket?: Writable })._socket;
      if (stream === undefined) return undefined;
      const created: Outbox = { socket, stream, parts: [], count: 0, bytes: 0, open: true, queued: false, replying: false, unwritten: 0 };
      stream.on?.('drain', () => (created.unwritten = 0));
      outbox = created;
      this.outboxes.set(socket, outbox);
    }
    return outbox;
  }

  private write(outbox: Outbox, done?: (error?: Error | null) => void): void {
    const { parts, count, bytes } = outbox;
    if (count === 0) return done?.();
    // One buffer for the write, and the parts let go of (a shared payload stays alive as long
    // as any outbox still points at it).
    const data = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const part = parts[i]!;
      at += part.copy(data, at);
      parts[i] = EMPTY;
    }
    outbox.count = 0;
    outbox.bytes = 0;
    // A backlog once is no reason to keep a large array for good.
    if (parts.length > 256) outbox.parts = [];
    // Closing (by either side): what is left goes nowhere.
    if (outbox.socket.readyState !== OPEN) {
      outbox.open = false;
      return done?.();
    }
    outbox.stream.write(data, done);
    outbox.unwritten = outbox.stream.writableLength;
  }

  private schedule(): void {
    if (this.pass !== 'none') return;
    this.pass = 'scheduled';
    const wait = this.lastPassStart + this.batchMs - performance.now();
    if (wait <= 0) setImmediate(this.startPass);
    else setTimeout(this.startPass, wait);
  }

  private readonly startPass = (): void => {
    this.lastPassStart = performance.now();
    // A pass writes the outboxes queued when it starts. One that fills again while the pass is
    // under way waits for the next pass: otherwise, under a steady stream of changes, a pass
    // spread over many turns keeps meeting sockets again and never ends, and each change costs
    // every socket a write of its own, the very cost the interval is there to share.
    this.pass = 'running';
    const list = this.passList;
    this.passList = this.queue;
    this.passAt = 0;
    this.passEnd = this.queued;
    this.queue = list;
    this.queued = 0;
    this.continuePass();
  };

  private readonly continuePass = (): void => {
    const list = this.passList;
    const end = Math.min(this.passEnd, this.passAt + PASS_CHUNK);
    for (let i = this.passAt; i < end; i++) {
      const outbox = list[i]!;
      list[i] = undefined;
      // Filled again from here on, it goes to the next pass.
      outbox.queued = false;
      this.write(outbox);
    }
    this.passAt = end;
    if (end < this.passEnd) {
      setImmediate(this.continuePass);
      return;
    }
    this.pass = 'none';
    if (this.queued > 0) this.schedule();
  };
}

const EMPTY = Buffer.alloc(0);

/** Adds a part to the outbox's message queue, growing its array only when it is full. */
function append(outbox: Outbox, part: Buffer): void {
  if (outbox.count < outbox.parts.length) outbox.parts[outbox.count] = part;
  else outbox.parts.push(part);
  outbox.count++;
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
