/**
 * The JSON and Cursor scalars. JSON accepts any JSON value (inline literals too); the engine checks
 * shape, depth and size where it knows the limits. A Cursor is an opaque string; the engine
 * decodes it against the bucket it is used with.
 */
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { cursorLengthMax } from '../model/cursor.js';
import { ErrorCode } from '../model/errors.js';

/**
 * A JSON literal written in the query. Variables inside it are refused: pass the whole value as
 * one variable instead. (graphql-jit, which executes our operations, cannot pass variables to a
 * scalar's parseLiteral, so accepting them would work under one executor and not the other.)
 */
function literalToJson(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return node.values.map((v) => literalToJson(v));
    case Kind.OBJECT: {
      const out: Record<string, unknown> = {};
      for (const field of node.fields) out[field.name.value] = literalToJson(field.value);
      return out;
    }
    case Kind.VARIABLE:
      throw new GraphQLError('a JSON literal cannot contain variables: pass the whole value as one variable', {
        extensions: { code: ErrorCode.BAD_USER_INPUT },
      });
    case Kind.ENUM:
      return node.value;
  }
}

export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (node) => literalToJson(node),
});

function parseCursor(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > cursorLengthMax) {
    throw new GraphQLError('Cursor must be a cursor string returned by this API', {
      extensions: { code: ErrorCode.INVALID_CURSOR },
    });
  }
  return value;
}

export const CursorScalar = new GraphQLScalarType({
  name: 'Cursor',
  serialize: (value) => value,
  parseValue: parseCursor,
  parseLiteral: (node) => parseCursor(node.kind === Kind.STRING ? node.value : undefined),
});
