/**
 * Black-box: `syncgraph start` settings from a config file (JSON or YAML), the environment and
 * the command line, with one precedence (flags > environment > file > defaults), checked by one
 * schema that names every mistake; and `syncgraph config check`.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { gql } from '../support/client.js';
import { cleanupNodes, startNodeProcess, tempDataDir } from '../support/node-process.js';
import { SubmitChanges } from '../support/operations.js';

const BIN = fileURLToPath(new URL('../../bin/syncgraph.js', import.meta.url));
afterAll(cleanupNodes);

function file(name: string, content: string): string {
  const path = join(tempDataDir(), name);
  writeFileSync(path, content);
  return path;
}

function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, SYNCGRAPH_ADMIN_KEY: '', ...env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const changes = (n: number) => Array.from({ length: n }, (_, i) => ({ ccid: `abc${i}${Date.now().toString(16)}`, key: `k${i}`, op: 'MODIFY' as const, data: { i } }));

describe('syncgraph config check', () => {
  it('accepts a valid YAML file and shows its settings, secrets hidden', () => {
    const yaml = file(
      'syncgraph.yaml',
      ['port: 4100', 'logLevel: warn', 'limits:', '  changesPerRequestMax: 50', 'nodeId: n1', 'clusterKey: a-cluster-key-long-enough', 'peers: 10.0.0.2:4000,10.0.0.3:4000', ''].join('\n'),
    );
    const result = cli(['config', 'check', yaml]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: true,
      settings: { port: 4100, logLevel: 'warn', limits: { changesPerRequestMax: 50 }, nodeId: 'n1', clusterKey: '[redacted]', peers: ['10.0.0.2:4000', '10.0.0.3:4000'] },
    });
  });

  it('names every mistake of a file, each with its field', () => {
    const json = file(
      'bad.json',
      JSON.stringify({ port: 70000, logLevel: 'loud', limits: { changesPerRequestMax: 0, noSuchLimit: 1 }, peers: ['nohostport'], colour: 'blue', tlsCert: 'c.pem', metricsToken: 'short' }),
    );
    const result = cli(['config', 'check', json]);
    expect(result.status).toBe(1);
    const problems = result.stderr.split('\n').filter((line) => line.startsWith('  '));
    expect(problems.map((line) => line.trim()).sort()).toEqual(
      [
        `colour (in ${json}): unknown setting`,
        `limits.changesPerRequestMax (in ${json}): must be at least 1`,
        `limits.noSuchLimit (in ${json}): unknown setting`,
        `logLevel (in ${json}): must be one of fatal, error, warn, info, debug, trace, silent`,
        `metricsToken (in ${json}): the metrics token must have at least 16 characters`,
        `peers.0 (in ${json}): must be host:port`,
        `port (in ${json}): must be a port number (0 to 65535)`,
        `tlsKey (in ${json}): tlsCert and tlsKey go together`,
        `nodeId (in ${json}): a cluster node needs nodeId and clusterKey (and peers)`,
        `clusterKey (in ${json}): a cluster node needs nodeId and clusterKey (and peers)`,
      ].sort(),
    );
  });

  it('refuses a file that is not JSON or YAML', () => {
    const broken = file('broken.yaml', 'port: [1, 2\n');
    const result = cli(['config', 'check', broken]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/is not valid YAML/);
  });
});

describe('syncgraph start --config', () => {
  it('takes settings from the file, the environment winning over it and the command line over both', async () => {
    const config = file('node.yaml', ['logLevel: info', 'limits:', '  changesPerRequestMax: 2', 'metricsToken: from-the-file-0123456789', ''].join('\n'));
    // File only: two changes per request.
    const fromFile = await startNodeProcess({ args: ['--config', config] });
    const three = await gql(fromFile, SubmitChanges, { bucket: 'b', changes: changes(3) });
    expect(three.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    expect((await fetch(`${fromFile.url}/metrics`, { headers: { authorization: 'Bearer from-the-file-0123456789' } })).status).toBe(200);
    // The environment's token replaces the file's; a flag's limit replaces the file's.
    const overridden = await startNodeProcess({
      args: ['--config', config, '--limit', 'changesPerRequestMax=3'],
      env: { SYNCGRAPH_METRICS_TOKEN: 'from-the-environment-012' },
    });
    expect((await gql(overridden, SubmitChanges, { bucket: 'b', changes: changes(3) })).errors).toBeUndefined();
    expect((await fetch(`${overridden.url}/metrics`, { headers: { authorization: 'Bearer from-the-environment-012' } })).status).toBe(200);
    expect((await fetch(`${overridden.url}/metrics`, { headers: { authorization: 'Bearer from-the-file-0123456789' } })).status).toBe(401);
  });

  it('does not start on a bad setting, and says which and where', () => {
    const config = file('bad.yaml', 'port: -1\n');
    const fromFile = cli(['start', '--data', tempDataDir(), '--config', config]);
    expect(fromFile.status).toBe(1);
    expect(fromFile.stderr).toContain(`port (in ${config}): must be a port number (0 to 65535)`);
    const fromEnv = cli(['start', '--data', tempDataDir(), '--port', '0'], { SYNCGRAPH_ADVERTISE: 'no port here' });
    expect(fromEnv.status).toBe(1);
    expect(fromEnv.stderr).toContain('advertise (SYNCGRAPH_ADVERTISE): must be host:port');
  });
});
