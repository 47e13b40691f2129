/**
 * Black-box: the node's structured logs (pino JSON on stdout). Every request is named by a request
 * id, the client's own `x-request-id` or a new one, answered in the response and found in the log;
 * and no secret (keys, tokens, passwords) is ever written to the log, even at the `trace` level.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { collect, gql, gqlData, wsClient } from '../support/client.js';
import { cleanupNodes, startNodeProcess, type NodeProcess } from '../support/node-process.js';
import { Authorize, ChangesSubscription, CreateApp, CreateUser, SubmitChanges } from '../support/operations.js';

const METRICS_TOKEN = 'metrics-token-never-logged-42';
const PASSWORD = 'correct horse battery staple';
let node: NodeProcess;

beforeAll(async () => {
  node = await startNodeProcess({ args: ['--log-level', 'trace', '--metrics-token', METRICS_TOKEN] });
});
afterAll(cleanupNodes);

const logLines = () => node.output.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);

describe('request ids', () => {
  it("answers the client's x-request-id and logs the request under it; makes one when there is none", async () => {
    const response = await fetch(node.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${node.adminKey}`, 'x-request-id': 'trace-me-123' },
      body: JSON.stringify({ query: '{ bucket(name: "logs") { name } }' }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('trace-me-123');
    await node.waitForOutput((line) => line.includes('"reqId":"trace-me-123"'));
    const line = logLines().find((entry) => entry['reqId'] === 'trace-me-123')!;
    expect(line).toMatchObject({ msg: 'request', method: 'POST', path: '/graphql', status: 200 });

    const unnamed = await fetch(`${node.graphqlUrl}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'no spaces allowed' }, body: '{}' });
    const made = unnamed.headers.get('x-request-id');
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    await node.waitForOutput((entry) => entry.includes(`"reqId":"${made}"`));
  });
});

describe('V8 heap growth', () => {
  it("is set by the node at start and logged; an operator's own flag to Node.js is left alone", async () => {
    await node.waitForOutput((line) => line.includes('"msg":"V8 heap growth"'));
    expect(logLines().find((entry) => entry['msg'] === 'V8 heap growth')).toMatchObject({ heapGrowingPercent: 100 });

    const own = await startNodeProcess({ nodeFlags: ['--heap-growing-percent=50'] });
    await own.waitForOutput((line) => line.includes('"msg":"V8 heap growth"'));
    const line = own.output.find((entry) => entry.includes('"msg":"V8 heap growth"'))!;
    expect(JSON.parse(line)).toMatchObject({ heapGrowingPercent: 'as given to Node.js' });
  });
});

describe('secrets', () => {
  it('never appear in the log, whatever the node is asked', async () => {
    const app = (await gqlData(node, CreateApp, { id: `logs${Date.now().toString(36)}` })).createApp;
    expect((await gql(node, CreateUser, { username: 'carol', password: PASSWORD }, { token: app.adminKey })).errors).toBeUndefined();
    const signIn = await gql(node, Authorize, { username: 'carol', password: PASSWORD }, { token: app.defaultKey });
    const token = signIn.data!.authorize.token;
    // Failures too: a wrong password, an unknown key, a token sent to a GraphQL field that fails.
    expect((await gql(node, Authorize, { username: 'carol', password: `${PASSWORD}!` }, { token: app.defaultKey })).errors).toBeDefined();
    expect((await gql(node, SubmitChanges, { bucket: 'b', changes: [] }, { token: `${token}x` })).errors).toBeDefined();
    const bad = await gql(node, SubmitChanges, { bucket: 'b', changes: [{ ccid: 'zz', key: 'k', op: 'MODIFY', data: { password: PASSWORD } }] }, { token });
    expect(bad.errors ?? bad.data?.submitChanges[0]?.error).toBeDefined();
    // A live subscription over graphql-ws, authenticated in its connection parameters.
    const client = wsClient(node, token);
    try {
      const sub = collect(client, ChangesSubscription, { bucket: 'notes', since: null });
      await gqlData(node, SubmitChanges, { bucket: 'notes', changes: [{ ccid: 'abcdef01', key: 'k', op: 'MODIFY', data: { n: 1 } }] }).catch(() => undefined);
      await gql(node, SubmitChanges, { bucket: 'notes', changes: [{ ccid: 'abcdef02', key: 'k', op: 'MODIFY', data: { n: 1 } }] }, { token });
      await sub.until(1);
      sub.stop();
    } finally {
      await client.dispose();
    }
    // A graphql-ws connection with a wrong token is closed with 4403.
    const refused = new WebSocket(node.wsUrl, 'graphql-transport-ws');
    refused.on('open', () => refused.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}-wrong` } })));
    expect(await new Promise<number>((resolve) => refused.on('close', (code) => resolve(code)))).toBe(4403);
    expect((await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}0` } })).status).toBe(401);

    await node.stop('SIGTERM');
    const log = node.output.join('\n');
    // The log did record all this (at trace level, every request), and holds none of the secrets.
    expect(logLines().filter((entry) => entry['msg'] === 'request').length).toBeGreaterThanOrEqual(8);
    for (const secret of [node.adminKey, app.adminKey, app.defaultKey, app.readonlyKey, token, PASSWORD, METRICS_TOKEN]) {
      expect(secret.length).toBeGreaterThan(10);
      expect(log.includes(secret), `the log holds ${secret.slice(0, 6)}...`).toBe(false);
    }
  });
});
