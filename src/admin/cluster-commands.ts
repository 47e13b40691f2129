/**
 * `syncgraph cluster status|join|leave|replicas`: the peer cluster, through a running node's
 * GraphQL API (`--url` and the admin key). `status --watch` redraws until the node has handed over
 * every partition that belongs elsewhere, with a progress bar.
 */
import { Command, Option } from 'commander';

interface Target {
  url: string;
  adminKey?: string;
  app?: string;
}

const INFO = `nodeId replicas writeQuorum vnodes handoff { pending moved } nodes { id address status up self }`;

interface Info {
  nodeId: string | null;
  replicas: number;
  writeQuorum: number;
  handoff: { pending: number; moved: number };
  nodes: Array<{ id: string; address: string; status: string; up: boolean; self: boolean }>;
}

async function graphql<T>(target: Target, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  if (target.adminKey === undefined) throw new Error('give the admin key with --admin-key (or SYNCGRAPH_ADMIN_KEY)');
  const url = target.url.replace(/\/+$/, '').replace(/(\/graphql)?$/, '/graphql');
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${target.adminKey}`,
      ...(target.app !== undefined ? { 'x-syncgraph-app': target.app } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
  if (body.errors !== undefined && body.errors.length > 0) {
    const [first] = body.errors;
    throw new Error(`${first!.extensions?.code ?? 'ERROR'}: ${first!.message}`);
  }
  return body.data as T;
}

function withTarget(command: Command): Command {
  return command
    .requiredOption('--url <url>', 'a running node of the cluster')
    .addOption(new Option('--admin-key <key>', "the cluster's admin key").env('SYNCGRAPH_ADMIN_KEY'));
}

async function run(action: () => Promise<unknown>): Promise<void> {
  try {
    const result = await action();
    if (result !== undefined) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

/** `[#########.........] 45/100`: handed-over partitions out of all that had to move. */
export function progressBar(done: number, total: number, width = 30): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

function render(info: Info): string {
  const lines = [`node ${info.nodeId ?? '(alone)'}: N=${info.replicas} W=${info.writeQuorum}`];
  for (const node of info.nodes) {
    lines.push(`  ${node.self ? '*' : ' '} ${node.id.padEnd(16)} ${node.address.padEnd(24)} ${node.status.padEnd(6)} ${node.up ? 'up' : 'DOWN'}`);
  }
  const { pending, moved } = info.handoff;
  lines.push(`  handoff ${progressBar(moved, moved + pending)}${pending === 0 ? ' done' : ''}`);
  return lines.join('\n');
}

export function addClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('the peer cluster, through a running node');
  withTarget(cluster.command('status').description("the node's view: members, N and W, handoff progress"))
    .option('--watch', 'redraw every second until handoff is done')
    .option('--json', 'print JSON')
    .action((opts: Target & { watch?: boolean; json?: boolean }) =>
      run(async () => {
        for (;;) {
          const { cluster: info } = await graphql<{ cluster: Info }>(opts, `{ cluster { ${INFO} } }`);
          if (opts.json === true && opts.watch !== true) return info;
          process.stdout.write(`${render(info)}\n`);
          if (opts.watch !== true || info.handoff.pending === 0) return undefined;
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }),
    );
  withTarget(cluster.command('join <address>').description('connect the node to another at host:port, which joins the ring')).action(
    (address: string, opts: Target) =>
      run(async () => (await graphql<{ clusterJoin: Info }>(opts, `mutation($a: String!) { clusterJoin(address: $a) { ${INFO} } }`, { a: address })).clusterJoin),
  );
  withTarget(cluster.command('leave <nodeId>').description('remove a node from the ring; its partitions move to the others')).action(
    (nodeId: string, opts: Target) =>
      run(async () => (await graphql<{ clusterLeave: Info }>(opts, `mutation($n: ID!) { clusterLeave(nodeId: $n) { ${INFO} } }`, { n: nodeId })).clusterLeave),
  );
  withTarget(cluster.command('replicas <bucket>').description("a bucket's replicas: vectors, digests, lag"))
    .option('--app <app>', 'the app (default: default)')
    .option('--user <user>', "a user's private instance of the bucket")
    .action((bucket: string, opts: Target & { user?: string }) =>
      run(async () => {
        const query = `query($b: String!, $u: String) { replicaStatus(bucket: $b, user: $u) { nodeId up changes events digest entities lag } }`;
        return (await graphql<{ replicaStatus: unknown }>(opts, query, { b: bucket, u: opts.user ?? null })).replicaStatus;
      }),
    );
}
