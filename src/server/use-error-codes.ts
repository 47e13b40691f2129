/**
 * Every error a client can receive carries a stable `extensions.code`. graphql-js and yoga raise
 * some without one (syntax errors, validation failures, bad variables, malformed HTTP requests):
 * this plugin names them, by the phase they come from, never by their message.
 */
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../model/errors.js';
import { hasCode, withCode } from './errors.js';

function codeAll(errors: readonly Error[], code: ErrorCode): GraphQLError[] {
  return errors.map((e) => withCode(e instanceof GraphQLError ? e : new GraphQLError(e.message, { originalError: e }), code));
}

export function useErrorCodes(): Plugin {
  return {
    onParse() {
      return ({ result, replaceParseResult }) => {
        if (result instanceof GraphQLError) replaceParseResult(withCode(result, ErrorCode.GRAPHQL_PARSE_FAILED));
        else if (result instanceof Error) {
          // Not a syntax error: the parser ran out of stack on a deeply nested document. Say so
          // without echoing the internal error.
          replaceParseResult(
            new GraphQLError('the document is nested too deeply to parse', { extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED } }),
          );
        }
      };
    },
    onValidate() {
      return ({ result, setResult }) => {
        if (result.length > 0) setResult(codeAll(result, ErrorCode.GRAPHQL_VALIDATION_FAILED));
      };
    },
    onExecute() {
      return {
        onExecuteDone({ result, setResult }) {
          // Errors of execution without a path are about the request's variables.
          if (!('errors' in result) || !needsCodes(result)) return;
          const errors = result.errors.map((e: unknown) =>
            e instanceof GraphQLError && e.path === undefined ? withCode(e, ErrorCode.BAD_USER_INPUT) : e,
          );
          setResult({ ...result, errors } as typeof result);
        },
      };
    },
    onResultProcess({ result, setResult }) {
      const results = Array.isArray(result) ? result : [result];
      if (!results.some(needsCodes)) return;
      const fixed = results.map((r) => (needsCodes(r) ? { ...r, errors: r.errors.map(nameRequestError) } : r));
      setResult((Array.isArray(result) ? fixed : fixed[0]) as typeof result);
    },
  };
}

function needsCodes(value: unknown): value is { errors: unknown[] } {
  if (typeof value !== 'object' || value === null) return false;
  const errors = (value as { errors?: unknown }).errors;
  return Array.isArray(errors) && errors.some((e) => e instanceof GraphQLError && !hasCode(e));
}

/**
 * What is still without a code at the end never reached execution: a malformed HTTP request that
 * yoga rejected.
 */
function nameRequestError(error: unknown): unknown {
  if (!(error instanceof GraphQLError) || hasCode(error)) return error;
  return withCode(error, error.path !== undefined ? ErrorCode.INTERNAL_SERVER_ERROR : ErrorCode.BAD_REQUEST);
}
