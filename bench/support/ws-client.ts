/**
 * A minimal client of the graphql-ws protocol (`graphql-transport-ws`) on a lean WebSocket client
 * (ws-wire.ts): connection_init / connection_ack, subscribe / next / error / complete, ping /
 * pong. Written here rather than
 * using graphql-ws's client so that 1,000 sockets and 100,000 messages per second stay cheap for
 * the bench process (no per-message validation or retry machinery), and so that receipt times are
 * taken as soon as a message is decoded.
 */
import type { GqlResult, GqlTransport } from './gql.js';
import { WireSocket } from './ws-wire.js';

export interface SubscriptionHandlers {
  next(payload: GqlResult): void;
  /**
   * Given, a delivery whose data carries a numeric `t` (and no errors) comes here with that `t`
   * instead of to `next`, read from the frame without decoding the rest of it.
   */
  sendTime?(t: number): void;
  error(error: Error): void;
  complete?(): void;
}

interface Operation extends SubscriptionHandlers {
  /** Single-result operations complete after their first `next`. */
  single: boolean;
}

interface ServerMessage {
  type: string;
  id?: string;
  payload?: unknown;
}

const NEXT_HEAD = Buffer.from('{"id":"');
const ID_START = NEXT_HEAD.length;
const QUOTE = 0x22;
const NEXT_TYPE = Buffer.from('","type":"next","payload":{"data":');
const ERRORS = Buffer.from('"errors"');
const SEND_TIME = Buffer.from('"t":');

export class GqlSocket implements GqlTransport {
  readonly kind = 'ws';
  private nextId = 1;
  private readonly operations = new Map<number, Operation>();
  private closedError: Error | undefined;
  private readonly closeWaiters: Array<() => void> = [];

  private ws!: WireSocket;
  /** Messages before the handshake's end go here (the ack). */
  private early: ((message: ServerMessage) => void) | undefined;

  private constructor() {}

  /**
   * The fan-out's deliveries, 100,000 a second, are nearly all this client does: decoding each
   * whole (JSON.parse) was 90% of its CPU, which made it, not the server, the bound of W2 on a
   * small machine. Both servers frame a delivery as `{"id":"…","type":"next","payload":{"data":…`,
   * so the operation and the change's send time `"t":` are read off the frame; anything else
   * (errors, other messages, no `t`) is decoded in full.
   */
  private readSendTime(data: Buffer): boolean {
    // Scanned byte by byte in JavaScript, not with Buffer's compare/indexOf/toString: each of
    // those is a call into C++ with argument checks, several per delivery, and a delivery is a
    // few hundred bytes read 100,000 times a second. The frame's head is ASCII.
    const n = data.length;
    if (n < ID_START + NEXT_TYPE.length + 1) return false;
    for (let i = 0; i < ID_START; i++) if (data[i] !== NEXT_HEAD[i]) return false;
    // Operation ids are the decimal numbers `start` gives.
    let at = ID_START;
    let id = 0;
    for (; at < n && data[at] !== QUOTE; at++) {
      const digit = data[at]! - 0x30;
      if (digit < 0 || digit > 9 || at - ID_START > 12) return false;
      id = id * 10 + digit;
    }
    if (at === ID_START || at + NEXT_TYPE.length > n) return false;
    for (let i = 0; i < NEXT_TYPE.length; i++) if (data[at + i] !== NEXT_TYPE[i]) return false;
    const operation = this.operations.get(id);
    if (operation?.sendTime === undefined) return false;
    at = find(data, SEND_TIME, at + NEXT_TYPE.length);
    // Errors, if any, follow the data they belong to (graphql-js and graphql-jit put them first,
    // which the check of the head above already sends to the full decode).
    if (at < 0 || find(data, ERRORS, at) >= 0) return false;
    const t = readNumber(data, at + SEND_TIME.length);
    if (!Number.isFinite(t)) return false;
    operation.sendTime(t);
    return true;
  }

  /** Opens a socket and completes the protocol handshake. */
  static async open(url: string, token: string, timeoutMs = 15_000): Promise<GqlSocket> {
    const client = new GqlSocket();
    let closedEarly: ((error: Error) => void) | undefined;
    client.ws = await WireSocket.open(
      url,
      'graphql-transport-ws',
      {
        text: (data) => client.onMessage(data),
        closed: (code, reason) => {
          const error = new Error(`socket closed: ${code} ${reason}`);
          closedEarly?.(error);
          client.fail(error);
        },
      },
      timeoutMs,
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.ws.terminate();
        reject(new Error(`no connection_ack from ${url} in ${timeoutMs} ms`));
      }, timeoutMs);
      closedEarly = (error) => {
        clearTimeout(timer);
        reject(new Error(`socket closed during handshake: ${error.message}`));
      };
      client.early = (message) => {
        if (message.type !== 'connection_ack') return;
        clearTimeout(timer);
        client.early = undefined;
        closedEarly = undefined;
        resolve();
      };
      client.ws.sendText(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    });
    return client;
  }

  /** One query or mutation over the socket; resolves with its single result. */
  execute(queryJson: string, variablesJson: string): Promise<GqlResult> {
    return new Promise<GqlResult>((resolve, reject) => {
      let result: GqlResult | undefined;
      this.start(queryJson, variablesJson, {
        single: true,
        next: (payload) => {
          result = payload;
          resolve(payload);
        },
        error: reject,
        complete: () => {
          if (result === undefined) reject(new Error('operation completed without a result'));
        },
      });
    });
  }

  /** Starts a subscription; returns a function that ends it. */
  subscribe(queryJson: string, variablesJson: string, handlers: SubscriptionHandlers): () => void {
    const id = this.start(queryJson, variablesJson, { ...handlers, single: false });
    return () => {
      if (!this.operations.delete(id)) return;
      if (this.ws.open) this.ws.sendText(`{"id":"${id}","type":"complete"}`);
    };
  }

  close(): Promise<void> {
    if (!this.ws.open) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2_000);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close(1000, 'bench done');
    });
  }

  get open(): boolean {
    return this.closedError === undefined;
  }

  private start(queryJson: string, variablesJson: string, operation: Operation): number {
    const id = this.nextId++;
    if (this.closedError !== undefined) {
      const error = this.closedError;
      queueMicrotask(() => operation.error(error));
      return id;
    }
    this.operations.set(id, operation);
    this.ws.sendText(`{"id":"${id}","type":"subscribe","payload":{"query":${queryJson},"variables":${variablesJson}}}`);
    return id;
  }

  private onMessage(data: Buffer): void {
    if (this.early === undefined && this.readSendTime(data)) return;
    const message = JSON.parse(data.toString('utf8')) as ServerMessage;
    if (this.early !== undefined) return this.early(message);
    switch (message.type) {
      case 'next': {
        const id = Number(message.id);
        const operation = this.operations.get(id);
        if (operation === undefined) return;
        if (operation.single) this.operations.delete(id);
        operation.next(message.payload as GqlResult);
        return;
      }
      case 'error': {
        const id = Number(message.id);
        const operation = this.operations.get(id);
        if (operation === undefined) return;
        this.operations.delete(id);
        operation.error(new Error(`GraphQL error: ${JSON.stringify(message.payload).slice(0, 500)}`));
        return;
      }
      case 'complete': {
        const id = Number(message.id);
        const operation = this.operations.get(id);
        this.operations.delete(id);
        operation?.complete?.();
        return;
      }
      case 'ping':
        this.ws.sendText('{"type":"pong"}');
        return;
      default:
        return;
    }
  }

  private fail(error: Error): void {
    for (const waiter of this.closeWaiters.splice(0)) waiter();
    if (this.closedError !== undefined) return;
    this.closedError = error;
    const operations = [...this.operations.values()];
    this.operations.clear();
    for (const operation of operations) operation.error(error);
  }
}

/** Where `needle` starts in `data` at or after `from`, or -1. */
function find(data: Buffer, needle: Buffer, from: number): number {
  const first = needle[0];
  const last = data.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    if (data[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) if (data[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * The JSON number at `at` (what JSON.stringify makes of performance.now(): digits, a point,
 * digits), or NaN. Read digit by digit: exact to well below a microsecond, which is all a latency
 * needs; anything else (an exponent, say) goes through parseFloat.
 */
function readNumber(data: Buffer, at: number): number {
  let i = at;
  const negative = data[i] === 0x2d;
  if (negative) i++;
  let whole = 0;
  let digits = 0;
  for (; i < data.length; i++, digits++) {
    const digit = data[i]! - 0x30;
    if (digit < 0 || digit > 9) break;
    whole = whole * 10 + digit;
  }
  if (digits === 0 || digits > 15) return Number.NaN;
  let fraction = 0;
  let scale = 1;
  if (data[i] === 0x2e) {
    for (i++; i < data.length && scale < 1e15; i++) {
      const digit = data[i]! - 0x30;
      if (digit < 0 || digit > 9) break;
      fraction = fraction * 10 + digit;
      scale *= 10;
    }
  }
  const next = data[i];
  if (next === 0x65 || next === 0x45 || (next !== undefined && next >= 0x30 && next <= 0x39)) {
    return Number.parseFloat(data.toString('latin1', at, Math.min(data.length, at + 40)));
  }
  const value = whole + fraction / scale;
  return negative ? -value : value;
}

/** Opens `count` sockets, `parallel` handshakes at a time. */
export async function openSockets(url: string, token: string, count: number, parallel = 50): Promise<GqlSocket[]> {
  const sockets: GqlSocket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      sockets.push(await GqlSocket.open(url, token));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  } catch (error) {
    await closeSockets(sockets);
    throw error;
  }
  return sockets;
}

export async function closeSockets(sockets: readonly GqlSocket[]): Promise<void> {
  await Promise.all(sockets.map((socket) => socket.close()));
}
