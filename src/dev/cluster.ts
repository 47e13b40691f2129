/**
 * `npm run cluster`: three syncgraph nodes on localhost (ports 4001-4003, data in
 * ./data/cluster/node{1,2,3}) forming one peer cluster, for trying it out. Prints the addresses
 * and keys; Ctrl-C stops all three. The keys are made on the first run and kept in
 * ./data/cluster/keys.json, so a second run restarts the same cluster with its data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/syncgraph.js', import.meta.url));
const root = process.env['SYNCGRAPH_CLUSTER_DIR'] ?? join('data', 'cluster');
const basePort = Number(process.env['SYNCGRAPH_CLUSTER_PORT'] ?? 4001);
const size = 3;

mkdirSync(root, { recursive: true });
const keysFile = join(root, 'keys.json');
const keys = existsSync(keysFile)
  ? (JSON.parse(readFileSync(keysFile, 'utf8')) as { adminKey: string; clusterKey: string })
  : { adminKey: randomBytes(24).toString('base64url'), clusterKey: randomBytes(24).toString('base64url') };
if (!existsSync(keysFile)) writeFileSync(keysFile, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600 });

const ports = Array.from({ length: size }, (_, i) => basePort + i);
const peers = ports.map((p) => `127.0.0.1:${p}`).join(',');
const argsOf = (i: number) => ['start', '--port', String(ports[i]), '--data', join(root, `node${i + 1}`), '--node-id', `node${i + 1}`, '--peers', peers, '--log-level', 'warn'];
const children: ChildProcess[] = ports.map((_, i) =>
  spawn(process.execPath, [BIN, ...argsOf(i)], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, SYNCGRAPH_ADMIN_KEY: keys.adminKey, SYNCGRAPH_CLUSTER_KEY: keys.clusterKey },
  }),
);

process.stdout.write(
  [
    '',
    `A three-node syncgraph cluster (N=3, W=2), data in ${root}:`,
    ...ports.map((port, i) => `  node${i + 1}  http://127.0.0.1:${port}/graphql   (pid ${children[i]!.pid})`),
    '',
    `Admin key:   ${keys.adminKey}`,
    `Cluster key: ${keys.clusterKey}   (kept in ${keysFile})`,
    '',
    'Try:',
    `  node bin/syncgraph.js cluster status --url http://127.0.0.1:${basePort} --admin-key ${keys.adminKey}`,
    `  kill -9 ${children[0]!.pid}   # node1; then keep writing through the other two, and restart it with:`,
    `  SYNCGRAPH_ADMIN_KEY=${keys.adminKey} SYNCGRAPH_CLUSTER_KEY=${keys.clusterKey} node bin/syncgraph.js ${argsOf(0).join(' ')}`,
    '',
    'Ctrl-C stops the cluster.',
    '',
  ].join('\n'),
);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
let running = children.length;
for (const child of children) {
  child.on('exit', () => {
    if (--running === 0) process.exit(0);
  });
}
