/**
 * A minimal client of the graphql-ws protocol (`graphql-transport-ws`) over `ws`: connection_init
 * / connection_ack, subscribe / next / error / complete, ping / pong. Written here rather than
 * using graphql-ws's client so that 1,000 sockets and 100,000 messages per second stay cheap for
 * the bench process (no per-message validation or retry machinery), and so that receipt times are
 * taken as soon as a message is decoded.
 */
import WebSocket from 'ws';
import type { GqlResult, GqlTransport } from './gql.js';

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

export class GqlSocket implements GqlTransport {
  readonly kind = 'ws';
  private nextId = 1;
  private readonly operations = new Map<string, Operation>();
  private closedError: Error | undefined;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('close', (code, reason) => this.fail(new Error(`socket closed: ${code} ${reason.toString()}`)));
    ws.on('error', (error) => this.fail(error));
  }

  /**
   * The fan-out's deliveries, 100,000 a second, are nearly all this client does: decoding each
   * whole (JSON.parse) was 90% of its CPU, which made it, not the server, the bound of W2 on a
   * small machine. Both servers frame a delivery as `{"id":"…","type":"next","payload":{"data":…`,
   * so the operation and the change's send time `"t":` are read off the frame; anything else
   * (errors, other messages, no `t`) is decoded in full.
   */
  private readSendTime(data: Buffer): boolean {
    const text = data.toString('latin1');
    if (!text.startsWith('{"id":"')) return false;
    const idEnd = text.indexOf('"', 7);
    if (idEnd < 0 || !text.startsWith('","type":"next","payload":{"data":', idEnd)) return false;
    const operation = this.operations.get(text.slice(7, idEnd));
    if (operation?.sendTime === undefined || text.includes('"errors"')) return false;
    const at = text.indexOf('"t":', idEnd);
    if (at < 0) return false;
    const t = Number.parseFloat(text.slice(at + 4, at + 40));
    if (!Number.isFinite(t)) return false;
    operation.sendTime(t);
    return true;
  }

  /** Opens a socket and completes the protocol handshake. */
  static open(url: string, token: string, timeoutMs = 15_000): Promise<GqlSocket> {
    return new Promise<GqlSocket>((resolve, reject) => {
      const ws = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no connection_ack from ${url} in ${timeoutMs} ms`));
      }, timeoutMs);
      const onEarlyClose = (code: number, reason: Buffer) => {
        clearTimeout(timer);
        reject(new Error(`socket closed during handshake: ${code} ${reason.toString()}`));
      };
      ws.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      ws.once('close', onEarlyClose);
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      const onAck = (data: Buffer) => {
        const message = JSON.parse(data.toString('utf8')) as ServerMessage;
        if (message.type !== 'connection_ack') return;
        clearTimeout(timer);
        ws.off('message', onAck);
        ws.off('close', onEarlyClose);
        ws.removeAllListeners('error');
        resolve(new GqlSocket(ws));
      };
      ws.on('message', onAck);
    });
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
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(`{"id":"${id}","type":"complete"}`);
    };
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2_000);
      this.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close(1000, 'bench done');
    });
  }

  get open(): boolean {
    return this.closedError === undefined;
  }

  private start(queryJson: string, variablesJson: string, operation: Operation): string {
    const id = String(this.nextId++);
    if (this.closedError !== undefined) {
      const error = this.closedError;
      queueMicrotask(() => operation.error(error));
      return id;
    }
    this.operations.set(id, operation);
    this.ws.send(`{"id":"${id}","type":"subscribe","payload":{"query":${queryJson},"variables":${variablesJson}}}`);
    return id;
  }

  private onMessage(data: Buffer): void {
    if (this.readSendTime(data)) return;
    const message = JSON.parse(data.toString('utf8')) as ServerMessage;
    switch (message.type) {
      case 'next': {
        const operation = this.operations.get(message.id ?? '');
        if (operation === undefined) return;
        if (operation.single) this.operations.delete(message.id ?? '');
        operation.next(message.payload as GqlResult);
        return;
      }
      case 'error': {
        const operation = this.operations.get(message.id ?? '');
        if (operation === undefined) return;
        this.operations.delete(message.id ?? '');
        operation.error(new Error(`GraphQL error: ${JSON.stringify(message.payload).slice(0, 500)}`));
        return;
      }
      case 'complete': {
        const operation = this.operations.get(message.id ?? '');
        this.operations.delete(message.id ?? '');
        operation?.complete?.();
        return;
      }
      case 'ping':
        this.ws.send('{"type":"pong"}');
        return;
      default:
        return;
    }
  }

  private fail(error: Error): void {
    if (this.closedError !== undefined) return;
    this.closedError = error;
    const operations = [...this.operations.values()];
    this.operations.clear();
    for (const operation of operations) operation.error(error);
  }
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
