/**
 * Web Locks for tests in Node 20 (which has BroadcastChannel but no `navigator.locks`): exclusive
 * locks by name, granted in request order, held until the callback's promise settles.
 */
import type { LockManagerLike } from '../../src/client/index.js';

export function memoryLocks(): LockManagerLike {
  const tails = new Map<string, Promise<unknown>>();
  return {
    request(name, callback) {
      const previous = tails.get(name) ?? Promise.resolve();
      const held = previous.then(() => callback());
      tails.set(name, held.catch(() => undefined));
      return held;
    },
  };
}
