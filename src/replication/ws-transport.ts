/**
 * The peer transport over WebSocket: the real links between the nodes of a cluster, behind
 * `PeerTransport` (transport.ts) so that the replication code runs unchanged over the simulated
 * network of test/sim.
 *
 * The protocol, on path `/cluster`, in JSON text frames (a binary frame is a protocol error):
 *
 * 1. Handshake: mutual, by challenge and response over the cluster key, which never travels.
 *    - server → client, as soon as the socket opens: `{t:'challenge', nonce, nodeId}`;
 *    - client → server: `{t:'hello', nodeId, nonce, mac}`,
 *      mac = HMAC-SHA256(key, `client|${serverNonce}|${clientNodeId}`), hex;
 *    - server → client: `{t:'welcome', mac}`,
 *      mac = HMAC-SHA256(key, `server|${clientNonce}|${serverNodeId}`), hex.
 *    Fresh nonces on both sides keep a proof from being replayed, and the `client|`/`server|`
 *    prefixes keep one from being reflected back in the other role. Each side compares proofs in
 *    constant time. A wrong proof closes with 4401, any other frame before the handshake is done
 *    with 4400, no handshake within `authTimeoutMs` with 4408.
 * 2. Requests, both ways and multiplexed on one link: `{t:'req', id, body}` (body a PeerRequest)
 *    answered by `{t:'res', id, body}` (body a PeerResponse). Ids are chosen by the caller and only
 *    name its own calls on that link. A body that is not a request is answered with a BAD_REQUEST
 *    error; a frame that is not JSON of this protocol closes the link with 4400.
 *
 * Each node dials the addresses it knows and accepts links from the others, so a pair of nodes
 * usually holds two links; a call takes whichever is open.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ErrorCode, SyncError } from '../model/errors.js';
import { isPeerRequest, type PeerRequest, type PeerResponse } from './protocol.js';
import { realTimers, type PeerTransport } from './transport.js';

export interface WsPeerTransportOptions {
  /** This node's id: proven in the handshake, and how a dial of our own address is recognised. */
  nodeId: string;
  /** The shared secret of the cluster; only HMAC proofs of it go on the wire. */
  clusterKey: string;
  /** Addresses (`host:port`) to dial, from configuration. May include this node's own. */
  peers: string[];
  /** When set, peers are dialed over `wss://` with these options. @default plain `ws://` */
  tls?: { rejectUnauthorized?: boolean; ca?: string | Buffer };
  /** Largest frame accepted, and largest request or answer sent, in bytes. */
  maxPayload: number;
  logger: TransportLogger;
  /** Called each time a link authenticates: `address` is the dialed one, null for inbound links. */
  onPeer?: (nodeId: string, address: string | null) => void;
  /** First wait before re-dialing an address, doubled on each failure up to 5000. @default 500 */
  reconnectMs?: number;
  /** How long a socket may stay unauthenticated before it is closed (4408). @default 5000 */
  authTimeoutMs?: number;
}

export interface TransportLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** How a link ends, as the close code the peer sees. */
export const PeerCloseCode = {
  /** Our own end of a link: node shutting down. */
  GOING_AWAY: 1001,
  /** A frame that is not JSON of this protocol, or a frame out of turn. */
  BAD_MESSAGE: 4400,
  /** A handshake proof that does not match: the peer has another cluster key. */
  WRONG_KEY: 4401,
  /** No complete handshake within the auth timeout. */
  AUTH_TIMEOUT: 4408,
  /** A peer presenting our own node id from another process: two nodes configured with one id. */
  DUPLICATE_NODE_ID: 4409,
} as const;

const RECONNECT_MS_MAX = 5000;
/** Sockets that have not finished the handshake, at once: a bound on what strangers can hold. */
const HANDSHAKES_MAX = 256;
/** Requests of one link being handled at once; more are answered LIMIT_EXCEEDED. */
const SERVED_PER_LINK_MAX = 1024;
/** On close(), how long a peer gets to answer our close frame before the socket is cut. */
const CLOSE_GRACE_MS = 1000;
const NODE_ID_LENGTH_MAX = 256;
const NONCE_BYTES = 32;
const NONCE = /^[A-Za-z0-9_-]{16,128}$/;
const MAC = /^[0-9a-f]{64}$/;

type Frame =
  | { t: 'challenge'; nonce: string; nodeId: string }
  | { t: 'hello'; nodeId: string; nonce: string; mac: string }
  | { t: 'welcome'; mac: string }
  | { t: 'req'; id: number; body: unknown }
  | { t: 'res'; id: number; body: PeerResponse };

interface PendingCall {
  resolve(response: PeerResponse): void;
  reject(error: Error): void;
  timer: unknown;
}

/** An authenticated link, inbound or outbound. */
interface Link {
  socket: WebSocket;
  nodeId: string;
  /** The dialed address; null for an inbound link. */
  address: string | null;
  pending: Map<number, PendingCall>;
  nextId: number;
  serving: number;
}

/** One address we keep a link to. */
interface Dialer {
  address: string;
  /** The node gossip placed at this address; null for a configured peer (dialed for ever). */
  learnedFor: string | null;
  socket: WebSocket | null;
  timer: unknown;
  /** Failed dials since the last link that authenticated: the exponent of the backoff. */
  failures: number;
  /** The address is this node's own: never dialed again. */
  self: boolean;
  stopped: boolean;
  /** What went wrong last; a failure is logged once per streak, not once per retry. */
  problem: string | null;
  logged: string | null;
}

export class WsPeerTransport implements PeerTransport {
  readonly #nodeId: string;
  readonly #key: Buffer;
  readonly #options: WsPeerTransportOptions;
  readonly #log: TransportLogger;
  readonly #reconnectMs: number;
  readonly #authTimeoutMs: number;
  readonly #server: WebSocketServer;
  readonly #dialers = new Map<string, Dialer>();
  /** Where gossip last placed each node, to stop dialing an address a node has moved from. */
  readonly #learned = new Map<string, string>();
  readonly #links = new Map<string, Set<Link>>();
  /** Every socket we hold, authenticated or not, so that close() can end them all. */
  readonly #sockets = new Set<WebSocket>();
  /** Nonces of our own open challenges: a client that receives one of them has dialed us. */
  readonly #ownNonces = new Set<string>();
  #handshakes = 0;
  #handler: ((from: string, request: PeerRequest) => Promise<PeerResponse>) | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: WsPeerTransportOptions) {
    const { nodeId, clusterKey, maxPayload, reconnectMs = 500, authTimeoutMs = 5000 } = options;
    if (nodeId.length === 0 || nodeId.length > NODE_ID_LENGTH_MAX) throw new Error(`nodeId must have 1 to ${NODE_ID_LENGTH_MAX} characters`);
    if (clusterKey.length === 0) throw new Error('clusterKey must not be empty');
    for (const [name, value] of Object.entries({ maxPayload, reconnectMs, authTimeoutMs })) {
      if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
    }
    this.#nodeId = nodeId;
    this.#key = Buffer.from(clusterKey, 'utf8');
    this.#options = options;
    this.#log = options.logger;
    this.#reconnectMs = reconnectMs;
    this.#authTimeoutMs = authTimeoutMs;
    // We track our sockets ourselves (#sockets); the node owns the HTTP server and routes to us.
    this.#server = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false });
    for (const address of options.peers) this.#addDialer(address, null);
  }

  /** Dials every known address, and keeps re-dialing those whose link fails, until close(). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    for (const dialer of this.#dialers.values()) this.#dial(dialer);
  }

  addressBook(addresses: ReadonlyMap<string, string>): void {
    if (this.#closed) return;
    for (const [nodeId, address] of addresses) {
      if (this.#dialers.has(address)) continue;
      if (nodeId === this.#nodeId) {
        // Our own address: remember it so that nobody dials it.
        const dialer = this.#addDialer(address, null);
        dialer.self = true;
        continue;
      }
      const previous = this.#learned.get(nodeId);
      const stale = previous === undefined ? undefined : this.#dialers.get(previous);
      if (stale !== undefined && stale.learnedFor === nodeId) this.#stopDialer(stale);
      this.#learned.set(nodeId, address);
      const dialer = this.#addDialer(address, nodeId);
      if (this.#started) this.#dial(dialer);
    }
  }

  /** Dials `address` too (an operator's `cluster join`), like an address of the peer list. */
  dial(address: string): void {
    if (this.#closed || this.#dialers.has(address)) return;
    const dialer = this.#addDialer(address, null);
    if (this.#started) this.#dial(dialer);
  }

  serve(handler: (from: string, request: PeerRequest) => Promise<PeerResponse>): void {
    this.#handler = handler;
  }

  call(to: string, request: PeerRequest, timeoutMs: number): Promise<PeerResponse> {
    if (this.#closed) return Promise.reject(unavailable('the peer transport is closed'));
    const link = this.#linkTo(to);
    if (link === undefined) return Promise.reject(unavailable(`node ${to} is unreachable: no open link to it`));
    const id = link.nextId++;
    let text: string;
    try {
      text = JSON.stringify({ t: 'req', id, body: request });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    // The peer would close the whole link (1009) on an oversized frame, failing every other call.
    if (Buffer.byteLength(text) > this.#options.maxPayload) {
      return Promise.reject(new SyncError(ErrorCode.PAYLOAD_TOO_LARGE, `${request.type} request to ${to} exceeds ${this.#options.maxPayload} bytes`));
    }
    return new Promise<PeerResponse>((resolve, reject) => {
      const timer = realTimers.setTimeout(() => {
        // Forgotten: a late answer finds no pending call and is dropped.
        link.pending.delete(id);
        reject(unavailable(`node ${to} did not answer ${request.type} within ${timeoutMs} ms`));
      }, Math.min(timeoutMs, 2 ** 31 - 1));
      link.pending.set(id, { resolve, reject, timer });
      link.socket.send(text, (error) => {
        if (error === undefined || error === null || !link.pending.delete(id)) return;
        realTimers.clearTimeout(timer);
        reject(unavailable(`could not send ${request.type} to node ${to}: ${error.message}`));
      });
    });
  }

  /** Takes over an upgrade request for `/cluster` from the node's HTTP(S) server. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closed || this.#handshakes >= HANDSHAKES_MAX) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const remote = remoteAddress(req);
    this.#server.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, remote));
  }

  /** Stops dialing and closes every link; pending calls reject at once. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    this.#closed = true;
    for (const dialer of this.#dialers.values()) realTimers.clearTimeout(dialer.timer);
    for (const links of this.#links.values()) {
      for (const link of links) failPending(link, unavailable(`the link to node ${link.nodeId} closed: shutting down`));
    }
    await Promise.all([...this.#sockets].map((ws) => closeSocket(ws, PeerCloseCode.GOING_AWAY, 'shutting down')));
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // Server side.

  #accept(ws: WebSocket, remote: string): void {
    if (this.#closed) {
      ws.terminate();
      return;
    }
    this.#track(ws, (error) => {
      if (!this.#closed) this.#log.info({ remote, err: error }, `inbound peer socket from ${remote}: ${error.message}`);
    });
    this.#handshakes++;
    const nonce = newNonce();
    this.#ownNonces.add(nonce);
    let handshaking = true;
    const done = () => {
      if (!handshaking) return;
      handshaking = false;
      this.#handshakes--;
      this.#ownNonces.delete(nonce);
      realTimers.clearTimeout(timer);
      ws.off('message', onMessage);
    };
    const timer = realTimers.setTimeout(() => {
      done();
      this.#log.warn({ remote }, `closed an inbound peer link from ${remote}: no handshake within ${this.#authTimeoutMs} ms`);
      ws.close(PeerCloseCode.AUTH_TIMEOUT, 'handshake timeout');
    }, this.#authTimeoutMs);
    const onMessage = (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const frame = parseFrame(data, isBinary);
      done();
      if (frame?.t !== 'hello') {
        ws.close(PeerCloseCode.BAD_MESSAGE, 'expected hello');
        return;
      }
      if (!proofMatches(this.#mac('client', nonce, frame.nodeId), frame.mac)) {
        this.#log.warn({ remote, claimedNodeId: frame.nodeId }, `refused a peer link from ${remote}: wrong cluster key`);
        ws.close(PeerCloseCode.WRONG_KEY, 'wrong cluster key');
        return;
      }
      if (frame.nodeId === this.#nodeId) {
        // Not a dial of ourselves (the client recognises our nonce and stops before hello).
        this.#log.warn({ remote, nodeId: frame.nodeId }, `refused a peer link from ${remote}: it uses our node id`);
        ws.close(PeerCloseCode.DUPLICATE_NODE_ID, 'duplicate node id');
        return;
      }
      send(ws, { t: 'welcome', mac: this.#mac('server', frame.nonce, this.#nodeId).toString('hex') });
      this.#open(ws, frame.nodeId, null);
    };
    ws.on('message', onMessage);
    ws.once('close', done);
    send(ws, { t: 'challenge', nonce, nodeId: this.#nodeId });
  }

  // Client side.

  #addDialer(address: string, learnedFor: string | null): Dialer {
    const existing = this.#dialers.get(address);
    if (existing !== undefined) return existing;
    const dialer: Dialer = { address, learnedFor, socket: null, timer: undefined, failures: 0, self: false, stopped: false, problem: null, logged: null };
    this.#dialers.set(address, dialer);
    return dialer;
  }

  #stopDialer(dialer: Dialer): void {
    dialer.stopped = true;
    realTimers.clearTimeout(dialer.timer);
    this.#dialers.delete(dialer.address);
    dialer.socket?.close(1000, 'address superseded');
  }

  #dial(dialer: Dialer): void {
    if (this.#closed || dialer.stopped || dialer.self || dialer.socket !== null) return;
    const { address } = dialer;
    const { tls, maxPayload } = this.#options;
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${tls === undefined ? 'ws' : 'wss'}://${address}/cluster`, {
        maxPayload,
        perMessageDeflate: false,
        ...(tls === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized ?? true, ...(tls.ca === undefined ? {} : { ca: tls.ca }) }),
      });
    } catch (error) {
      // A malformed address will not become valid by retrying it.
      this.#log.warn({ address, err: error }, `cannot dial peer address ${address}: ${(error as Error).message}`);
      this.#stopDialer(dialer);
      return;
    }
    dialer.socket = ws;
    dialer.problem = null;
    // Dial errors (refused, reset, TLS) are reported when the socket closes, once per streak.
    this.#track(ws, (error) => {
      dialer.problem ??= error.message;
    });
    let authenticated = false;
    // Covers the HTTP upgrade and the handshake: close() on a connecting socket aborts it.
    const timer = realTimers.setTimeout(() => {
      dialer.problem = `no handshake within ${this.#authTimeoutMs} ms`;
      ws.close(PeerCloseCode.AUTH_TIMEOUT, 'handshake timeout');
    }, this.#authTimeoutMs);
    const clientNonce = newNonce();
    let serverNodeId: string | null = null;
    const refuse = (code: number, problem: string) => {
      ws.off('message', onMessage);
      realTimers.clearTimeout(timer);
      dialer.problem = problem;
      ws.close(code, problem);
    };
    const onMessage = (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const frame = parseFrame(data, isBinary);
      if (serverNodeId === null) {
        if (frame?.t !== 'challenge') return refuse(PeerCloseCode.BAD_MESSAGE, 'expected challenge');
        if (frame.nodeId === this.#nodeId && this.#ownNonces.has(frame.nonce)) {
          // The peer list may hold our own address; the nonce proves it is this very process.
          ws.off('message', onMessage);
          realTimers.clearTimeout(timer);
          dialer.self = true;
          this.#log.info({ address }, `${address} is this node's own address: not dialing it`);
          ws.close(1000, 'dialed itself');
          return;
        }
        serverNodeId = frame.nodeId;
        const mac = this.#mac('client', frame.nonce, this.#nodeId).toString('hex');
        send(ws, { t: 'hello', nodeId: this.#nodeId, nonce: clientNonce, mac });
        return;
      }
      if (frame?.t !== 'welcome') return refuse(PeerCloseCode.BAD_MESSAGE, 'expected welcome');
      if (!proofMatches(this.#mac('server', clientNonce, serverNodeId), frame.mac)) {
        this.#log.warn({ address, claimedNodeId: serverNodeId }, `refused the peer link to ${address}: wrong cluster key`);
        return refuse(PeerCloseCode.WRONG_KEY, 'wrong cluster key');
      }
      ws.off('message', onMessage);
      realTimers.clearTimeout(timer);
      authenticated = true;
      dialer.failures = 0;
      dialer.logged = null;
      this.#open(ws, serverNodeId, address);
    };
    ws.on('message', onMessage);
    ws.once('close', (code, reason) => {
      realTimers.clearTimeout(timer);
      dialer.socket = null;
      if (!authenticated && !dialer.self) {
        const problem = code === PeerCloseCode.WRONG_KEY ? 'refused by the peer: wrong cluster key' : (dialer.problem ?? describeClose(code, reason));
        if (problem !== dialer.logged) {
          dialer.logged = problem;
          this.#log.warn({ address, code }, `peer link to ${address} failed: ${problem}`);
        }
        dialer.failures++;
      }
      this.#redial(dialer);
    });
  }

  #redial(dialer: Dialer): void {
    if (this.#closed || dialer.stopped || dialer.self) return;
    // failures is 0 after a link that had authenticated: wait the base delay, not nothing, so
    // that a peer which accepts and then drops every link is not hammered.
    const delay = Math.min(this.#reconnectMs * 2 ** Math.min(Math.max(dialer.failures - 1, 0), 16), RECONNECT_MS_MAX);
    realTimers.clearTimeout(dialer.timer);
    dialer.timer = realTimers.setTimeout(() => this.#dial(dialer), delay);
  }

  // Both sides, once authenticated.

  #open(ws: WebSocket, nodeId: string, address: string | null): void {
    const link: Link = { socket: ws, nodeId, address, pending: new Map(), nextId: 1, serving: 0 };
    let links = this.#links.get(nodeId);
    if (links === undefined) this.#links.set(nodeId, (links = new Set()));
    links.add(link);
    ws.on('message', (data, isBinary) => this.#onLinkMessage(link, data, isBinary));
    ws.once('close', (code, reason) => {
      links.delete(link);
      if (links.size === 0 && this.#links.get(nodeId) === links) this.#links.delete(nodeId);
      failPending(link, unavailable(`the link to node ${nodeId} closed before it answered (${describeClose(code, reason)})`));
      if (!this.#closed) this.#log.info({ nodeId, address, code }, `peer link to node ${nodeId} closed`);
    });
    this.#log.info({ nodeId, address }, `peer link to node ${nodeId} up (${address === null ? 'inbound' : `dialed ${address}`})`);
    try {
      this.#options.onPeer?.(nodeId, address);
    } catch (error) {
      this.#log.warn({ err: error, nodeId }, 'onPeer threw');
    }
  }

  #onLinkMessage(link: Link, data: RawData, isBinary: boolean): void {
    if (link.socket.readyState !== WebSocket.OPEN) return;
    const frame = parseFrame(data, isBinary);
    if (frame?.t === 'res') {
      const call = link.pending.get(frame.id);
      if (call === undefined) return; // the answer to a call that timed out
      link.pending.delete(frame.id);
      realTimers.clearTimeout(call.timer);
      call.resolve(frame.body);
      return;
    }
    if (frame?.t !== 'req') {
      this.#log.warn({ nodeId: link.nodeId }, `closed the peer link to node ${link.nodeId}: malformed frame`);
      link.socket.close(PeerCloseCode.BAD_MESSAGE, 'malformed frame');
      return;
    }
    void this.#answer(link, frame.id, frame.body);
  }

  async #answer(link: Link, id: number, body: unknown): Promise<void> {
    const handler = this.#handler;
    let response: PeerResponse;
    if (!isPeerRequest(body)) {
      response = { type: 'error', code: ErrorCode.BAD_REQUEST, message: 'not a peer request' };
    } else if (handler === undefined) {
      response = { type: 'error', code: ErrorCode.UNAVAILABLE, message: 'this node does not serve peer requests yet' };
    } else if (link.serving >= SERVED_PER_LINK_MAX) {
      response = { type: 'error', code: ErrorCode.LIMIT_EXCEEDED, message: `more than ${SERVED_PER_LINK_MAX} requests in progress on this link` };
    } else {
      link.serving++;
      try {
        response = await handler(link.nodeId, body);
      } catch (error) {
        // Masked as everywhere else: the detail stays in this node's log.
        this.#log.warn({ err: error, nodeId: link.nodeId, type: body.type }, `peer request ${body.type} from node ${link.nodeId} failed`);
        response = { type: 'error', code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'unexpected error' };
      } finally {
        link.serving--;
      }
    }
    if (link.socket.readyState !== WebSocket.OPEN) return;
    let text: string;
    try {
      text = JSON.stringify({ t: 'res', id, body: response });
    } catch (error) {
      this.#log.warn({ err: error, nodeId: link.nodeId }, 'a peer response could not be serialised');
      text = JSON.stringify({ t: 'res', id, body: { type: 'error', code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'unexpected error' } });
    }
    if (Buffer.byteLength(text) > this.#options.maxPayload) {
      const message = `the ${response.type} answer exceeds ${this.#options.maxPayload} bytes`;
      text = JSON.stringify({ t: 'res', id, body: { type: 'error', code: ErrorCode.PAYLOAD_TOO_LARGE, message } });
    }
    link.socket.send(text);
  }

  #linkTo(nodeId: string): Link | undefined {
    for (const link of this.#links.get(nodeId) ?? []) {
      if (link.socket.readyState === WebSocket.OPEN) return link;
    }
    return undefined;
  }

  /** Registers a socket for close(); `onError` is required because an unheard 'error' would throw. */
  #track(ws: WebSocket, onError: (error: Error) => void): void {
    this.#sockets.add(ws);
    ws.once('close', () => this.#sockets.delete(ws));
    ws.on('error', onError);
  }

  #mac(role: 'client' | 'server', nonce: string, nodeId: string): Buffer {
    // Nonces are base64url, so '|' separates the parts unambiguously; the node id comes last.
    return createHmac('sha256', this.#key).update(`${role}|${nonce}|${nodeId}`).digest();
  }
}

function unavailable(message: string): SyncError {
  return new SyncError(ErrorCode.UNAVAILABLE, message);
}

function failPending(link: Link, error: Error): void {
  for (const call of link.pending.values()) {
    realTimers.clearTimeout(call.timer);
    call.reject(error);
  }
  link.pending.clear();
}

function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url');
}

function proofMatches(expected: Buffer, mac: string): boolean {
  const given = Buffer.from(mac, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function send(ws: WebSocket, frame: Frame): void {
  ws.send(JSON.stringify(frame));
}

/** Ends a socket politely, then for sure: a peer that does not answer our close frame is cut. */
function closeSocket(ws: WebSocket, code: number, reason: string): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = realTimers.setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    ws.once('close', () => {
      realTimers.clearTimeout(timer);
      resolve();
    });
    ws.close(code, reason);
  });
}

function remoteAddress(req: IncomingMessage): string {
  const { remoteAddress: host = 'unknown', remotePort: port } = req.socket;
  return `${host.includes(':') ? `[${host}]` : host}:${port ?? '?'}`;
}

function describeClose(code: number, reason: Buffer): string {
  const text = reason.toString('utf8');
  return text.length > 0 ? `closed with ${code}: ${text}` : `closed with ${code}`;
}

function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= NODE_ID_LENGTH_MAX;
}

function isNonce(value: unknown): value is string {
  return typeof value === 'string' && NONCE.test(value);
}

function isMac(value: unknown): value is string {
  return typeof value === 'string' && MAC.test(value);
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** A frame of this protocol, checked for shape, or null for anything else. */
function parseFrame(data: RawData, isBinary: boolean): Frame | null {
  if (isBinary) return null;
  const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const frame = value as Record<string, unknown>;
  switch (frame['t']) {
    case 'challenge':
      return isNonce(frame['nonce']) && isNodeId(frame['nodeId']) ? (frame as Frame) : null;
    case 'hello':
      return isNodeId(frame['nodeId']) && isNonce(frame['nonce']) && isMac(frame['mac']) ? (frame as Frame) : null;
    case 'welcome':
      return isMac(frame['mac']) ? (frame as Frame) : null;
    case 'req':
      return isId(frame['id']) ? (frame as Frame) : null;
    case 'res': {
      const body = frame['body'] as { type?: unknown } | null;
      return isId(frame['id']) && typeof body === 'object' && body !== null && typeof body.type === 'string' ? (frame as Frame) : null;
    }
    default:
      return null;
  }
}
