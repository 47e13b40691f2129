/**
 * The settings of `syncgraph start`, from a config file (JSON or YAML), the environment
 * (SYNCGRAPH_*) and the command line, in that order of precedence from lowest to highest. One zod
 * schema checks them all, after they are merged, so that every mistake is named with its field,
 * wherever it came from. `syncgraph config check FILE` runs the same check on a file alone.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ADDRESS, defaultLimits, NODE_ID, type ClusterConfig, type Limits, type NodeOptions } from './options.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const positiveInt = z.number({ error: 'must be a number' }).int('must be a whole number').positive('must be at least 1');
const secret = (what: string) => z.string({ error: 'must be a string' }).min(16, `${what} must have at least 16 characters`);
/** A list given as an array, or as one comma-separated string (as in the environment). */
const list = (item: z.ZodString) =>
  z.union([z.array(item), z.string().transform((text) => text.split(',').map((part) => part.trim()).filter((part) => part !== ''))]).pipe(z.array(item));

const limitsSchema = z
  .object(Object.fromEntries(Object.keys(defaultLimits).map((name) => [name, positiveInt])) as Record<keyof Limits, typeof positiveInt>)
  .partial()
  .strict();

export const startConfigSchema = z
  .object({
    host: z.string().min(1, 'must not be empty'),
    port: z.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be a port number (0 to 65535)').max(65535, 'must be a port number (0 to 65535)'),
    data: z.string().min(1, 'must not be empty'),
    adminKey: z.string().min(1, 'must not be empty'),
    logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }),
    limits: limitsSchema,
    asyncReads: z.boolean({ error: 'must be true or false' }),
    cacheMb: positiveInt,
    tlsCert: z.string().min(1),
    tlsKey: z.string().min(1),
    corsOrigin: list(z.string().regex(/^https?:\/\/[^/\s]+$/, 'must be an origin such as https://app.example.com')),
    introspection: z.boolean({ error: 'must be true or false' }),
    graphiql: z.boolean({ error: 'must be true or false' }),
    nodeId: z.string().regex(NODE_ID, 'must be 1 to 64 of A-Z a-z 0-9 . _ -'),
    peers: list(z.string().regex(ADDRESS, 'must be host:port')),
    replicas: positiveInt,
    writeQuorum: positiveInt,
    clusterKey: secret('the cluster key'),
    advertise: z.string().regex(ADDRESS, 'must be host:port'),
    metricsToken: secret('the metrics token'),
    historyHorizonSeconds: positiveInt,
    ccidWindowSeconds: positiveInt,
    historyIntervalSeconds: positiveInt,
  })
  .partial()
  .strict()
  .superRefine((config, ctx) => {
    if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: [config.tlsCert === undefined ? 'tlsCert' : 'tlsKey'], message: 'tlsCert and tlsKey go together' });
    }
    const clustered = config.nodeId !== undefined || config.peers !== undefined || config.clusterKey !== undefined;
    if (clustered) {
      for (const field of ['nodeId', 'clusterKey'] as const) {
        if (config[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'a cluster node needs nodeId and clusterKey (and peers)' });
      }
    }
    if (typeof config.writeQuorum === 'number' && config.writeQuorum > (typeof config.replicas === 'number' ? config.replicas : 3)) {
      ctx.addIssue({ code: 'custom', path: ['writeQuorum'], message: `cannot exceed the replicas (${config.replicas ?? 3})` });
    }
    // Run even when fields have their own problems: every mistake is named at once.
  }, { when: () => true });

export type StartConfig = z.infer<typeof startConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

/** Checks settings; throws a ConfigError naming each problem (`field: what is wrong`). */
export function checkConfig(value: unknown, describe: (field: string) => string = (field) => field): StartConfig {
  const result = startConfigSchema.safeParse(value);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const at = issue.path.length === 0 ? '' : `${issue.path.join('.')}.`;
        return issue.keys.map((key) => `${describe(`${at}${key}`)}: unknown setting`);
      }
      return [`${describe(issue.path.join('.') || '(top)')}: ${issue.message}`];
    }),
  );
}

/** A config file: YAML for .yaml/.yml, JSON otherwise. Throws a ConfigError when unreadable. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`]);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${error instanceof Error ? error.message : String(error)}`]);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError([`${path} must hold an object of settings`]);
  return value as Record<string, unknown>;
}

/** The node's options from checked settings (defaults for what is unset come from options.ts). */
export function nodeOptionsOf(config: StartConfig): NodeOptions {
  const cluster: ClusterConfig | undefined =
    config.nodeId !== undefined && config.clusterKey !== undefined
      ? {
          nodeId: config.nodeId,
          peers: config.peers ?? [],
          clusterKey: config.clusterKey,
          ...(config.replicas !== undefined ? { replicas: config.replicas } : {}),
          ...(config.writeQuorum !== undefined ? { writeQuorum: config.writeQuorum } : {}),
          ...(config.advertise !== undefined ? { advertise: config.advertise } : {}),
        }
      : undefined;
  return {
    ...(config.host !== undefined ? { host: config.host } : {}),
    ...(config.port !== undefined ? { port: config.port } : {}),
    ...(config.data !== undefined ? { dataDir: config.data } : {}),
    ...(config.adminKey !== undefined ? { adminKey: config.adminKey } : {}),
    ...(config.logLevel !== undefined ? { logLevel: config.logLevel } : {}),
    ...(config.limits !== undefined ? { limits: config.limits } : {}),
    ...(config.asyncReads !== undefined ? { asyncReads: config.asyncReads } : {}),
    ...(config.cacheMb !== undefined ? { cacheBytesMax: config.cacheMb * 1024 * 1024 } : {}),
    ...(config.tlsCert !== undefined && config.tlsKey !== undefined ? { tls: { certFile: config.tlsCert, keyFile: config.tlsKey } } : {}),
    ...(config.corsOrigin !== undefined ? { corsOrigins: config.corsOrigin } : {}),
    ...(config.introspection !== undefined ? { introspection: config.introspection } : {}),
    ...(config.graphiql !== undefined ? { graphiql: config.graphiql } : {}),
    ...(cluster !== undefined ? { cluster } : {}),
    ...(config.metricsToken !== undefined ? { metricsToken: config.metricsToken } : {}),
    history: {
      ...(config.historyHorizonSeconds !== undefined ? { horizonSeconds: config.historyHorizonSeconds } : {}),
      ...(config.ccidWindowSeconds !== undefined ? { ccidWindowSeconds: config.ccidWindowSeconds } : {}),
      ...(config.historyIntervalSeconds !== undefined ? { intervalSeconds: config.historyIntervalSeconds } : {}),
    },
  };
}

const SECRETS = new Set(['adminKey', 'clusterKey', 'metricsToken']);

/** The settings with their secrets hidden, for showing. */
export function redacted(config: StartConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).map(([name, value]) => [name, SECRETS.has(name) ? '[redacted]' : value]));
}
