/**
 * A syncgraph node: one HTTP port serving GraphQL over HTTP (POST /graphql, GraphiQL on GET),
 * graphql-ws subscriptions on /graphql, and GET /health; over one LevelDB engine.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { getOperationAST, GraphQLError, NoSchemaIntrospectionCustomRule, type ExecutionArgs } from 'graphql';
import type { OperationResult } from 'graphql-ws';
import { useGraphQlJit } from '@envelop/graphql-jit';
import { createYoga, type Plugin } from 'graphql-yoga';
import { pino, type Logger } from 'pino';
import { V7Generator } from 'uuidv7';
import { WebSocketServer } from 'ws';
import { Engine } from '../engine/engine.js';
import { Cluster } from '../replication/cluster.js';
import { localRouter, type Router } from '../replication/router.js';
import { realTimers } from '../replication/transport.js';
import { WsPeerTransport } from '../replication/ws-transport.js';
import { ReplicatedDirectoryStore } from '../replication/directory-log.js';
import type { MemberList } from '../replication/protocol.js';
import { HybridClock } from '../engine/hlc.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { resolveNodeOptions, type NodeOptions, type ResolvedNodeOptions } from '../options.js';
import type { ResolverContext } from '../resolvers/context.js';
import { LevelStore } from '../storage/level-store.js';
import { BackupError, backupLines, splitLines } from '../storage/backup.js';
import { ExportError, exportLines, importLines } from './export.js';
import { keyMatches, resolveAdminKey } from './admin-key.js';
import { Authenticator, bearer, type Access } from '../auth/access.js';
import { Directory } from '../auth/directory.js';
import { Quotas } from '../auth/quotas.js';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { maskError } from './errors.js';
import { encodeSharedResult, subscribeShared } from './shared-subscriptions.js';
import { serveGraphQLWs } from './ws-adapter.js';
import { buildSchema } from './schema.js';
import { useErrorCodes } from './use-error-codes.js';
import { Metrics } from './metrics.js';
import { ADMIN_CSS, ADMIN_HEADERS, ADMIN_HTML, ADMIN_JS, adminCredential, type AdminStatus } from './admin-view.js';
import { countErrors, countOperation, useMetrics } from './use-metrics.js';

export interface RunningNode {
  /** `http://host:port` */
  url: string;
  port: number;
  nodeId: string;
  /** The node's place in its peer cluster; undefined when it runs alone. */
  cluster: Cluster | undefined;
  adminKey: string;
  /** True when this start generated the admin key (print it once). */
  adminKeyGenerated: boolean;
  options: ResolvedNodeOptions;
  logger: Logger;
  /** Stops accepting, finishes in-flight requests and writes, closes LevelDB. */
  close(): Promise<void>;
}


/** Runs `fn` at time `ms` (epoch); timers hold at most 2^31-1 ms (24.8 days), so long waits re-arm. */
function at(ms: number, fn: () => void): { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const wait = ms - Date.now();
    if (wait <= 0) return fn();
    timer = setTimeout(arm, Math.min(wait, 2 ** 31 - 1));
    timer.unref();
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}

/** A cryptographically strong source of 32-bit numbers, refilled `size` at a time. */
function pooledRandom(size: number): { nextUint32(): number } {
  const pool = new Uint32Array(size);
  let next = size;
  return {
    nextUint32() {
      if (next === size) {
        webcrypto.getRandomValues(pool);
        next = 0;
      }
      return pool[next++]!;
    },
  };
}

export async function startNode(input: NodeOptions, logger?: Logger): Promise<RunningNode> {
  const options = resolveNodeOptions(input);
  const log = logger ?? pino({ level: options.logLevel, redact: { paths: LOG_REDACT, censor: '[redacted]' } });
  mkdirSync(options.dataDir, { recursive: true });
  const admin = resolveAdminKey(options.dataDir, options.adminKey);
  // Random bits drawn from the OS 4 KiB at a time (uuidv7's default draws 32 bytes at a time).
  const ids = new V7Generator(pooledRandom(1024));
  const newRequestId = () => ids.generate().toString();
  const metrics = new Metrics();
  const store = await LevelStore.open(join(options.dataDir, 'db'), { asyncReads: options.asyncReads });
  const engine = await Engine.open(store, {
    now: () => Date.now(),
    newId: () => ids.generate().toString(),
    newNodeId: () => randomBytes(6).toString('hex'),
    limits: options.limits,
    retention: options.retention,
    cacheBytesMax: options.cacheBytesMax,
    // A replica keeps what an EMPTY cleared: other replicas may still need those records.
    keepClearedLog: options.cluster !== undefined,
    history: { horizonMs: options.history.horizonSeconds * 1000, ccidWindowMs: options.history.ccidWindowSeconds * 1000 },
    onBackgroundError: (error) => log.error({ err: error }, 'background work failed'),
    onWriteFailure: (error) => log.error({ err: error }, 'LevelDB write failed; staged changes were rejected'),
    onCallbackError: (error) => log.error({ err: error }, 'publishing a durable change failed'),
    onBatch: (_submissions, ops, durationMs) => metrics.observeCommit(ops, durationMs),
  });
  metrics.attach({ dataDir: join(options.dataDir, 'db'), subscriptions: () => engine.subscriptionStats(), cache: () => engine.cacheStats(), partitionsOpen: () => engine.openCount });
  // History collection rounds, one at a time. A cluster's replicas collect only what is causally
  // stable across the replicas of each partition (Cluster.stableVector; `cluster` is set below).
  // After each round a single node closes the partitions no one used for a whole interval.
  let collecting: Promise<void> | undefined;
  const historyTimer = setInterval(() => {
    collecting ??= engine
      .collectHistory(Date.now(), Number.POSITIVE_INFINITY, options.cluster === undefined ? undefined : (id) => cluster?.stableVector(id))
      .then(async (round) => {
        metrics.historyCollected(round);
        if (round.superseded + round.tombstones + round.cleared + round.ccids > 0) log.debug({ ...round }, 'history collected');
        if (options.cluster === undefined) {
          const closed = await engine.closeIdle();
          if (closed > 0) log.debug({ closed, open: engine.openCount }, 'closed idle partitions');
        }
      })
      .catch((error: unknown) => log.error({ err: error }, 'history collection failed'))
      .finally(() => (collecting = undefined));
  }, options.history.intervalSeconds * 1000).unref();

  const logUnexpected = (err: unknown) => log.error({ err }, 'unexpected error in a resolver');
  // In a cluster, every node holds the whole directory: its writes are logged and exchanged.
  const directoryStore = options.cluster === undefined ? undefined : await ReplicatedDirectoryStore.open(store, engine.nodeId, new HybridClock(() => Date.now()));
  const directory = new Directory(directoryStore ?? store, { now: () => Date.now(), tokenTtlMs: options.limits.tokenTtlSeconds * 1000 });
  if (directoryStore !== undefined) {
    directoryStore.onRemoteChanges = (changes) => directory.remoteChanges(changes);
    // A node that ran alone before brings its apps and users along.
    const adopted = await directoryStore.adoptExisting('auth!');
    if (adopted > 0) log.info({ keys: adopted }, 'logged the existing directory for the cluster');
  }
  const authenticator = new Authenticator(directory, (secret) => keyMatches(secret, admin.key));
  const quotas = new Quotas(options.limits);
  // The cluster is created before the port is bound (resolvers need it) and started after.
  const peerLog = log.child({ component: 'cluster' });
  const transport =
    options.cluster === undefined
      ? undefined
      : new WsPeerTransport({
          nodeId: options.cluster.nodeId,
          clusterKey: options.cluster.clusterKey,
          peers: options.cluster.peers,
          // Peers present the cluster's certificate: trust it (the cluster key authenticates them).
          ...(options.tls ? { tls: { ca: readFileSync(options.tls.certFile) } } : {}),
          maxPayload: Math.max(options.limits.requestBytesMax * 2, 64 * 1024 * 1024),
          logger: peerLog,
          onPeer: (nodeId, address) => cluster?.peerConnected(nodeId, address),
        });
  let cluster: Cluster | undefined;
  const local = localRouter(engine);
  // The cluster starts once the port is known, after this: look it up at each use.
  const routerNow = (): Router => cluster ?? local;
  const contextFor = (access: Access, source: string, requestId: string): ResolverContext => ({
    requestId,
    engine,
    directory,
    access,
    source,
    limits: options.limits,
    quotas,
    router: routerNow(),
    cluster: cluster ?? null,
    metrics,
  });

  // Sessions held on a credential end when it is revoked (a key or token revoked, a password
  // changed, a user reset or deleted): graphql-ws sockets are closed, streamed HTTP responses
  // ended, and their subscriptions go with them.
  const sessions = new Map<string, Set<() => void>>();
  // A session also ends when its token expires.
  const holdSession = (access: Access | undefined, end: () => void): (() => void) => {
    if (access === undefined || access.operator) return () => undefined;
    const { credential, expiresAt } = access;
    let set = sessions.get(credential);
    if (set === undefined) sessions.set(credential, (set = new Set()));
    set.add(end);
    const expiry = expiresAt === null ? undefined : at(expiresAt, end);
    return () => {
      expiry?.cancel();
      set.delete(end);
      if (set.size === 0) sessions.delete(credential);
    };
  };
  directory.onRevocation(({ credentials }) => {
    for (const credential of credentials) for (const end of [...(sessions.get(credential) ?? [])]) end();
  });

  const yoga = createYoga<ServerContext, ResolverContext>({
    schema: buildSchema(),
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: false,
    graphiql: options.graphiql,
    // Browsers on other origins only where the operator allowed them (credentials are bearer
    // tokens, never cookies).
    cors: options.corsOrigins.length > 0 ? { origin: options.corsOrigins, allowedHeaders: ['authorization', 'content-type', 'x-syncgraph-app', 'x-syncgraph-user'], methods: ['GET', 'POST', 'OPTIONS'] } : false,
    healthCheckEndpoint: '/yoga-health',
    // The body is already read, within limits.requestBytesMax, before yoga sees it (readBody);
    // yoga's own check would pipe it through a counting stream again, which costs more than the
    // mutation's storage work.
    maxRequestBodySize: false,
    maskedErrors: { maskError: (error) => maskError(error, logUnexpected) },
    // graphql-jit compiles each distinct operation once; paging 1,000 changes is mostly field
    // completion, which it makes several times cheaper.
    // Subscriptions over SSE keep yoga's executor: graphql-jit's subscribe path never emitted
    // (graphql-ws subscriptions are compiled separately, in shared-subscriptions.ts).
    plugins: [
      useGraphQlJit({}, { enableIf: (args) => getOperationAST(args.document, args.operationName)?.operation !== 'subscription' }),
      // Hostile operations are refused before they run (graphql-armor): too deep, too many
      // aliases, too costly, too long. Each is LIMIT_EXCEEDED (see useErrorCodes).
      maxTokensPlugin({ n: options.limits.queryTokensMax, onReject: [asLimitExceeded] }),
      maxDepthPlugin({ n: options.limits.queryDepthMax, ignoreIntrospection: true, flattenFragments: true, onReject: [asLimitExceeded] }),
      maxAliasesPlugin({ n: options.limits.queryAliasesMax, onReject: [asLimitExceeded] }),
      costLimitPlugin({ maxCost: options.limits.queryCostMax, ignoreIntrospection: true, onReject: [asLimitExceeded] }),
      ...(options.introspection ? [] : [useNoIntrospection()]),
      useErrorCodes(),
      useMetrics(metrics),
    ],
    // Requests are authenticated before yoga sees them (HTTP: `handle`; graphql-ws: onConnect),
    // which hands the result in; only a request that bypassed both (none should) gets here without.
    context: ({ access, source, requestId }: ServerContext) => {
      if (access === undefined) throw authError(new SyncError(ErrorCode.UNAUTHENTICATED, 'missing credentials'));
      return contextFor(access, source ?? 'unknown', requestId ?? newRequestId());
    },
  });

  let inFlight = 0;
  /** Requests in progress, so that shutdown can end long-lived ones (SSE subscriptions). */
  const active = new Set<AbortController>();
  let idle: (() => void) | undefined;
  let draining = false;

  // Connections per address: counted as they open; one over the limit is answered (HTTP 429, or a
  // refused WebSocket upgrade) and closed.
  const perAddress = new Map<string, number>();
  const overLimit = new WeakSet<object>();
  const onConnection = (socket: import('node:net').Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const count = (perAddress.get(address) ?? 0) + 1;
    perAddress.set(address, count);
    if (count > options.limits.connectionsPerAddressMax) overLimit.add(socket);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left === 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  };

  /**
   * Why the node should not get traffic yet (empty: ready). The store is open once the port is;
   * a cluster member also needs its cluster running and, in a cluster of several, a peer it can
   * reach (alone, it could not gather a write quorum).
   */
  const notReady = (): string[] => {
    if (draining) return ['draining'];
    if (options.cluster === undefined) return [];
    if (cluster === undefined) return ['cluster starting'];
    const nodes = cluster.nodes().filter((node) => node.status === 'active');
    if (nodes.length > 1 && !nodes.some((node) => !node.self && node.up)) return ['no peer reachable'];
    return [];
  };

  const listener: RequestListener = (req, res) => {
    inFlight++;
    // Every response names its request: the client's own id, or one made here. It goes along
    // to the peers a request reaches (cluster.ts), so one id finds a write in every node's log.
    const requestId = requestIdOf(req.headers['x-request-id'], newRequestId);
    res.setHeader('x-request-id', requestId);
    const started = log.isLevelEnabled('debug') ? performance.now() : 0;
    if (started !== 0) {
      res.once('finish', () => log.debug({ reqId: requestId, method: req.method, path: (req.url ?? '').split('?')[0], status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request'));
    }
    handle(req, res, requestId)
      .catch((error: unknown) => {
        log.error({ err: error, reqId: requestId }, 'request failed');
        if (!res.headersSent) sendError(res, 500, ErrorCode.INTERNAL_SERVER_ERROR, 'Unexpected error.');
        else res.destroy();
      })
      .finally(() => {
        inFlight--;
        if (inFlight === 0) idle?.();
      });
  };
  // With a certificate, the one port speaks TLS only: https, and wss for graphql-ws.
  const server: Server = options.tls
    ? createTlsServer({ cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }, listener)
    : createServer(listener);

  server.on(options.tls ? 'secureConnection' : 'connection', onConnection);

  const startedAt = new Date();
  /** What the admin page shows (server/admin-view.ts). */
  async function adminStatus(): Promise<AdminStatus> {
    const ids = await engine.partitionIds();
    const shown = ids.slice(0, 200).map((id) => ({
      id,
      replicas: cluster?.preferenceList(id) ?? [engine.nodeId],
      replica: cluster?.isReplica(id) ?? true,
      lag: cluster?.partitionLag(id) ?? {},
    }));
    return {
      nodeId: engine.nodeId,
      clusterNodeId: cluster?.nodeId ?? null,
      startedAt: startedAt.toISOString(),
      uptimeSeconds: (Date.now() - startedAt.getTime()) / 1000,
      replicas: cluster?.replicaCount ?? 1,
      writeQuorum: cluster?.writeQuorum ?? 1,
      members: cluster?.nodes() ?? [{ id: engine.nodeId, address: `${options.host}:${options.port}`, status: 'active', up: true, self: true }],
      handoff: cluster?.handoffProgress() ?? { pending: 0, moved: 0 },
      partitions: { total: ids.length, shown },
      totals: { changesApplied: await metrics.changesApplied(), subscriptionsLive: engine.subscriberCount },
    };
  }

  /** Streams a consistent snapshot of the whole store (storage/backup.ts), gzipped. */
  async function sendBackup(res: ServerResponse, requestId: string): Promise<void> {
    const createdAt = new Date().toISOString();
    res.writeHead(200, {
      'content-type': 'application/gzip',
      'content-disposition': `attachment; filename="syncgraph-${engine.nodeId}-${createdAt.replace(/[:.]/g, '-')}.ndjson.gz"`,
    });
    log.info({ reqId: requestId }, 'backup started');
    try {
      await pipeline(Readable.from(backupLines(store, { nodeId: engine.nodeId, createdAt })), createGzip(), res);
      log.info({ reqId: requestId }, 'backup sent');
    } catch (error) {
      // The client went away, or the node is closing: the partial file fails its trailer check.
      log.warn({ reqId: requestId, err: error }, 'backup cut short');
      res.destroy();
    }
  }

  /** An app or a bucket as NDJSON (server/export.ts). */
  async function sendExport(res: ServerResponse, app: string, bucket: string | null, requestId: string): Promise<void> {
    const lines = exportLines(engine, routerNow(), app, bucket);
    // The first line is made before the status goes out: a bad app or bucket name is a 400.
    let first: IteratorResult<string>;
    try {
      first = await lines.next();
    } catch (error) {
      const { code, message } = error instanceof SyncError ? error : { code: ErrorCode.INTERNAL_SERVER_ERROR, message: 'export failed' };
      return sendError(res, code === ErrorCode.INTERNAL_SERVER_ERROR ? 500 : 400, code, message);
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
    try {
      await pipeline(
        Readable.from((async function* () {
          if (first.done !== true) yield first.value;
          yield* lines;
        })()),
        res,
      );
    } catch (error) {
      log.warn({ reqId: requestId, err: error }, 'export cut short');
      res.destroy();
    }
  }

  async function receiveImport(req: IncomingMessage, res: ServerResponse, app: string, requestId: string): Promise<void> {
    req.setEncoding('utf8');
    try {
      const summary = await importLines(engine, routerNow(), app, splitLines(req as AsyncIterable<string>));
      log.info({ reqId: requestId, app, summary: { ...summary, problems: summary.problems.length } }, 'import done');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(summary));
    } catch (error) {
      req.resume();
      if (error instanceof ExportError || error instanceof BackupError) return sendError(res, 400, ErrorCode.INVALID_INPUT, error.message);
      if (error instanceof SyncError) return sendError(res, error.code === ErrorCode.UNAVAILABLE ? 503 : 400, error.code, error.message);
      throw error;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (overLimit.has(req.socket)) {
      req.resume();
      return sendError(res, 429, ErrorCode.LIMIT_EXCEEDED, `more than ${options.limits.connectionsPerAddressMax} connections from this address`, { connection: 'close' });
    }
    if (draining) return sendError(res, 503, ErrorCode.SHUTTING_DOWN, 'the node is shutting down', { connection: 'close' });
    if (url.pathname === '/health' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', nodeId: engine.nodeId, ...(cluster ? { clusterNodeId: cluster.nodeId } : {}) }));
      return;
    }
    if (url.pathname === '/ready' && req.method === 'GET') {
      const waiting = notReady();
      res.writeHead(waiting.length === 0 ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: waiting.length === 0 ? 'ready' : 'not ready', reasons: waiting }));
      return;
    }
    const secret = bearer(req.headers.authorization);
    const operator = adminCredential(req.headers.authorization, (key) => keyMatches(key, admin.key));
    if (url.pathname === '/metrics' && req.method === 'GET') {
      const allowed = operator || (secret !== undefined && options.metricsToken !== undefined && keyMatches(secret, options.metricsToken));
      if (!allowed) return sendError(res, 401, ErrorCode.UNAUTHENTICATED, 'metrics need the admin key or the metrics token', { 'www-authenticate': 'Bearer' });
      const body = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.contentType });
      res.end(body);
      return;
    }
    if (url.pathname === '/admin/') {
      res.writeHead(308, { location: '/admin' });
      res.end();
      return;
    }
    const page = ADMIN_PAGES[url.pathname];
    if (page !== undefined && req.method === 'GET') {
      if (!operator) {
        return sendError(res, 401, ErrorCode.UNAUTHENTICATED, 'the admin page needs the node admin key (as the password)', {
          'www-authenticate': 'Basic realm="syncgraph admin", charset="UTF-8"',
        });
      }
      const body = page === 'status' ? JSON.stringify(await adminStatus()) : page.body;
      res.writeHead(200, { ...ADMIN_HEADERS, 'content-type': page === 'status' ? 'application/json' : page.type });
      res.end(body);
      return;
    }
    if (url.pathname === '/admin/export' || url.pathname === '/admin/import') {
      if (!operator) return sendError(res, 401, ErrorCode.UNAUTHENTICATED, 'export and import need the node admin key', { 'www-authenticate': 'Bearer' });
      const app = url.searchParams.get('app');
      if (app === null || app === '') return sendError(res, 400, ErrorCode.INVALID_INPUT, 'name the app: ?app=ID');
      if (url.pathname === '/admin/export' && req.method === 'GET') return sendExport(res, app, url.searchParams.get('bucket'), requestId);
      if (url.pathname === '/admin/import' && req.method === 'POST') return receiveImport(req, res, app, requestId);
      return sendError(res, 405, ErrorCode.BAD_REQUEST, 'export is GET, import is POST');
    }
    if (url.pathname === '/admin/backup' && req.method === 'GET') {
      // Every app's data: the node's own admin key only.
      if (!operator) return sendError(res, 401, ErrorCode.UNAUTHENTICATED, 'a backup needs the node admin key', { 'www-authenticate': 'Bearer' });
      return sendBackup(res, requestId);
    }
    if (url.pathname !== '/graphql') return sendError(res, 404, ErrorCode.NOT_FOUND, `no route ${url.pathname}`);
    let access: Access | undefined;
    try {
      access = await authenticator.authenticate({
        authorization: req.headers.authorization,
        app: req.headers['x-syncgraph-app'],
        actAs: req.headers['x-syncgraph-user'],
      });
    } catch (error) {
      // GraphiQL's page itself needs no credentials (the operations it sends do), nor does a
      // CORS preflight (yoga answers it from the configured origins).
      const page = req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
      if (!(error instanceof SyncError) || !(page || req.method === 'OPTIONS')) {
        const { status, code, message } = authFailure(error);
        req.resume();
        return sendError(res, status, code, message, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      }
    }
    if (access !== undefined) {
      try {
        await quotas.request(access);
      } catch (error) {
        const { message } = authFailure(error);
        req.resume();
        return sendError(res, 429, ErrorCode.LIMIT_EXCEEDED, message);
      }
    }
    const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req, options.limits.requestBytesMax);
    if (body === TOO_LARGE) {
      return sendError(res, 413, ErrorCode.PAYLOAD_TOO_LARGE, `request body is larger than ${options.limits.requestBytesMax} bytes`, {
        connection: 'close',
      });
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    // A streamed response (subscriptions over SSE) must end when its client goes away; a
    // single result is better finished (a mutation's writes complete either way), and an abort
    // signal costs a few percent of a small request.
    const accept = req.headers.accept ?? '';
    const streamed = accept.includes('text/event-stream') || accept.includes('multipart/mixed');
    const abort = streamed ? new AbortController() : undefined;
    if (abort !== undefined) {
      active.add(abort);
      res.on('close', () => {
        active.delete(abort);
        // Only a response cut short is an abort (building the abort reason costs ~50 µs).
        if (!res.writableFinished) abort.abort();
      });
    }
    const release = holdSession(access, () => res.destroy());
    res.once('close', release);
    const serverContext: ServerContext = { source: req.socket.remoteAddress ?? 'unknown', requestId };
    if (access !== undefined) serverContext.access = access;
    const init: RequestInit = {
      method: req.method ?? 'GET',
      headers,
      // A view of the bytes read (Buffer.concat allocates a plain ArrayBuffer), not a copy.
      body: body === undefined ? null : new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.byteLength),
      ...(abort !== undefined ? { signal: abort.signal } : {}),
    };
    const response = await yoga.fetch(url.toString(), init, serverContext);
    await sendResponse(res, response);
  }

  const wsServer = new WebSocketServer({
    // Upgrades are routed by path below: /graphql here, /cluster to the peer transport.
    noServer: true,
    maxPayload: options.limits.requestBytesMax,
    // Our frames are written uncompressed (server/ws-outbox.ts).
    perMessageDeflate: false,
    verifyClient: (info, done) =>
      overLimit.has(info.req.socket) ? done(false, 429, `more than ${options.limits.connectionsPerAddressMax} connections from this address`) : done(true),
  });
  /** What each graphql-ws connection authenticated as (in onConnect), and where it comes from. */
  const connections = new WeakMap<object, { access: Access; source: string }>();
  const wsCleanup = serveGraphQLWs<Record<string, unknown> | undefined>(
    {
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        try {
          const access = await authenticator.authenticate({ authorization: params['authorization'], app: params['app'], actAs: params['user'] });
          // Read once: the address getter asks the kernel each time.
          connections.set(ctx.extra.socket, { access, source: ctx.extra.request.socket.remoteAddress ?? 'unknown' });
          const release = holdSession(access, () => ctx.extra.socket.close(4403, 'credential revoked or expired'));
          ctx.extra.socket.once('close', release);
          return true;
        } catch (error) {
          if (!(error instanceof SyncError)) throw error;
          return false;
        }
      },
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      // Encode once: subscribers running the same operation share each event's result.
      subscribe: async (args) => {
        const fields = countOperation(metrics, args.document, args.operationName);
        const result = await subscribeShared(args, { maskError: (error) => maskError(error, logUnexpected) });
        if ('errors' in result) countErrors(metrics, result.errors, fields);
        return result;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const connection = connections.get(ctx.extra.socket);
        const access = connection?.access;
        if (access !== undefined) {
          try {
            await quotas.request(access);
          } catch (error) {
            if (!(error instanceof SyncError)) throw error;
            return [new GraphQLError(error.message, { extensions: { code: error.code } })];
          }
        }
        // Named fields, not a spread of graphql-ws's context: this runs for every operation.
        const enveloped = yoga.getEnveloped({
          extra: ctx.extra,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          connectionParams: ctx.connectionParams ?? {},
          // graphql-ws only passes operations of connections that onConnect accepted.
          access,
          source: connection?.source ?? 'unknown',
          requestId: newRequestId(),
        });
        let document;
        try {
          document = enveloped.parse(payload.query);
        } catch (error) {
          return [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
        }
        const args = {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          // Queries and mutations run through yoga's enveloped execute; subscriptions through
          // subscribeShared (see `subscribe` above).
          rootValue: { execute: enveloped.execute },
        };
        const errors = enveloped.validate(args.schema, args.document);
        if (errors.length > 0) return errors;
        return args;
      },
    },
    wsServer,
    { onError: (err, what) => log.error({ err }, what), encodePayload: encodeSharedResult },
  );

  server.on('upgrade', (req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/graphql') wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit('connection', ws, req));
    else if (path === '/cluster' && transport !== undefined) transport.handleUpgrade(req, socket, head);
    else {
      socket.write('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  if (options.cluster !== undefined && transport !== undefined) {
    const address = options.cluster.advertise ?? `${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
    cluster = new Cluster(
      engine,
      transport,
      realTimers,
      {
        nodeId: options.cluster.nodeId,
        address,
        ...(options.cluster.replicas !== undefined ? { replicas: options.cluster.replicas } : {}),
        ...(options.cluster.writeQuorum !== undefined ? { writeQuorum: options.cluster.writeQuorum } : {}),
        ...(options.cluster.heartbeatMs !== undefined ? { heartbeatMs: options.cluster.heartbeatMs } : {}),
        ...(options.cluster.suspectAfterMs !== undefined ? { suspectAfterMs: options.cluster.suspectAfterMs } : {}),
        ...(options.cluster.antiEntropyMs !== undefined ? { antiEntropyMs: options.cluster.antiEntropyMs } : {}),
        ...(options.cluster.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.cluster.requestTimeoutMs } : {}),
        ...(options.cluster.writeTimeoutMs !== undefined ? { writeTimeoutMs: options.cluster.writeTimeoutMs } : {}),
      },
      peerLog,
    );
    cluster.dialer = (peer) => transport.dial(peer);
    // The member list survives restarts (written whenever it changes; a lost write only means
    // relearning it from the peers).
    const remembered = await store.get(MEMBERS_KEY);
    if (remembered !== undefined) cluster.restoreMembers(JSON.parse(remembered) as MemberList);
    let saving = Promise.resolve();
    cluster.onMembersChanged = (members) => {
      saving = saving
        .then(() => store.write([{ type: 'put', key: MEMBERS_KEY, value: JSON.stringify(members) }], { sync: false }))
        .catch((error: unknown) => peerLog.warn({ err: error }, 'could not save the member list'));
    };
    if (directoryStore !== undefined) cluster.attachDirectory(directoryStore);
    cluster.onRepair = (peer, direction) => metrics.repairs.inc({ peer, direction });
    cluster.onRound = () => metrics.rounds.inc();
    const running = cluster;
    metrics.attach({ peers: () => running.peerStats() });
    cluster.start();
    transport.start();
  }
  log.info({ url: `${url}/graphql`, nodeId: engine.nodeId, clusterNodeId: options.cluster?.nodeId, dataDir: options.dataDir }, 'syncgraph listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      log.info('shutting down: finishing in-flight requests');
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // In-flight mutations finish (their writes become durable); then live clients are told.
      // Long-lived responses (subscriptions over SSE) are ended after a grace period.
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (idle = resolve)),
          new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref()),
        ]);
      }
      for (const abort of active) abort.abort();
      await wsCleanup.dispose('server shutting down');
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
      clearInterval(historyTimer);
      await collecting;
      await cluster?.stop();
      await transport?.close();
      server.closeAllConnections();
      await stopped;
      await engine.close();
      log.info('shut down cleanly');
    })());

  return { url, port, nodeId: engine.nodeId, cluster, adminKey: admin.key, adminKeyGenerated: admin.generated, options, logger: log, close };
}

interface Enveloped {
  execute: (args: ExecutionArgs) => OperationResult;
}

const TOO_LARGE = Symbol('too large');

/** The admin page's files, by path; `status` is made per request. */
const ADMIN_PAGES: Record<string, { type: string; body: string } | 'status' | undefined> = {
  '/admin': { type: 'text/html; charset=utf-8', body: ADMIN_HTML },
  '/admin/admin.js': { type: 'text/javascript; charset=utf-8', body: ADMIN_JS },
  '/admin/admin.css': { type: 'text/css; charset=utf-8', body: ADMIN_CSS },
  '/admin/status.json': 'status',
};

/** This node's view of the cluster's members (replication/membership.ts). */
const MEMBERS_KEY = 'cluster!members';

async function readBody(req: IncomingMessage, bytesMax: number): Promise<Buffer | typeof TOO_LARGE> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > bytesMax) {
    req.resume();
    return TOO_LARGE;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > bytesMax) {
      req.resume();
      return TOO_LARGE;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function sendResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    const existing = headers[name];
    headers[name] = existing === undefined ? value : ([] as string[]).concat(existing, value);
  });
  res.writeHead(response.status, headers);
  if (response.body === null) {
    res.end();
    return;
  }
  // Yoga's streams are its own ReadableStream implementation: read through the standard reader.
  const reader = response.body.getReader();
  // A client that goes away ends the stream (and the subscription behind it), signal or not.
  res.once('close', () => {
    if (!res.writableFinished) reader.cancel().catch(() => undefined);
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || res.destroyed) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
      }
    }
  } finally {
    reader.releaseLock();
  }
  res.end();
}

/** What our HTTP bridge hands yoga with each request (graphql-ws passes the same in getEnveloped). */
type ServerContext = {
  access?: Access;
  source?: string;
  requestId?: string;
};

/** A client's own request id (`x-request-id`), when it is a reasonable one; else a new one. */
function requestIdOf(header: string | string[] | undefined, fresh: () => string): string {
  return typeof header === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(header) ? header : fresh();
}

/**
 * Where secrets could sit in what is logged: credentials in headers and connection parameters,
 * passwords, tokens and keys under their usual names. Messages never quote them (tested).
 */
export const LOG_REDACT = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'connectionParams',
  'password',
  '*.password',
  'token',
  '*.token',
  'adminKey',
  '*.adminKey',
  'clusterKey',
  '*.clusterKey',
  'metricsToken',
  '*.metricsToken',
];

/** Refuses introspection queries (graphql-js's own validation rule). */
function useNoIntrospection(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}

/** graphql-armor's refusals are ours: LIMIT_EXCEEDED (it would say BAD_REQUEST). */
function asLimitExceeded(_: unknown, error: GraphQLError): void {
  (error.extensions as Record<string, unknown>)['code'] = ErrorCode.LIMIT_EXCEEDED;
}

/** HTTP status, code and message for a failed authentication. */
function authFailure(error: unknown): { status: number; code: ErrorCode; message: string } {
  if (!(error instanceof SyncError)) throw error;
  const status = error.code === ErrorCode.UNAUTHENTICATED ? 401 : error.code === ErrorCode.FORBIDDEN ? 403 : 400;
  return { status, code: error.code, message: error.message };
}

function authError(error: SyncError): GraphQLError {
  return new GraphQLError(error.message, { extensions: { code: error.code, http: { status: authFailure(error).status } } });
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string, extraHeaders: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...extraHeaders });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
}
