/**
 * The WebSocket peer transport (src/replication/ws-transport.ts) over real sockets on 127.0.0.1:
 * the handshake (mutual proof of the cluster key, refusals and their close codes), calls both ways
 * and their failures, and links that come back. No sleeps: every wait is on an event.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { generate } from 'selfsigned';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ErrorCode } from '../../src/model/errors.js';
import type { PeerRequest, PeerResponse } from '../../src/replication/protocol.js';
import { PeerCloseCode, WsPeerTransport, type WsPeerTransportOptions } from '../../src/replication/ws-transport.js';
import { deferred } from '../support/deferred.js';

const KEY = 'the cluster key';
const ping: PeerRequest = { type: 'ping', members: {} };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  // Last started, first closed: transports before the servers they are attached to.
  for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) await cleanup();
});

/** A list of things that happened, and a way to wait for one (past or future) without sleeping. */
class Events<T> {
  readonly items: T[] = [];
  readonly #waiters: Array<{ test: (item: T) => boolean; resolve: (item: T) => void }> = [];

  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.#waiters]) {
      if (!waiter.test(item)) continue;
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve(item);
    }
  }

  /** The first item from index `from` on that passes `test`. */
  waitFor(test: (item: T) => boolean, from = 0): Promise<T> {
    const found = this.items.slice(from).find(test);
    if (found !== undefined) return Promise.resolve(found);
    const waiter = deferred<T>();
    this.#waiters.push({ test, resolve: waiter.resolve });
    return waiter.promise;
  }
}

interface LogLine {
  level: 'info' | 'warn';
  obj: object;
  msg: string;
}

/** What a peer answers: who asked (the authenticated id) and what, so calls can be told apart. */
async function echo(from: string, request: PeerRequest): Promise<PeerResponse> {
  const partition = 'partition' in request ? request.partition : '';
  return { type: 'status', vectors: { changes: {}, events: {} }, digest: `${from}:${request.type}:${partition}`, entities: 0 };
}

interface Host {
  server: Server;
  port: number;
  address: string;
  /** `/cluster` upgrades received. */
  upgrades: number;
  attach(transport: WsPeerTransport): void;
  close(): Promise<void>;
}

/** An HTTP(S) server on 127.0.0.1 that routes `/cluster` upgrades to the attached transport. */
async function listen(port = 0, tls?: { cert: string; key: string }): Promise<Host> {
  const server = tls === undefined ? createServer() : createTlsServer(tls);
  let transport: WsPeerTransport | undefined;
  let closing: Promise<void> | undefined;
  const host: Host = {
    server,
    port: 0,
    address: '',
    upgrades: 0,
    attach: (t) => {
      transport = t;
    },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/cluster' || transport === undefined) return socket.destroy();
    host.upgrades++;
    transport.handleUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  host.port = (server.address() as AddressInfo).port;
  host.address = `127.0.0.1:${host.port}`;
  cleanups.push(() => host.close());
  return host;
}

interface TestNode {
  id: string;
  transport: WsPeerTransport;
  logs: Events<LogLine>;
  /** onPeer calls. */
  peers: Events<{ nodeId: string; address: string | null }>;
}

function startNode(host: Host, id: string, options: Partial<WsPeerTransportOptions> = {}): TestNode {
  const logs = new Events<LogLine>();
  const peers = new Events<{ nodeId: string; address: string | null }>();
  const transport = new WsPeerTransport({
    nodeId: id,
    clusterKey: KEY,
    peers: [],
    maxPayload: 1 << 20,
    reconnectMs: 10,
    logger: {
      info: (obj, msg) => logs.push({ level: 'info', obj, msg }),
      warn: (obj, msg) => logs.push({ level: 'warn', obj, msg }),
    },
    onPeer: (nodeId, address) => peers.push({ nodeId, address }),
    ...options,
  });
  transport.serve(echo);
  host.attach(transport);
  transport.start();
  cleanups.push(() => transport.close());
  return { id, transport, logs, peers };
}

/** Two hosts, two nodes dialing each other, both links (a→b and b→a) up on both sides. */
async function pair(options: Partial<WsPeerTransportOptions> = {}): Promise<{ a: TestNode; b: TestNode; hostA: Host; hostB: Host }> {
  const hostA = await listen();
  const hostB = await listen();
  const a = startNode(hostA, 'a', { peers: [hostB.address], ...options });
  const b = startNode(hostB, 'b', { peers: [hostA.address], ...options });
  await Promise.all([
    a.peers.waitFor((p) => p.nodeId === 'b' && p.address === hostB.address),
    a.peers.waitFor((p) => p.nodeId === 'b' && p.address === null),
    b.peers.waitFor((p) => p.nodeId === 'a' && p.address === hostA.address),
    b.peers.waitFor((p) => p.nodeId === 'a' && p.address === null),
  ]);
  return { a, b, hostA, hostB };
}

function hmac(key: string, text: string): string {
  return createHmac('sha256', key).update(text).digest('hex');
}

interface RawPeer {
  ws: WebSocket;
  frames: Events<Record<string, unknown>>;
  closed: Promise<number>;
}

/** A hand-driven client of the peer protocol, to send what a correct transport never would. */
async function rawPeer(address: string): Promise<RawPeer> {
  const ws = new WebSocket(`ws://${address}/cluster`);
  const frames = new Events<Record<string, unknown>>();
  const closed = deferred<number>();
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  ws.on('close', (code) => closed.resolve(code));
  cleanups.push(async () => {
    ws.terminate();
    await closed.promise;
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, frames, closed: closed.promise };
}

/** Completes the client side of the handshake as node `nodeId`; checks the server's proof. */
async function authenticate(raw: RawPeer, nodeId: string, serverNodeId: string): Promise<void> {
  const challenge = await raw.frames.waitFor((f) => f['t'] === 'challenge');
  expect(challenge['nodeId']).toBe(serverNodeId);
  const nonce = randomBytes(32).toString('base64url');
  raw.ws.send(JSON.stringify({ t: 'hello', nodeId, nonce, mac: hmac(KEY, `client|${String(challenge['nonce'])}|${nodeId}`) }));
  const welcome = await raw.frames.waitFor((f) => f['t'] === 'welcome');
  expect(welcome['mac']).toBe(hmac(KEY, `server|${nonce}|${serverNodeId}`));
}

describe('WsPeerTransport', { timeout: 5000 }, () => {
  describe('handshake', () => {
    it('authenticates two nodes, which then call each other both ways', async () => {
      const { a, b } = await pair();
      await expect(a.transport.call('b', ping, 1000)).resolves.toMatchObject({ digest: 'a:ping:' });
      await expect(b.transport.call('a', ping, 1000)).resolves.toMatchObject({ digest: 'b:ping:' });
      // Multiplexed: concurrent calls each get their own answer.
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => a.transport.call('b', { type: 'status', partition: `app/p${i}` }, 1000)),
      );
      expect(answers.map((r) => (r.type === 'status' ? r.digest : r.type))).toEqual(Array.from({ length: 20 }, (_, i) => `a:status:app/p${i}`));
    });

    it('dials wss:// when tls is set, verifying the peer against the given CA', async () => {
      const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
        keySize: 2048,
        extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
      });
      const tls = { cert: pems.cert, key: pems.private };
      const hostA = await listen(0, tls);
      const hostB = await listen(0, tls);
      const a = startNode(hostA, 'a', { peers: [hostB.address], tls: { ca: pems.cert } });
      startNode(hostB, 'b', { tls: { ca: pems.cert } });
      await a.peers.waitFor((p) => p.nodeId === 'b');
      await expect(a.transport.call('b', ping, 1000)).resolves.toMatchObject({ digest: 'a:ping:' });
    });

    it('refuses a node with another cluster key, on both sides (4401), and never links', async () => {
      const hostA = await listen();
      const hostB = await listen();
      const a = startNode(hostA, 'a', { peers: [hostB.address] });
      const b = startNode(hostB, 'b', { peers: [hostA.address], clusterKey: 'another key' });
      const refusal = (line: LogLine) => line.level === 'warn' && line.msg.includes('wrong cluster key') && /refused a peer link from 127\.0\.0\.1:\d+/.test(line.msg);
      const refused = (line: LogLine) => line.level === 'warn' && line.msg.includes('wrong cluster key') && line.msg.startsWith('peer link to');
      await Promise.all([a.logs.waitFor(refusal), b.logs.waitFor(refusal), a.logs.waitFor(refused), b.logs.waitFor(refused)]);
      await expect(a.transport.call('b', ping, 1000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      await expect(b.transport.call('a', ping, 1000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      expect(a.peers.items).toEqual([]);
      expect(b.peers.items).toEqual([]);
    });

    it('answers the protocol as written: challenge, hello, welcome with the server proof', async () => {
      const host = await listen();
      const b = startNode(host, 'b');
      const raw = await rawPeer(host.address);
      await authenticate(raw, 'raw', 'b');
      await b.peers.waitFor((p) => p.nodeId === 'raw' && p.address === null);
      raw.ws.send(JSON.stringify({ t: 'req', id: 7, body: ping }));
      await expect(raw.frames.waitFor((f) => f['t'] === 'res')).resolves.toEqual({ t: 'res', id: 7, body: expect.objectContaining({ digest: 'raw:ping:' }) });
    });

    it('closes a socket that sends anything before its hello (4400)', async () => {
      const host = await listen();
      startNode(host, 'b');
      const raw = await rawPeer(host.address);
      await raw.frames.waitFor((f) => f['t'] === 'challenge');
      raw.ws.send(JSON.stringify({ t: 'req', id: 1, body: ping }));
      await expect(raw.closed).resolves.toBe(PeerCloseCode.BAD_MESSAGE);
    });

    it('closes a socket that stays unauthenticated past the timeout (4408)', async () => {
      const host = await listen();
      startNode(host, 'b', { authTimeoutMs: 50 });
      const raw = await rawPeer(host.address);
      await expect(raw.closed).resolves.toBe(PeerCloseCode.AUTH_TIMEOUT);
    });

    it('takes a peer list holding the node itself: that address is recognised and not dialed again', async () => {
      const hostA = await listen();
      const hostB = await listen();
      const a = startNode(hostA, 'a', { peers: [hostA.address, hostB.address] });
      startNode(hostB, 'b');
      await a.logs.waitFor((line) => line.level === 'info' && line.msg.includes(`${hostA.address} is this node's own address`));
      await a.peers.waitFor((p) => p.nodeId === 'b');
      for (let i = 0; i < 5; i++) await expect(a.transport.call('b', ping, 1000)).resolves.toMatchObject({ digest: 'a:ping:' });
      expect(a.peers.items.map((p) => p.nodeId)).toEqual(['b']);
      expect(hostA.upgrades).toBe(1);
      expect(a.logs.items.filter((line) => line.msg.includes('own address'))).toHaveLength(1);
      await expect(a.transport.call('a', ping, 1000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    });
  });

  describe('calls', () => {
    it('rejects at once a call to a node it has no link to', async () => {
      const down = await listen();
      const address = down.address;
      await down.close();
      const hostA = await listen();
      const a = startNode(hostA, 'a', { peers: [address] });
      const started = performance.now();
      await expect(a.transport.call('nobody', ping, 30_000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      await expect(a.transport.call('b', ping, 30_000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      expect(performance.now() - started).toBeLessThan(1000);
    });

    it('rejects a call that is not answered within its timeout, and ignores the late answer', async () => {
      const { a, b } = await pair();
      const gate = deferred();
      b.transport.serve(async (from, request) => {
        if (request.type === 'ping') await gate.promise;
        return echo(from, request);
      });
      const started = performance.now();
      await expect(a.transport.call('b', ping, 50)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      expect(performance.now() - started).toBeGreaterThanOrEqual(45);
      gate.resolve();
      // The late ping answer travels first on the same link; the next call still gets its own.
      await expect(a.transport.call('b', { type: 'status', partition: 'app/x' }, 1000)).resolves.toMatchObject({ digest: 'a:status:app/x' });
    });

    it('answers a body that is not a request with BAD_REQUEST, without calling the handler', async () => {
      const { a, b } = await pair();
      const seen: string[] = [];
      b.transport.serve(async (from, request) => {
        seen.push(request.type);
        return echo(from, request);
      });
      const bogus = { type: 'drop-tables' } as unknown as PeerRequest;
      await expect(a.transport.call('b', bogus, 1000)).resolves.toMatchObject({ type: 'error', code: ErrorCode.BAD_REQUEST });
      expect(seen).toEqual([]);
    });

    it('answers INTERNAL_SERVER_ERROR when the handler throws', async () => {
      const { a, b } = await pair();
      b.transport.serve(async () => {
        throw new Error('boom');
      });
      await expect(a.transport.call('b', ping, 1000)).resolves.toMatchObject({ type: 'error', code: ErrorCode.INTERNAL_SERVER_ERROR });
    });

    it('rejects a request over maxPayload before sending it, keeping the link up', async () => {
      const { a } = await pair({ maxPayload: 4096 });
      const big: PeerRequest = { type: 'submit', partition: 'app/x', changes: [], clientId: 'x'.repeat(5000), caller: { admin: true, denied: [], mayClear: true } };
      await expect(a.transport.call('b', big, 1000)).rejects.toMatchObject({ code: ErrorCode.PAYLOAD_TOO_LARGE });
      await expect(a.transport.call('b', ping, 1000)).resolves.toMatchObject({ digest: 'a:ping:' });
    });

    it('closes a link that sends malformed JSON (4400), failing the calls pending on it', async () => {
      const host = await listen();
      const b = startNode(host, 'b');
      const raw = await rawPeer(host.address);
      await authenticate(raw, 'raw', 'b');
      await b.peers.waitFor((p) => p.nodeId === 'raw');
      const pending = b.transport.call('raw', ping, 30_000);
      await raw.frames.waitFor((f) => f['t'] === 'req');
      raw.ws.send('{not json');
      await expect(raw.closed).resolves.toBe(PeerCloseCode.BAD_MESSAGE);
      await expect(pending).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    });
  });

  describe('links', () => {
    it('close() rejects the calls in flight and resolves', async () => {
      const { a, b } = await pair();
      b.transport.serve(() => new Promise<PeerResponse>(() => {}));
      const pending = expect(a.transport.call('b', ping, 30_000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      await a.transport.close();
      await pending;
      await expect(a.transport.call('b', ping, 1000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    });

    it('comes back when the peer restarts on the same port', async () => {
      const { a, b, hostA, hostB } = await pair();
      const port = hostB.port;
      await b.transport.close();
      await hostB.close();
      await expect(a.transport.call('b', ping, 1000)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });

      const seen = a.peers.items.length;
      const hostB2 = await listen(port);
      const b2 = startNode(hostB2, 'b', { peers: [hostA.address] });
      // a re-dials the address it was given, with backoff; b2 dials a.
      await Promise.all([
        a.peers.waitFor((p) => p.nodeId === 'b' && p.address === hostB2.address, seen),
        b2.peers.waitFor((p) => p.nodeId === 'a'),
      ]);
      await expect(a.transport.call('b', ping, 1000)).resolves.toMatchObject({ digest: 'a:ping:' });
      await expect(b2.transport.call('a', ping, 1000)).resolves.toMatchObject({ digest: 'b:ping:' });
    });
  });
});
