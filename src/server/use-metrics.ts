/**
 * Counts GraphQL operations and the errors they answer (server/metrics.ts), by root field: the
 * label values are schema field names, a closed set, whatever the client sends.
 */
import { getOperationAST, GraphQLError, Kind, type DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Metrics } from './metrics.js';

/** The root fields an operation selects (aliases resolved to field names; `__typename` left out). */
export function rootFields(document: DocumentNode, operationName?: string | null): { type: string; fields: string[] } | undefined {
  const operation = getOperationAST(document, operationName ?? undefined);
  if (operation === null || operation === undefined) return undefined;
  const fields = new Set<string>();
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind === Kind.FIELD && selection.name.value !== '__typename') fields.add(selection.name.value);
  }
  return { type: operation.operation, fields: [...fields] };
}

/** Counts an operation about to run, once per root field. */
export function countOperation(metrics: Metrics, document: DocumentNode, operationName?: string | null): string[] {
  const root = rootFields(document, operationName);
  if (root === undefined) return [];
  for (const field of root.fields) metrics.operations.inc({ operation: field, type: root.type });
  return root.fields;
}

/** Counts the errors of a result: under the root field of their path, else the operation's first. */
export function countErrors(metrics: Metrics, errors: readonly unknown[] | undefined, fields: readonly string[], defaultCode = 'INTERNAL_SERVER_ERROR'): void {
  if (errors === undefined) return;
  for (const error of errors) {
    const graphqlError = error instanceof GraphQLError ? error : undefined;
    const head = graphqlError?.path?.[0];
    const operation = typeof head === 'string' && fields.includes(head) ? head : (fields[0] ?? 'none');
    const code = graphqlError?.extensions?.['code'];
    metrics.errors.inc({ operation, code: typeof code === 'string' ? code : defaultCode });
  }
}

export function useMetrics(metrics: Metrics): Plugin {
  return {
    onExecute({ args }) {
      const fields = countOperation(metrics, args.document, args.operationName);
      return {
        onExecuteDone({ result }) {
          if ('errors' in result) countErrors(metrics, result.errors, fields);
        },
      };
    },
    onSubscribe({ args }) {
      const fields = countOperation(metrics, args.document, args.operationName);
      return {
        onSubscribeResult({ result }) {
          if ('errors' in result) countErrors(metrics, result.errors, fields);
        },
      };
    },
    // Requests refused before execution (unparsable, invalid, over a limit) have no root field
    // to count under: `none`.
    onValidate() {
      return ({ result }) => countErrors(metrics, result, [], 'GRAPHQL_VALIDATION_FAILED');
    },
    onParse() {
      return ({ result }) => {
        if (result instanceof Error) countErrors(metrics, [result], [], 'GRAPHQL_PARSE_FAILED');
      };
    },
  };
}
