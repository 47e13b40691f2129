/**
 * Subscription execution that encodes a change once, not once per subscriber.
 *
 * graphql-js's `subscribe` executes the selection set again for every event and every
 * subscriber. When a thousand devices watch one bucket with the same query, those executions are
 * identical: the event is one shared view (engine/records.ts) and, when the selection below the
 * root field uses no variables, nothing else goes in. So results are memoised per (event object,
 * operation) and the same ExecutionResult is handed to every subscriber. Selections that use
 * variables (or fragments that do) are executed per subscriber, as usual.
 *
 * Assumes, as holds for the Subscription fields of our schema, that fields below the root field
 * do not depend on the context (the caller): the root field's subscribe resolver decides what a
 * caller may see, the selection only shapes it.
 */
import {
  createSourceEventStream,
  execute as graphqlExecute,
  getOperationAST,
  Kind,
  visit,
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLError,
} from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { LATER, mapAsyncIterator } from '../engine/async-map.js';
import { isShared } from '../engine/live-feed.js';

export interface SharedSubscribeOptions {
  /** Turns errors (bad cursor, bad bucket, a failing field...) into client errors. */
  maskError: (error: unknown) => GraphQLError;
}

/** Result of `subscribe`: a stream of results, or the errors that prevented it. */
export type SubscribeResult = AsyncGenerator<ExecutionResult, void, undefined> | ExecutionResult;

const memo = new WeakMap<object, Map<string, ExecutionResult | Promise<ExecutionResult>>>();
/** Results handed to several subscribers, and their JSON once computed. */
const shared = new WeakSet<ExecutionResult>();
const encoded = new WeakMap<ExecutionResult, string>();

/**
 * The JSON of a shared result, computed once for all its subscribers; undefined for results that
 * are not shared (the caller encodes those as usual).
 */
export function encodeSharedResult(result: unknown): string | undefined {
  if (typeof result !== 'object' || result === null || !shared.has(result as ExecutionResult)) return undefined;
  let json = encoded.get(result as ExecutionResult);
  if (json === undefined) {
    json = JSON.stringify(result);
    encoded.set(result as ExecutionResult, json);
  }
  return json;
}

/**
 * The stream of results is Pushable (engine/async-map.ts) when its source is: a shared result is
 * then handed over synchronously, executed on the spot if it is the first subscriber's, as long
 * as the execution completes synchronously (graphql-jit does for our synchronous fields).
 */
export async function subscribeShared(args: ExecutionArgs, options: SharedSubscribeOptions): Promise<SubscribeResult> {
  // The subscription operation executed with the event as root value, which is what graphql-js's
  // `subscribe` does for each event; compiled by graphql-jit once per operation (a catch-up
  // replays thousands of events through it), with errors masked as yoga masks them.
  const compiled = compiledFor(args);
  const mask = (result: ExecutionResult): ExecutionResult =>
    result.errors ? { ...result, errors: result.errors.map((e) => options.maskError(e)) } : result;
  const execute = (eventArgs: ExecutionArgs): ExecutionResult | Promise<ExecutionResult> => {
    const result = compiled
      ? compiled.query(eventArgs.rootValue, eventArgs.contextValue, eventArgs.variableValues)
      : graphqlExecute(eventArgs);
    return isPromise(result) ? result.then(mask) : mask(result);
  };
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) {
    return { errors: (source.errors ?? []).map((e) => options.maskError(e)) };
  }
  const key = shareKey(args.document, args.operationName ?? undefined);
  /** The memoised result of an event, executing it if nobody has yet. */
  const sharedResult = (event: object, payload: unknown): ExecutionResult | Promise<ExecutionResult> => {
    let results = memo.get(event);
    if (results === undefined) memo.set(event, (results = new Map()));
    let result = results.get(key!);
    if (result === undefined) {
      const executed = execute({ ...args, rootValue: payload });
      if (isPromise(executed)) {
        result = executed.then((r) => {
          shared.add(r);
          results.set(key!, r);
          return r;
        });
      } else {
        shared.add(executed);
        result = executed;
      }
      results.set(key!, result);
    }
    return result;
  };
  return mapAsyncIterator(
    source[Symbol.asyncIterator](),
    (payload: unknown) => {
      const event = firstValue(payload);
      if (key === undefined || event === undefined || !isShared(event)) return execute({ ...args, rootValue: payload });
      return sharedResult(event, payload);
    },
    (payload: unknown) => {
      // A change is pushed to its subscribers one after the other, with one payload object
      // (resolvers/subscription.ts): the last shared result is the next one asked for.
      if (payload === lastShared.payload && key === lastShared.key && key !== undefined) return lastShared.result!;
      const event = firstValue(payload);
      const shareable = key !== undefined && event !== undefined && isShared(event);
      // Executing has no side effects: if it turns out asynchronous, pull executes it again.
      const result = shareable ? sharedResult(event, payload) : execute({ ...args, rootValue: payload });
      if (!isPromise(result)) {
        if (shareable) {
          lastShared.payload = payload;
          lastShared.key = key;
          lastShared.result = result;
        }
        return result;
      }
      result.catch(() => undefined);
      return LATER;
    },
    // Fused (async-map.ts): one step for every subscriber of this operation, whichever of them
    // made it, since a shared result is the same for all. A record only one subscriber sees is
    // not shared: it takes the push path, executed for that subscriber.
    key === undefined
      ? undefined
      : {
          key: `operation ${key}`,
          map: (payload: unknown) => {
            const event = firstValue(payload);
            if (event === undefined || !isShared(event)) return LATER;
            const result = sharedResult(event, payload);
            if (!isPromise(result)) return result;
            result.catch(() => undefined);
            return LATER;
          },
        },
  );
}

/** The last shared result pushed, by payload object and operation (see the push mapping above). */
const lastShared: { payload: unknown; key: string | undefined; result: ExecutionResult | undefined } = {
  payload: undefined,
  key: undefined,
  result: undefined,
};

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

const compiledQueries = new WeakMap<DocumentNode, Map<string, CompiledQuery | null>>();

function compiledFor(args: ExecutionArgs): CompiledQuery | undefined {
  let byName = compiledQueries.get(args.document);
  if (byName === undefined) compiledQueries.set(args.document, (byName = new Map()));
  const name = args.operationName ?? '';
  let compiled = byName.get(name);
  if (compiled === undefined) {
    const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
    // Not compilable (graphql-jit refuses some documents): fall back to graphql-js.
    compiled = isCompiledQuery(result) ? result : null;
    byName.set(name, compiled);
  }
  return compiled ?? undefined;
}

function firstValue(payload: unknown): object | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  for (const key in payload) {
    const value = (payload as Record<string, unknown>)[key];
    return typeof value === 'object' && value !== null ? value : undefined;
  }
  return undefined;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

const keys = new WeakMap<DocumentNode, Map<string, string | null>>();

/**
 * The memo key of an operation, or undefined when its result may depend on variables: any
 * variable outside the root fields' own arguments (in their selections, their directives, or any
 * fragment) makes the selection per-subscriber.
 */
export function shareKey(document: DocumentNode, operationName: string | undefined): string | undefined {
  let byName = keys.get(document);
  if (byName === undefined) keys.set(document, (byName = new Map()));
  const cached = byName.get(operationName ?? '');
  if (cached !== undefined) return cached ?? undefined;
  const operation = getOperationAST(document, operationName);
  let key: string | null = null;
  if (operation && operation.loc) {
    const dependent = operation.selectionSet.selections.some(
      (root) =>
        usesVariables(root.directives ?? []) ||
        (root.kind === Kind.FIELD ? root.selectionSet !== undefined && usesVariables(root.selectionSet) : usesVariables(root)),
    );
    const fragmentsDependent = document.definitions.some((d) => d.kind === Kind.FRAGMENT_DEFINITION && usesVariables(d));
    if (!dependent && !fragmentsDependent) key = `${operationName ?? ''}\u0000${operation.loc.source.body}`;
  }
  byName.set(operationName ?? '', key);
  return key ?? undefined;
}

function usesVariables(node: ASTNode | readonly ASTNode[]): boolean {
  let found = false;
  const visitor = {
    Variable() {
      found = true;
    },
  };
  for (const n of Array.isArray(node) ? node : [node]) visit(n as ASTNode, visitor);
  return found;
}
