/**
 * `npm run demo`: a syncgraph node (port 4100, data in ./data/demo) and the collaborative notes
 * demo (demo/, served by Vite on port 5173). The app, its users and their shared bucket are made
 * on the first run and kept in ./data/demo/demo.json, so a second run continues with the same
 * notes. Ctrl-C stops both.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setUpDemo, type DemoConfig } from './demo-setup.js';
import { repoRoot, startDemoServer } from './demo-server.js';

const root = repoRoot();
const dataDir = process.env['SYNCGRAPH_DEMO_DIR'] ?? join(root, 'data', 'demo');
const nodePort = Number(process.env['SYNCGRAPH_DEMO_NODE_PORT'] ?? 4100);
const webPort = Number(process.env['SYNCGRAPH_DEMO_PORT'] ?? 5173);

mkdirSync(dataDir, { recursive: true });
const stateFile = join(dataDir, 'demo.json');
type State = { adminKey: string; config?: DemoConfig };
const state: State = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as State) : { adminKey: randomBytes(24).toString('base64url') };
const save = () => writeFileSync(stateFile, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
save();

const node = spawn(process.execPath, [join(root, 'bin/syncgraph.js'), 'start', '--port', String(nodePort), '--data', join(dataDir, 'node'), '--log-level', 'info'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, SYNCGRAPH_ADMIN_KEY: state.adminKey },
});
const nodeUrl = await new Promise<string>((resolve, reject) => {
  node.once('exit', (code) => reject(new Error(`the node exited (code ${code}) before listening: is port ${nodePort} free?`)));
  createInterface({ input: node.stdout! }).on('line', (line) => {
    const url = /"url":"([^"]+)\/graphql"/.exec(line)?.[1];
    if (url !== undefined) resolve(url);
    // Warnings and errors only (pino levels: 40 warn, 50 error).
    else if (/"level":[456]\d/.test(line)) process.stdout.write(line + '\n');
  });
});

state.config ??= await setUpDemo(`${nodeUrl}/graphql`, state.adminKey);
save();
const web = await startDemoServer({ nodeUrl, config: state.config, port: webPort });

process.stdout.write(
  [
    '',
    `syncgraph node: ${nodeUrl}/graphql (data in ${dataDir})`,
    `Demo: open these in two windows (or two browsers), then go offline in one, edit, and back online:`,
    ...state.config.users.map((user) => `  ${web.url}?user=${user.username}`),
    '',
    'Ctrl-C stops the demo and its node.',
    '',
  ].join('\n'),
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await web.close();
  node.kill('SIGTERM');
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
node.on('exit', () => {
  void web.close().then(() => process.exit(0));
});
