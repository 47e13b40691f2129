/**
 * The `syncgraph` command line. `syncgraph start` runs a node until SIGTERM or SIGINT, then shuts
 * down cleanly (finishes in-flight writes, closes LevelDB) and exits 0.
 */
import { addAdminCommands } from './admin/commands.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { addClusterCommands } from './admin/cluster-commands.js';
import { addBackupCommands } from './admin/backup-commands.js';
import { checkClusterConfig, defaultLimits, type Limits } from './options.js';
import { startNode } from './server/node.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0 to 65535)');
  return n;
}

/** `--limit name=value`, repeatable: any field of `Limits` (see docs/OPERATIONS.md). */
function limit(value: string, previous: Partial<Limits>): Partial<Limits> {
  const match = /^([A-Za-z0-9]+)=([0-9]+)$/.exec(value);
  if (!match || !(match[1]! in defaultLimits)) {
    throw new InvalidArgumentError(`must be name=integer, name one of: ${Object.keys(defaultLimits).join(', ')}`);
  }
  return { ...previous, [match[1]!]: Number(match[2]) };
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

interface StartOptions {
  host: string;
  port: number;
  data: string;
  adminKey?: string;
  logLevel: string;
  limit: Partial<Limits>;
  asyncReads: boolean;
  tlsCert?: string;
  tlsKey?: string;
  corsOrigin: string[];
  introspection: boolean;
  graphiql: boolean;
  config?: string;
  nodeId?: string;
  peers?: string[];
  replicas?: number;
  writeQuorum?: number;
  clusterKey?: string;
  advertise?: string;
  metricsToken?: string;
}

/**
 * `--config file.json`: the same options as the command line, by their camelCase names
 * (`{"nodeId": "n1", "peers": ["10.0.0.2:4000"], ...}`). The command line and the environment
 * win over the file.
 */
function withConfigFile(command: Command, opts: StartOptions): StartOptions {
  if (opts.config === undefined) return opts;
  let file: Record<string, unknown>;
  try {
    file = JSON.parse(readFileSync(opts.config, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    command.error(`cannot read --config ${opts.config}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const merged: Record<string, unknown> = { ...opts };
  for (const [name, value] of Object.entries(file)) {
    const source = command.getOptionValueSource(name);
    if (source === undefined && !(name in opts) && !KNOWN_FILE_OPTIONS.has(name)) command.error(`--config: unknown option ${name}`);
    if (source === 'cli' || source === 'env') continue;
    merged[name] = name === 'peers' && typeof value === 'string' ? list(value) : value;
  }
  return merged as unknown as StartOptions;
}

const KNOWN_FILE_OPTIONS = new Set(['host', 'port', 'data', 'adminKey', 'logLevel', 'nodeId', 'peers', 'replicas', 'writeQuorum', 'clusterKey', 'advertise', 'tlsCert', 'tlsKey', 'corsOrigin', 'asyncReads', 'metricsToken']);

export function cli(argv: string[]): Command {
  const program = new Command('syncgraph').description('A sync node for offline-first apps').showHelpAfterError();
  program
    .command('start')
    .description('start a node')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', port, 4000)
    .option('--data <dir>', 'data directory (LevelDB lives in <dir>/db)', './data')
    .addOption(new Option('--admin-key <key>', 'admin key (default: generated on first start, kept in <data>/admin-key)').env('SYNCGRAPH_ADMIN_KEY'))
    .option('--tls-cert <file>', 'PEM certificate: serve https and wss (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--cors-origin <origin>', 'let browser pages of this origin call the node (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--no-introspection', 'refuse schema introspection')
    .option('--no-graphiql', 'do not serve GraphiQL')
    .option('--async-reads', 'read LevelDB on its thread pool, not the event loop (data much larger than memory)', false)
    .option('--limit <name=value>', 'override a limit (repeatable), e.g. --limit entityBytesMax=2097152', limit, {})
    .option('--config <file>', 'read options from a JSON file (command line and environment win)')
    .addOption(new Option('--node-id <id>', "this node's id in a peer cluster (keep it across restarts)").env('SYNCGRAPH_NODE_ID'))
    .addOption(new Option('--peers <host:port,...>', 'peers to connect to (may include this node)').argParser(list).env('SYNCGRAPH_PEERS'))
    .addOption(new Option('--replicas <n>', 'replicas per partition, N (default: 3, at most the cluster size)').argParser(positive).env('SYNCGRAPH_REPLICAS'))
    .addOption(new Option('--write-quorum <w>', 'copies durable before a write is acknowledged (default: a majority of N)').argParser(positive).env('SYNCGRAPH_WRITE_QUORUM'))
    .addOption(new Option('--cluster-key <secret>', 'secret shared by the cluster nodes (16+ characters)').env('SYNCGRAPH_CLUSTER_KEY'))
    .addOption(new Option('--advertise <host:port>', 'address peers reach this node at (default: --host and the port)').env('SYNCGRAPH_ADVERTISE'))
    .addOption(new Option('--metrics-token <secret>', 'bearer token for GET /metrics only, for Prometheus (16+ characters; the admin key works too)').env('SYNCGRAPH_METRICS_TOKEN'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .action(async (given: StartOptions, command: Command) => {
      const opts = withConfigFile(command, given);
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
        program.error('--tls-cert and --tls-key go together');
      }
      const clustered = opts.nodeId !== undefined || opts.peers !== undefined || opts.clusterKey !== undefined;
      if (clustered && (opts.nodeId === undefined || opts.clusterKey === undefined)) {
        program.error('a cluster node needs --node-id and --cluster-key (and --peers)');
      }
      const cluster = clustered
        ? {
            nodeId: opts.nodeId!,
            peers: opts.peers ?? [],
            clusterKey: opts.clusterKey!,
            ...(opts.replicas !== undefined ? { replicas: Number(opts.replicas) } : {}),
            ...(opts.writeQuorum !== undefined ? { writeQuorum: Number(opts.writeQuorum) } : {}),
            ...(opts.advertise !== undefined ? { advertise: opts.advertise } : {}),
          }
        : undefined;
      if (cluster !== undefined) {
        try {
          checkClusterConfig(cluster);
        } catch (error) {
          program.error(error instanceof Error ? error.message : String(error));
        }
      }
      if (opts.metricsToken !== undefined && opts.metricsToken.length < 16) program.error('--metrics-token must have at least 16 characters');
      const node = await startNode({
        host: opts.host,
        port: opts.port,
        dataDir: opts.data,
        adminKey: opts.adminKey,
        logLevel: opts.logLevel,
        limits: opts.limit,
        asyncReads: opts.asyncReads,
        ...(opts.tlsCert !== undefined && opts.tlsKey !== undefined ? { tls: { certFile: opts.tlsCert, keyFile: opts.tlsKey } } : {}),
        corsOrigins: opts.corsOrigin,
        introspection: opts.introspection,
        graphiql: opts.graphiql,
        ...(cluster !== undefined ? { cluster } : {}),
        ...(opts.metricsToken !== undefined ? { metricsToken: opts.metricsToken } : {}),
      });
      if (node.adminKeyGenerated) {
        process.stdout.write(
          `\nGenerated an admin key (shown only this once; kept in ${opts.data}/admin-key):\n\n  ${node.adminKey}\n\n` +
            `GraphQL: ${node.url}/graphql   (Authorization: Bearer <admin key>)\n\n`,
        );
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        node.logger.info({ signal }, 'stopping');
        node.close().then(
          () => process.exit(0),
          (error: unknown) => {
            node.logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
  addAdminCommands(program);
  addClusterCommands(program);
  addBackupCommands(program);
  program.parse(argv);
  return program;
}
