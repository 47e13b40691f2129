/**
 * The one error vocabulary of syncgraph. Codes are stable and part of the API: clients branch on
 * them, never on messages ("codes will not change, messages will", as abstract-level puts it).
 */
export const ErrorCode = {
  // Per-change outcomes, returned as `SyncError` data (schema enum SyncErrorCode).
  BAD_VERSION: 'BAD_VERSION',
  INVALID_PERMISSION: 'INVALID_PERMISSION',
  MISSING_ENTITY: 'MISSING_ENTITY',
  INVALID_INPUT: 'INVALID_INPUT',
  // Request-level failures, returned as GraphQL errors with `extensions.code`.
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  INVALID_CURSOR: 'INVALID_CURSOR',
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  SLOW_CONSUMER: 'SLOW_CONSUMER',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  BAD_REQUEST: 'BAD_REQUEST',
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  NOT_FOUND: 'NOT_FOUND',
  /** Not enough replicas answered in time: the change may have been applied; retry with the same ccid. */
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The subset of codes that describe why one change or event was refused. */
export type ChangeErrorCode =
  | typeof ErrorCode.BAD_VERSION
  | typeof ErrorCode.INVALID_PERMISSION
  | typeof ErrorCode.MISSING_ENTITY
  | typeof ErrorCode.INVALID_INPUT;

/**
 * A domain error: expected, caused by the caller, safe to show. Anything that is not a SyncError
 * is a system error and is masked as INTERNAL_SERVER_ERROR at the edge.
 */
export class SyncError extends Error {
  override readonly name = 'SyncError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function isSyncError(error: unknown): error is SyncError {
  return error instanceof SyncError;
}

/** Shorthand for the most common domain error. */
export function invalidInput(message: string): SyncError {
  return new SyncError(ErrorCode.INVALID_INPUT, message);
}
