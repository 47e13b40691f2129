/**
 * The admin commands of the CLI: apps, keys, users, ACL rules and shared buckets, on a stopped
 * node's data directory (`--data`, the default) or on a running node (`--url` and its admin key).
 * Each prints its result as JSON on stdout; a failure prints `error: ...` on stderr and exits 1.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { Level } from '../model/permissions.js';
import { connect, openDataDir, type AdminBackend, type RuleInput } from './backend.js';

interface Target {
  data: string;
  url?: string;
  adminKey?: string;
}

function withTarget(command: Command): Command {
  return command
    .option('--data <dir>', "a stopped node's data directory", './data')
    .option('--url <url>', 'a running node instead (with --admin-key)')
    .addOption(new Option('--admin-key <key>', "the running node's admin key").env('SYNCGRAPH_ADMIN_KEY'));
}

async function run(target: Target, action: (backend: AdminBackend) => Promise<unknown>): Promise<void> {
  try {
    if (target.url !== undefined && target.adminKey === undefined) throw new Error('--url needs --admin-key (or SYNCGRAPH_ADMIN_KEY)');
    const backend = target.url !== undefined ? connect(target.url, target.adminKey!) : await openDataDir(target.data);
    try {
      const result = await action(backend);
      process.stdout.write(`${JSON.stringify(result ?? { ok: true }, null, 2)}\n`);
    } finally {
      await backend.close();
    }
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

/** The options of the command and of its target, together. */
type Opts<T> = T & Target;

function readPassword(opts: { password?: string; passwordStdin?: boolean }): string {
  if (opts.passwordStdin === true) return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (opts.password !== undefined) return opts.password;
  throw new Error('give the password with --password-stdin (or --password)');
}

function rule(user: string, item: string, action: string, opts: { deny?: boolean }): RuleInput {
  return { user, item, action, type: opts.deny === true ? 'deny' : 'allow' };
}

export function addAdminCommands(program: Command): void {
  const app = program.command('app').description('apps of a node');
  withTarget(app.command('create <id>').description('create an app and its admin, default and read-only keys (shown once)')).action(
    (id: string, opts: Target) => run(opts, (b) => b.createApp(id)),
  );
  withTarget(app.command('list').description('list the apps')).action((opts: Target) => run(opts, (b) => b.listApps()));

  const key = program.command('key').description('API keys of an app');
  withTarget(
    key
      .command('create <app>')
      .description('create a key (shown once)')
      .addOption(new Option('--level <level>', 'its level').choices(['admin', 'default', 'readonly']).default('default')),
  ).action((appId: string, opts: Opts<{ level: Level }>) => run(opts, (b) => b.createKey(appId, opts.level)));
  withTarget(key.command('list <app>').description('list the keys (never their secrets)')).action((appId: string, opts: Target) =>
    run(opts, (b) => b.listKeys(appId)),
  );
  withTarget(key.command('revoke <app> <id>').description('revoke a key by its id')).action((appId: string, id: string, opts: Target) =>
    run(opts, (b) => b.revokeKey(appId, id)),
  );

  const user = program.command('user').description('users of an app');
  withTarget(
    user
      .command('create <app> <username>')
      .description('create a user')
      .option('--password-stdin', 'read the password from standard input')
      .option('--password <password>', 'the password (visible to other users of this machine: prefer --password-stdin)'),
  ).action((appId: string, username: string, opts: Opts<{ password?: string; passwordStdin?: boolean }>) =>
    run(opts, (b) => b.createUser(appId, username, readPassword(opts))),
  );
  withTarget(user.command('delete <app> <username>').description('delete a user and revoke their tokens')).action(
    (appId: string, username: string, opts: Target) => run(opts, (b) => b.deleteUser(appId, username)),
  );
  withTarget(user.command('reset <app> <username>').description("revoke all of a user's tokens")).action(
    (appId: string, username: string, opts: Target) => run(opts, (b) => b.resetUser(appId, username)),
  );

  const acl = program.command('acl').description('ACL rules of an app (Simple Sync: allow or deny on user, item, action patterns)');
  withTarget(acl.command('grant <app> <user> <item> <action>').description('add a rule').option('--deny', 'a deny rule')).action(
    (appId: string, u: string, item: string, action: string, opts: Opts<{ deny?: boolean }>) => run(opts, (b) => b.grant(appId, rule(u, item, action, opts))),
  );
  withTarget(acl.command('revoke <app> <user> <item> <action>').description('remove a rule').option('--deny', 'a deny rule')).action(
    (appId: string, u: string, item: string, action: string, opts: Opts<{ deny?: boolean }>) =>
      run(opts, (b) => b.revokeRule(appId, rule(u, item, action, opts))),
  );
  withTarget(acl.command('list <app>').description('list the rules, oldest first')).action((appId: string, opts: Target) =>
    run(opts, (b) => b.listRules(appId)),
  );

  const bucket = program.command('bucket').description('buckets of an app');
  withTarget(bucket.command('share <app> <bucket>').description('share a bucket among the app\'s users (under the ACL)').option('--private', 'make it private again')).action(
    (appId: string, name: string, opts: Opts<{ private?: boolean }>) => run(opts, (b) => b.share(appId, name, opts.private !== true)),
  );
}
