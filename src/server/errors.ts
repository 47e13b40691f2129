/**
 * Errors at the GraphQL edge. Domain errors (SyncError) keep their code as `extensions.code`;
 * anything else is a system error: logged in full, shown only as INTERNAL_SERVER_ERROR.
 */
import { GraphQLError } from 'graphql';
import { ErrorCode, isSyncError, type SyncError } from '../model/errors.js';

export function toGraphQLError(error: SyncError, source?: GraphQLError): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: source?.nodes,
    source: source?.source,
    positions: source?.positions,
    path: source?.path,
    extensions: { code: error.code },
  });
}

export function hasCode(error: GraphQLError): boolean {
  return typeof error.extensions?.['code'] === 'string';
}

export function withCode(error: GraphQLError, code: ErrorCode): GraphQLError {
  if (hasCode(error)) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code },
  });
}

/**
 * Yoga's `maskError`: called for errors raised while executing. `log` receives system errors.
 */
export function maskError(error: unknown, log: (error: unknown) => void): GraphQLError {
  const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  if (isSyncError(original)) return toGraphQLError(original, error instanceof GraphQLError ? error : undefined);
  if (original instanceof GraphQLError && hasCode(original)) {
    return error instanceof GraphQLError && error !== original ? withCode(error, original.extensions['code'] as ErrorCode) : original;
  }
  if (error instanceof GraphQLError && error.originalError === undefined) return error;
  // graphql-js's own errors (e.g. a variable that does not coerce) are the caller's mistake.
  if (error instanceof GraphQLError && original instanceof GraphQLError) return withCode(error, ErrorCode.BAD_USER_INPUT);
  log(error);
  return new GraphQLError('Unexpected error.', {
    nodes: error instanceof GraphQLError ? error.nodes : undefined,
    path: error instanceof GraphQLError ? error.path : undefined,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  });
}
