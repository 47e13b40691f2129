/**
 * Black-box: tabs of one origin share one live connection (TabTransport: a Web Lock elects the
 * leader, a BroadcastChannel relays). Two "tabs" (clients with their own stores) against a real
 * node: one WebSocket serves both; when the leader tab closes, the other takes over the
 * connection and resumes from its cursor.
 */
import { MemoryLevel } from 'memory-level';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeClients, createTestApp, sdkClient, until, watch } from '../support/client-harness.js';
import { memoryLocks } from '../support/client-locks.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';

let node: NodeProcess;
let token: string;

beforeAll(async () => {
  node = await startNodeProcess();
  token = (await (await createTestApp(node)).token()).token;
});
afterAll(async () => {
  await closeClients();
  await cleanupNodes();
});

describe('tabs sharing one connection', () => {
  it('one WebSocket serves two tabs; the second takes over when the leader closes', async () => {
    let sockets = 0;
    let open = 0;
    class CountingWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets++;
        open++;
        this.once('close', () => open--);
      }
    }
    const locks = memoryLocks();
    const name = `shared${Date.now().toString(36)}`;
    const shareName = `tabs-${name}`;
    const tab1 = sdkClient({ url: node.graphqlUrl, token, webSocketImpl: CountingWebSocket, store: new MemoryLevel(), shareConnection: { name: shareName, locks, tabId: 'tab1' } });
    const tab2 = sdkClient({ url: node.graphqlUrl, token, webSocketImpl: CountingWebSocket, store: new MemoryLevel(), shareConnection: { name: shareName, locks, tabId: 'tab2' } });
    const other = sdkClient({ url: node.graphqlUrl, token });
    const b1 = watch(tab1, tab1.bucket(name));
    const b2 = watch(tab2, tab2.bucket(name));
    const bo = watch(other, other.bucket(name));
    await until('both tabs are online', [tab1, tab2], () => tab1.status.online && tab2.status.online);

    await b2.set('from-tab2', { n: 1 });
    await bo.set('from-other', { n: 2 });
    await until('both tabs have both notes', [tab1, tab2], async () => (await b1.list()).length === 2 && (await b2.list()).length === 2 && tab2.status.pending === 0);
    expect(sockets).toBe(1);

    await tab1.close();
    await bo.set('after-handover', { n: 3 });
    await until('tab2 took over and got the new note', [tab2], async () => (await b2.get('after-handover')) !== undefined);
    await b2.set('tab2-alone', { n: 4 });
    await until('the note from tab2 reached the other client', [other], async () => (await bo.get('tab2-alone')) !== undefined);
    expect(sockets).toBe(2);
    expect(open).toBe(1);
    expect((await b2.list()).map((e) => e.key)).toEqual(['after-handover', 'from-other', 'from-tab2', 'tab2-alone']);
  });
});
