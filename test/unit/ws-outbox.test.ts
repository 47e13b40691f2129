import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { Outboxes } from '../../src/server/ws-outbox.js';

/** A stand-in for a `ws` socket and its net.Socket: records each write with its time. */
function fakeSocket() {
  const writes: Array<{ at: number; data: Buffer }> = [];
  const drains: Array<() => void> = [];
  const stream = {
    writableLength: 0,
    write(data: Buffer, callback?: (error?: Error | null) => void) {
      writes.push({ at: performance.now(), data });
      callback?.();
      return true;
    },
    on(event: string, listener: () => void) {
      if (event === 'drain') drains.push(listener);
    },
    /** The kernel took everything: what a real socket signals with 'drain'. */
    drain() {
      stream.writableLength = 0;
      for (const listener of drains) listener();
    },
  };
  const socket = { readyState: 1, OPEN: 1, bufferedAmount: 0, _socket: stream };
  return { socket: socket as unknown as WebSocket, fake: socket, stream, writes };
}

/** The text messages in written bytes (unmasked frames, RFC 6455 §5.2). */
function messages(data: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < data.length) {
    expect(data[at]).toBe(0x81);
    let length = data[at + 1]!;
    let start = at + 2;
    if (length === 126) {
      length = data.readUInt16BE(at + 2);
      start = at + 4;
    }
    out.push(data.toString('utf8', start, start + length));
    at = start + length;
  }
  return out;
}

const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
};

const parts = (text: string): [Buffer, Buffer, Buffer] => [Buffer.from('<'), Buffer.from(text), Buffer.from('>')];

describe('Outboxes (server/ws-outbox.ts)', () => {
  it('writes each socket once per pass, what it holds when its turn comes, and later deliveries in a later pass', async () => {
    const batchMs = 30;
    const outboxes = new Outboxes(batchMs);
    // More sockets than one turn of a pass writes, so the pass spans several turns.
    const sockets = Array.from({ length: 300 }, fakeSocket);
    const boxes = sockets.map((s) => outboxes.outboxOf(s.socket)!);
    for (const box of boxes) expect(outboxes.deliver(box, ...parts('a'), 1 << 20)).toBe(true);
    // A lone delivery goes out at once, not after the interval.
    await until(() => sockets[0]!.writes.length === 1);
    const passStart = sockets[0]!.writes[0]!.at;
    // While the first pass is under way, every socket gets a second message.
    for (const box of boxes) outboxes.deliver(box, ...parts('b'), 1 << 20);
    await until(() => sockets.every((s) => s.writes.flatMap((w) => messages(w.data)).length === 2));
    let firstPassWrites = 0;
    for (const s of sockets) {
      const all = s.writes.flatMap((w) => messages(w.data));
      expect(all).toEqual(['<a>', '<b>']);
      // Written once if its turn came after 'b' was queued, twice otherwise; never more.
      expect(s.writes.length).toBeLessThanOrEqual(2);
      if (s.writes.length === 2) {
        // The second write belongs to the next pass, which starts an interval after the first.
        // (Less 2 ms: timers run on the event loop's clock, read once per turn, in whole ms.)
        expect(s.writes[1]!.at - passStart).toBeGreaterThanOrEqual(batchMs - 2);
      }
      if (s.writes[0]!.at - passStart < batchMs - 2) firstPassWrites++;
    }
    expect(firstPassWrites).toBe(sockets.length);
  });

  it('refuses deliveries to a socket the server closes, and drops what is queued for one that is closing', async () => {
    const outboxes = new Outboxes(5);
    const closed = fakeSocket();
    const closing = fakeSocket();
    const closedBox = outboxes.outboxOf(closed.socket)!;
    const closingBox = outboxes.outboxOf(closing.socket)!;
    expect(outboxes.deliver(closedBox, ...parts('last'), 1000)).toBe(true);
    outboxes.close(closed.socket); // what was queued goes out first
    expect(outboxes.deliver(closedBox, ...parts('x'), 1000)).toBe(false);
    expect(closed.writes.flatMap((w) => messages(w.data))).toEqual(['<last>']);
    // Closed by the other side: found at the write, and nothing more is taken.
    expect(outboxes.deliver(closingBox, ...parts('y'), 1000)).toBe(true);
    closing.fake.readyState = 2;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(closing.writes).toEqual([]);
    expect(outboxes.deliver(closingBox, ...parts('z'), 1000)).toBe(false);
  });

  it('refuses deliveries while the socket holds too much unwritten, until it drains', async () => {
    const outboxes = new Outboxes(5);
    const full = fakeSocket();
    const box = outboxes.outboxOf(full.socket)!;
    // The kernel takes nothing more: what was written stays in the stream.
    full.stream.writableLength = 1000;
    // Accepted: nothing was written yet, so nothing is known to be unwritten.
    expect(outboxes.deliver(box, ...parts('a'), 1000)).toBe(true);
    await until(() => full.writes.length === 1);
    // Taken at that write: 1000 bytes unwritten, the bound.
    expect(outboxes.deliver(box, ...parts('b'), 1000)).toBe(false);
    full.stream.drain();
    expect(outboxes.deliver(box, ...parts('c'), 1000)).toBe(true);
    await until(() => full.writes.length === 2);
    expect(full.writes.flatMap((w) => messages(w.data))).toEqual(['<a>', '<c>']);
  });

  it('writes an outbox flushed or forgotten while listed for a pass once, or not at all, and reuses nothing it wrote', async () => {
    const outboxes = new Outboxes(5);
    const [a, b, c] = [fakeSocket(), fakeSocket(), fakeSocket()];
    const [boxA, boxB, boxC] = [a, b, c].map((s) => outboxes.outboxOf(s.socket)!);
    expect(outboxes.deliver(boxA!, ...parts('a1'), 1 << 20)).toBe(true);
    expect(outboxes.deliver(boxB!, ...parts('b1'), 1 << 20)).toBe(true);
    expect(outboxes.deliver(boxC!, ...parts('c1'), 1 << 20)).toBe(true);
    outboxes.flush(a.socket); // written now; still listed for the pass, which finds it empty
    outboxes.forget(b.socket); // closed: its pass must not write it
    b.fake.readyState = 3;
    await until(() => c.writes.length === 1);
    expect(a.writes.map((w) => messages(w.data))).toEqual([['<a1>']]);
    expect(b.writes).toEqual([]);
    expect(messages(c.writes[0]!.data)).toEqual(['<c1>']);
    // A backlog of many messages goes out whole, in order, and the next pass starts afresh:
    // what was written is not written again (the parts array is reused).
    const many = Array.from({ length: 400 }, (_, i) => `m${i}`);
    for (const text of many) expect(outboxes.deliver(boxA!, ...parts(text), 1 << 20)).toBe(true);
    await until(() => a.writes.length === 2);
    expect(messages(a.writes[1]!.data)).toEqual(many.map((m) => `<${m}>`));
    expect(outboxes.deliver(boxA!, ...parts('last'), 1 << 20)).toBe(true);
    await until(() => a.writes.length === 3);
    expect(messages(a.writes[2]!.data)).toEqual(['<last>']);
  });

  it("writes a reply at the end of the turn, its socket's alone: it neither waits for a pass nor starts one", async () => {
    const outboxes = new Outboxes(60_000);
    const [a, b] = [fakeSocket(), fakeSocket()];
    const [boxA, boxB] = [outboxes.outboxOf(a.socket)!, outboxes.outboxOf(b.socket)!];
    // A first delivery goes out at once; the next pass is then a whole interval away.
    outboxes.deliver(boxA, ...parts('1'), 1 << 20);
    await until(() => a.writes.length === 1);
    outboxes.deliver(boxA, ...parts('2'), 1 << 20);
    outboxes.deliver(boxB, ...parts('x'), 1 << 20);
    // Two replies in one turn: one write, after what the socket already held.
    outboxes.send(b.socket, 'reply 1', true);
    outboxes.send(b.socket, 'reply 2', true);
    expect(b.writes).toEqual([]);
    await until(() => b.writes.length === 1);
    expect(messages(b.writes[0]!.data)).toEqual(['<x>', 'reply 1', 'reply 2']);
    // Another turn or two: a's delivery still waits for its pass.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(a.writes.length).toBe(1);
  });

  it('keeps replies and deliveries of one socket in the order they were queued', async () => {
    const outboxes = new Outboxes(20);
    const s = fakeSocket();
    const box = outboxes.outboxOf(s.socket)!;
    outboxes.deliver(box, ...parts('1'), 1 << 20);
    outboxes.send(s.socket, 'reply', true);
    outboxes.deliver(box, ...parts('2'), 1 << 20);
    await until(() => s.writes.flatMap((w) => messages(w.data)).length === 3);
    expect(s.writes.flatMap((w) => messages(w.data))).toEqual(['<1>', 'reply', '<2>']);
  });
});
