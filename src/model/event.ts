/**
 * Simple Sync events (../shared/seeds/simple-sync.txt). `validateEvent` checks rules 2 to 7 of
 * its list; rule 1 (the ACL) is an authorization decision and is made by the caller.
 */
import { ErrorCode, SyncError, type ChangeErrorCode } from './errors.js';
import { isJsonObject, utf8Length } from './json.js';

export interface EventInput {
  uuid: string;
  timestamp: string;
  user: string;
  item: string;
  action: string;
  payload: string;
}

/** A validated event, uuid in canonical lower case. */
export type ValidEvent = EventInput;

export interface EventLimits {
  /** Longest user, item or action. @default 256 */
  nameLengthMax: number;
  /** Largest payload, in UTF-8 bytes. @default 65536 */
  payloadBytesMax: number;
  /** How far in the future a timestamp may be (clock skew allowance). @default 86_400_000 (one day) */
  futureMsMax: number;
}

export const defaultEventLimits: EventLimits = { nameLengthMax: 256, payloadBytesMax: 65_536, futureMsMax: 86_400_000 };

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UINT = /^(0|[1-9][0-9]*)$/;
const NAME = /^[A-Za-z0-9./:_-]+$/;
const UINT64_MAX = (1n << 64n) - 1n;

function refuse(code: ChangeErrorCode, message: string): SyncError {
  return new SyncError(code, message);
}

/** The millisecond timestamp embedded in the first 48 bits of a UUIDv7. */
export function uuidV7Millis(uuid: string): bigint {
  return BigInt('0x' + uuid.slice(0, 8) + uuid.slice(9, 13));
}

/**
 * Validates one event. `nowMs` is passed in (no clock in the model) to refuse timestamps more
 * than `futureMsMax` ahead, as Simple Sync does.
 */
export function validateEvent(input: EventInput, nowMs: number, limits: EventLimits = defaultEventLimits): ValidEvent {
  const uuid = input.uuid.toLowerCase();
  if (!UUID_V7.test(uuid)) throw refuse(ErrorCode.INVALID_INPUT, 'uuid must be a UUIDv7');
  if (!UINT.test(input.timestamp) || BigInt(input.timestamp) > UINT64_MAX) {
    throw refuse(ErrorCode.INVALID_INPUT, 'timestamp must be an unsigned 64-bit integer of milliseconds');
  }
  const timestamp = BigInt(input.timestamp);
  if (timestamp !== uuidV7Millis(uuid)) {
    throw refuse(ErrorCode.INVALID_INPUT, "timestamp must equal the uuid's embedded time");
  }
  if (timestamp > BigInt(Math.floor(nowMs)) + BigInt(limits.futureMsMax)) {
    throw refuse(ErrorCode.INVALID_INPUT, 'timestamp is too far in the future');
  }
  for (const field of ['user', 'item', 'action'] as const) {
    const value = input[field];
    if (value.length === 0 || value.length > limits.nameLengthMax || !NAME.test(value)) {
      throw refuse(
        ErrorCode.INVALID_INPUT,
        `${field} must be 1 to ${limits.nameLengthMax} of a-z A-Z 0-9 . / : - _`,
      );
    }
    if (value.startsWith('.')) {
      throw refuse(ErrorCode.INVALID_PERMISSION, `${field} starting with "." is reserved for internal use`);
    }
  }
  if (utf8Length(input.payload) > limits.payloadBytesMax) {
    throw refuse(ErrorCode.INVALID_INPUT, `payload is larger than ${limits.payloadBytesMax} bytes`);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(input.payload);
  } catch {
    throw refuse(ErrorCode.INVALID_INPUT, 'payload must be a JSON object encoded as a string');
  }
  if (!isJsonObject(payload)) throw refuse(ErrorCode.INVALID_INPUT, 'payload must be a JSON object encoded as a string');
  return { ...input, uuid, timestamp: input.timestamp };
}
