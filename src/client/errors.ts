/**
 * The client's errors: the server's codes (model/errors.ts, one vocabulary on both sides) plus
 * the two that only a client can meet. Branch on `code`, never on messages.
 */
import { ErrorCode } from '../model/errors.js';

export const ClientErrorCode = {
  ...ErrorCode,
  /** The server could not be reached, or the connection was lost (retried with backoff). */
  NETWORK_ERROR: 'NETWORK_ERROR',
  /** The client was closed. */
  CLIENT_CLOSED: 'CLIENT_CLOSED',
  /** An app callback (onConflict) threw; the SDK went on without its answer. */
  CALLBACK_FAILED: 'CALLBACK_FAILED',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isClientError(error: unknown): error is ClientError {
  return error instanceof ClientError;
}

/** Anything thrown at the client's edges as a ClientError (unknown failures are network ones). */
export function toClientError(error: unknown): ClientError {
  if (error instanceof ClientError) return error;
  if (error instanceof Error && 'code' in error && typeof error.code === 'string' && error.code in ClientErrorCode) {
    return new ClientError(error.code as ClientErrorCode, error.message, { cause: error });
  }
  return new ClientError(ClientErrorCode.NETWORK_ERROR, error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * Request-level failures that may pass on their own (the network, a draining or overloaded node,
 * an expired token that the token function will refresh). The others need the app: retrying
 * them on a timer would only repeat the refusal.
 */
const RETRYABLE: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  ClientErrorCode.NETWORK_ERROR,
  ClientErrorCode.UNAVAILABLE,
  ClientErrorCode.SHUTTING_DOWN,
  ClientErrorCode.LIMIT_EXCEEDED,
  ClientErrorCode.SLOW_CONSUMER,
  ClientErrorCode.UNAUTHENTICATED,
  ClientErrorCode.INTERNAL_SERVER_ERROR,
]);

export function isRetryable(error: ClientError): boolean {
  return RETRYABLE.has(error.code);
}
