/**
 * The `syncgraph` command line. `syncgraph start` runs a node until SIGTERM or SIGINT, then shuts
 * down cleanly (finishes in-flight writes, closes LevelDB) and exits 0.
 */
import { addAdminCommands } from './admin/commands.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { addClusterCommands } from './admin/cluster-commands.js';
import { addDataCommands } from './admin/data-commands.js';
import { checkConfig, ConfigError, LOG_LEVELS, nodeOptionsOf, readConfigFile, redacted, type StartConfig } from './config.js';
import { defaultLimits, type Limits } from './options.js';
import { tuneHeap } from './server/heap-tuning.js';
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
  cacheMb?: number;
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
  historyHorizonSeconds?: number;
  ccidWindowSeconds?: number;
  historyIntervalSeconds?: number;
}

/**
 * The settings of `start` from their three sources: the config file (`--config`), then the
 * environment, then the command line, each winning over the one before; commander's defaults
 * only where none of them says anything. Checked as a whole by config.ts.
 */
function mergedSettings(command: Command, opts: StartOptions): { settings: Record<string, unknown>; origin: (field: string) => string } {
  const file = opts.config === undefined ? {} : readConfigFile(opts.config);
  const settings: Record<string, unknown> = { ...file };
  for (const [name, value] of Object.entries(opts)) {
    if (name === 'config' || value === undefined) continue;
    const source = command.getOptionValueSource(name);
    const key = name === 'limit' ? 'limits' : name;
    if (key === 'limits') {
      const fromFile = typeof file['limits'] === 'object' && file['limits'] !== null ? (file['limits'] as Record<string, unknown>) : {};
      settings['limits'] = { ...fromFile, ...(value as Record<string, unknown>) };
    } else if (source === 'cli' || source === 'env' || !(key in file)) settings[key] = value;
  }
  const origin = (field: string) => {
    const name = field.split('.')[0]!;
    const option = command.options.find((o) => o.attributeName() === (name === 'limits' ? 'limit' : name));
    const source = option === undefined ? undefined : command.getOptionValueSource(option.attributeName());
    if (source === 'cli') return `${field} (${option!.long})`;
    if (source === 'env') return `${field} (${option!.envVar})`;
    if (opts.config !== undefined && name in file) return `${field} (in ${opts.config})`;
    return option === undefined ? field : `${field} (${[option.long, option.envVar].filter((x) => x !== undefined).join(' or ')})`;
  };
  return { settings, origin };
}

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
    .addOption(new Option('--cache-mb <n>', 'budget of the read cache of entities, in MiB of their JSON (default 64)').argParser(positive).env('SYNCGRAPH_CACHE_MB'))
    .option('--limit <name=value>', 'override a limit (repeatable), e.g. --limit entityBytesMax=2097152', limit, {})
    .option('--config <file>', 'read settings from a JSON or YAML file (the environment and the command line win over it)')
    .addOption(new Option('--node-id <id>', "this node's id in a peer cluster (keep it across restarts)").env('SYNCGRAPH_NODE_ID'))
    .addOption(new Option('--peers <host:port,...>', 'peers to connect to (may include this node)').argParser(list).env('SYNCGRAPH_PEERS'))
    .addOption(new Option('--replicas <n>', 'replicas per partition, N (default: 3, at most the cluster size)').argParser(positive).env('SYNCGRAPH_REPLICAS'))
    .addOption(new Option('--write-quorum <w>', 'copies durable before a write is acknowledged (default: a majority of N)').argParser(positive).env('SYNCGRAPH_WRITE_QUORUM'))
    .addOption(new Option('--cluster-key <secret>', 'secret shared by the cluster nodes (16+ characters)').env('SYNCGRAPH_CLUSTER_KEY'))
    .addOption(new Option('--advertise <host:port>', 'address peers reach this node at (default: --host and the port)').env('SYNCGRAPH_ADVERTISE'))
    .addOption(new Option('--metrics-token <secret>', 'bearer token for GET /metrics only, for Prometheus (16+ characters; the admin key works too)').env('SYNCGRAPH_METRICS_TOKEN'))
    .addOption(new Option('--history-horizon-seconds <s>', 'collect superseded change records and tombstones older than this (default 30 days; in a cluster, once stable on every replica)').argParser(positive).env('SYNCGRAPH_HISTORY_HORIZON_SECONDS'))
    .addOption(new Option('--ccid-window-seconds <s>', 'remember each ccid (retries answered duplicate) at least this long (default 30 days)').argParser(positive).env('SYNCGRAPH_CCID_WINDOW_SECONDS'))
    .addOption(new Option('--history-interval-seconds <s>', 'run history collection (and, on a single node, close buckets idle since the last round) this often (default 60)').argParser(positive).env('SYNCGRAPH_HISTORY_INTERVAL_SECONDS'))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (given: StartOptions, command: Command) => {
      let config: StartConfig;
      try {
        const { settings, origin } = mergedSettings(command, given);
        config = checkConfig(settings, origin);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        return program.error(`invalid configuration:\n  ${error.problems.join('\n  ')}`);
      }
      const heapGrowingPercent = tuneHeap();
      const node = await startNode(nodeOptionsOf(config));
      node.logger.info({ heapGrowingPercent: heapGrowingPercent ?? 'as given to Node.js' }, 'V8 heap growth');
      const opts = { data: config.data ?? './data' };
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
  addDataCommands(program);
  program
    .command('config')
    .description('configuration files')
    .command('check <file>')
    .description('check a config file (JSON or YAML) as `start --config` would, and show its settings')
    .action((file: string) => {
      try {
        const config = checkConfig(readConfigFile(file), (field) => `${field} (in ${file})`);
        process.stdout.write(`${JSON.stringify({ ok: true, settings: redacted(config) }, null, 2)}\n`);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        process.stderr.write(`invalid configuration:\n  ${error.problems.join('\n  ')}\n`);
        process.exitCode = 1;
      }
    });
  program.parse(argv);
  return program;
}
