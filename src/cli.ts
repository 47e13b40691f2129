/**
 * The `syncgraph` command line. `syncgraph start` runs a node until SIGTERM or SIGINT, then shuts
 * down cleanly (finishes in-flight writes, closes LevelDB) and exits 0.
 */
import { addAdminCommands } from './admin/commands.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { defaultLimits, type Limits } from './options.js';
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
    .option('--limit <name=value>', 'override a limit (repeatable), e.g. --limit entityBytesMax=2097152', limit, {})
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .action(async (opts: StartOptions) => {
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
        program.error('--tls-cert and --tls-key go together');
      }
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
  program.parse(argv);
  return program;
}
