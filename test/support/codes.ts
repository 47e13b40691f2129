import { SyncError } from '../../src/model/errors.js';

/** The code of the SyncError `run` throws, or undefined when it throws nothing. Tests assert codes, never messages. */
export function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof SyncError) return error.code;
    throw error;
  }
  return undefined;
}
