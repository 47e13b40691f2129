/**
 * Black-box: the transport switches of a node. TLS end to end with a certificate generated for
 * the test (https and wss on one port, verified against that certificate); CORS only for the
 * configured origins; introspection and GraphiQL that can be switched off.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { rawPost } from '../support/client.js';
import { cleanupNodes, startNodeProcess, tempDataDir } from '../support/node-process.js';

afterAll(cleanupNodes);

function httpsPost(url: string, ca: string, body: unknown, token: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('TLS', () => {
  it('serves https and wss on one port with the given certificate, and nothing in clear', async () => {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const dir = tempDataDir();
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    writeFileSync(certFile, pems.cert);
    writeFileSync(keyFile, pems.private);
    const node = await startNodeProcess({ dataDir: dir, args: ['--tls-cert', certFile, '--tls-key', keyFile] });
    expect(node.graphqlUrl.startsWith('https://')).toBe(true);

    const answer = await httpsPost(node.graphqlUrl, pems.cert, { query: '{ viewer { operator } }' }, node.adminKey);
    expect(answer).toEqual({ status: 200, json: { data: { viewer: { operator: true } } } });

    // graphql-ws over wss, verified against the same certificate.
    const socket = new WebSocket(node.wsUrl, 'graphql-transport-ws', { ca: pems.cert });
    const acked = await new Promise<string>((resolve, reject) => {
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${node.adminKey}` } })));
      socket.on('message', (raw) => resolve((JSON.parse(String(raw)) as { type: string }).type));
      socket.on('error', reject);
    });
    expect(acked).toBe('connection_ack');
    socket.close();

    // Plain HTTP on the TLS port gets no GraphQL answer.
    const plain = await fetch(node.graphqlUrl.replace('https://', 'http://'), { method: 'POST', body: '{}' }).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain === 'refused' || plain === 400).toBe(true);
  });

  it('refuses a certificate without its key', async () => {
    const node = startNodeProcess({ args: ['--tls-cert', '/nonexistent.pem'] });
    await expect(node).rejects.toThrow(/tlsKey \(--tls-key\): tlsCert and tlsKey go together/);
  });
});

describe('CORS', () => {
  it('answers preflights and requests of the configured origins only', async () => {
    const node = await startNodeProcess({ args: ['--cors-origin', 'https://app.example.com'] });
    const preflight = async (origin: string) =>
      fetch(node.graphqlUrl, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
    const allowed = await preflight('https://app.example.com');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    const other = await preflight('https://evil.example.com');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('https://evil.example.com');
    const post = await fetch(node.graphqlUrl, {
      method: 'POST',
      headers: { origin: 'https://app.example.com', 'content-type': 'application/json', authorization: `Bearer ${node.adminKey}` },
      body: JSON.stringify({ query: '{ viewer { app } }' }),
    });
    expect(post.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  it('allows no other origin by default', async () => {
    const node = await startNodeProcess();
    const response = await fetch(node.graphqlUrl, {
      method: 'POST',
      headers: { origin: 'https://app.example.com', 'content-type': 'application/json', authorization: `Bearer ${node.adminKey}` },
      body: JSON.stringify({ query: '{ viewer { app } }' }),
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('introspection and GraphiQL', () => {
  it('can be switched off', async () => {
    const node = await startNodeProcess({ args: ['--no-introspection', '--no-graphiql'] });
    const introspection = await rawPost(node, { query: '{ __schema { queryType { name } } }' });
    expect(introspection.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const ordinary = await rawPost(node, { query: '{ viewer { app } }' });
    expect(ordinary.errors).toBeUndefined();
    const page = await fetch(node.graphqlUrl, { headers: { accept: 'text/html' } });
    expect(await page.text()).not.toContain('GraphiQL');
  });

  it('are on by default', async () => {
    const node = await startNodeProcess();
    const introspection = await rawPost(node, { query: '{ __schema { queryType { name } } }' });
    expect(introspection.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    const page = await fetch(node.graphqlUrl, { headers: { accept: 'text/html' } });
    expect(await page.text()).toContain('GraphiQL');
  });
});
