/**
 * Baseline: a bare graphql-yoga + graphql-ws server, run as its own process:
 *
 *   node dist/bench/baselines/bare-server.js --port 0 --key <token>
 *
 * It serves the same operations as syncgraph (same shapes, so the bench sends identical
 * documents) with no storage at all: `submitChanges` returns a constant result per change,
 * `publish` hands each change to an in-memory pubsub (graphql-yoga's `createPubSub`, an
 * EventTarget), and the `changes` subscription is that pubsub's async iterator: the naive fanout
 * of a typical yoga app. HTTP stack as in the yoga docs: `createServer(yoga)` on node:http, a
 * `ws` WebSocketServer on the same port and graphql-ws's `useServer` with yoga's envelop.
 * Prints `{"msg":"bare server listening","url":"http://127.0.0.1:PORT/graphql"}` when ready.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError, GraphQLScalarType, valueFromASTUntyped, type ExecutionArgs } from 'graphql';
import type { OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(name);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

const port = Number(argument('--port', '0'));
const key = argument('--key', 'bench');

const typeDefs = /* GraphQL */ `
  scalar JSON
  scalar Cursor
  enum ChangeOp { MODIFY DELETE EMPTY DROP }
  enum SyncErrorCode { BAD_VERSION INVALID_PERMISSION MISSING_ENTITY INVALID_INPUT }
  type SyncError { code: SyncErrorCode! message: String! }
  type Change { id: ID! ccid: ID! bucket: String! key: ID op: ChangeOp! version: Int data: JSON cursor: Cursor! }
  type ChangeResult { ccid: ID! change: Change error: SyncError duplicate: Boolean! noop: Boolean! }
  input ChangeInput { ccid: ID! key: ID op: ChangeOp! baseVersion: Int data: JSON diff: JSON }
  type Bucket { name: String! changesCursor: Cursor! }
  type Query { bucket(name: String!): Bucket! }
  type Mutation {
    submitChanges(bucket: String!, clientId: String, changes: [ChangeInput!]!): [ChangeResult!]!
    publish(bucket: String!, changes: [ChangeInput!]!): Int!
  }
  type Subscription { changes(bucket: String!, since: Cursor): Change! }
`;

interface ChangeInput {
  ccid: string;
  key?: string | null;
  op: string;
  data?: unknown;
}

interface ChangeEvent {
  id: string;
  ccid: string;
  bucket: string;
  key: string | null;
  op: string;
  version: number;
  data: unknown;
  cursor: string;
}

const CONSTANT_CHANGE = {
  id: '0190a5d2-0000-7000-8000-000000000000',
  ccid: '0',
  bucket: 'bench',
  key: 'k',
  op: 'MODIFY',
  version: 1,
  data: null,
  cursor: 'c1.constant',
};

const passThrough = (name: string) =>
  new GraphQLScalarType({ name, serialize: (v) => v, parseValue: (v) => v, parseLiteral: (node, vars) => valueFromASTUntyped(node, vars) });

const pubSub = createPubSub<{ changes: [bucket: string, change: ChangeEvent] }>();

const schema = createSchema({
  typeDefs,
  resolvers: {
    JSON: passThrough('JSON'),
    Cursor: passThrough('Cursor'),
    Query: {
      bucket: (_: unknown, { name }: { name: string }) => ({ name, changesCursor: 'c1.constant' }),
    },
    Mutation: {
      // Does nothing: one constant result per change (the ccid echoed, as the field is required).
      submitChanges: (_: unknown, { changes }: { changes: ChangeInput[] }) =>
        changes.map((c) => ({ ccid: c.ccid, change: CONSTANT_CHANGE, error: null, duplicate: false, noop: false })),
      publish: (_: unknown, { bucket, changes }: { bucket: string; changes: ChangeInput[] }) => {
        for (const c of changes) {
          pubSub.publish('changes', bucket, {
            id: CONSTANT_CHANGE.id,
            ccid: c.ccid,
            bucket,
            key: c.key ?? null,
            op: c.op,
            version: 1,
            data: c.data ?? null,
            cursor: 'c1.constant',
          });
        }
        return changes.length;
      },
    },
    Subscription: {
      changes: {
        subscribe: (_: unknown, { bucket }: { bucket: string }) => pubSub.subscribe('changes', bucket),
        resolve: (change: ChangeEvent) => change,
      },
    },
  },
});

const authorised = (authorization: unknown) => authorization === `Bearer ${key}`;

const yoga = createYoga({
  schema,
  graphqlEndpoint: '/graphql',
  landingPage: false,
  logging: false,
  context: ({ request, connectionParams }: { request?: Request; connectionParams?: Record<string, unknown> }) => {
    const authorization = connectionParams !== undefined ? connectionParams['authorization'] : request?.headers.get('authorization');
    if (!authorised(authorization)) throw new GraphQLError('unauthorised', { extensions: { http: { status: 401 } } });
    return {};
  },
});

interface Enveloped {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}

const server = createServer(yoga);
const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });

useServer<Record<string, unknown> | undefined, { socket: unknown; request: unknown }>(
  {
    onConnect: (ctx) => authorised(ctx.connectionParams?.['authorization']),
    execute: (args) => (args.rootValue as Enveloped).execute(args),
    subscribe: (args) => (args.rootValue as Enveloped).subscribe(args),
    onSubscribe: async (ctx, _id, payload) => {
      const enveloped = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params: payload,
        connectionParams: ctx.connectionParams ?? {},
      });
      const args = {
        schema: enveloped.schema,
        operationName: payload.operationName,
        document: enveloped.parse(payload.query),
        variableValues: payload.variables,
        contextValue: await enveloped.contextFactory(),
        rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
      };
      const errors = enveloped.validate(args.schema, args.document);
      if (errors.length > 0) return errors;
      return args;
    },
  },
  wsServer,
);

server.listen(port, '127.0.0.1', () => {
  const address = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'bare server listening', url: `http://127.0.0.1:${address.port}/graphql` })}\n`);
});

const stop = () => {
  for (const client of wsServer.clients) client.terminate();
  wsServer.close();
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
