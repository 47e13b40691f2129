/**
 * The default name under which tabs share one connection (and so its credential): one per
 * credential, never one a tab signed in as someone else would pick too.
 */
import { MemoryLevel } from 'memory-level';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientErrorCode, createClient, type LockManagerLike, type SyncClient } from '../../src/client/index.js';

const clients: SyncClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** The lock name a client sharing its connection asks for (it never gets the lock: nothing connects). */
function shareName(options: { token?: string; apiKey?: string; user?: string; app?: string }): string {
  let name: string | undefined;
  const locks: LockManagerLike = {
    request: (requested) => {
      name = requested;
      return new Promise(() => undefined);
    },
  };
  clients.push(createClient({ url: 'http://127.0.0.1:1/graphql', store: new MemoryLevel(), live: false, shareConnection: { locks }, ...options }));
  return name!;
}

describe('shareConnection', () => {
  it('shares by default only between tabs with the same credential', () => {
    expect(shareName({ token: 'alice-token' })).toBe(shareName({ token: 'alice-token' }));
    expect(shareName({ token: 'alice-token' })).not.toBe(shareName({ token: 'bob-token' }));
    expect(shareName({ apiKey: 'k', app: 'a', user: 'alice' })).not.toBe(shareName({ apiKey: 'k', app: 'a', user: 'bob' }));
    expect(shareName({ apiKey: 'k1' })).not.toBe(shareName({ apiKey: 'k2' }));
    // The name does not spell the credential out.
    expect(shareName({ token: 'alice-token' })).not.toContain('alice-token');
  });

  it('asks for a name with a token function, which may sign in anyone', () => {
    expect(() => createClient({ url: 'http://127.0.0.1:1/graphql', store: new MemoryLevel(), token: () => 't', shareConnection: true })).toThrow(
      expect.objectContaining({ code: ClientErrorCode.INVALID_INPUT }),
    );
    const locks: LockManagerLike = { request: () => new Promise(() => undefined) };
    clients.push(createClient({ url: 'http://127.0.0.1:1/graphql', store: new MemoryLevel(), live: false, token: () => 't', shareConnection: { name: 'syncgraph:alice', locks } }));
  });
});
