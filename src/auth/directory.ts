/**
 * The directory of a node's apps, their API keys, users and access tokens, kept in the node's
 * LevelDB under `auth!`.
 *
 *   auth!app!{app}                     AppRecord
 *   auth!key!{sha256(key)}             KeyRecord: what a presented key resolves to
 *   auth!appkey!{app}!{id}             the hash of key `id` of `app`, to list and revoke by id
 *   auth!user!{app}!{username}         UserRecord (the password as scrypt's stored form)
 *   auth!token!{sha256(token)}         TokenRecord
 *   auth!usertoken!{app}!{user}!{id}   the hash of token `id` of a user, to revoke them all
 *   auth!shared!{app}!{bucket}         the bucket is shared by the app's users (ACL applies)
 *   auth!acl!{app}!{seq}               AclRule, in the order they were granted
 *
 * Keys and tokens are stored only as hashes (auth/secrets.ts): each is shown once, when created.
 * Every key and token belongs to exactly one app, so resolving it also decides which app a request
 * is bound to: there is no way to name another app with it. A token has the level of the key it
 * was issued with and acts as its user. Writes are synced before they are acknowledged.
 *
 * Shared buckets and ACL rules are read on every request that touches a shared bucket, so they
 * are kept in memory per app once loaded (this node is their only writer).
 */
import { randomBytes } from 'node:crypto';
import { validateRule, type AclRule } from '../model/acl.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { normaliseAppId, normaliseUsername, validateBucketName } from '../model/names.js';
import { Level } from '../model/permissions.js';
import { prefixEnd, type KeyValueStore, type WriteOp } from '../storage/store.js';
import { defaultPasswordParams, hashPassword, newSecret, secretHash, secretKind, validatePassword, verifyPassword, type PasswordParams } from './secrets.js';
import { Throttle } from './throttle.js';

export interface AppRecord {
  id: string;
  createdAt: number;
}

export interface KeyRecord {
  app: string;
  /** Public id of the key: listed, used to revoke it; not a secret. */
  id: string;
  level: Level;
  createdAt: number;
  revokedAt: number | null;
}

/** A key as listed: never the secret. */
export type KeyInfo = Omit<KeyRecord, 'app'>;

export interface UserRecord {
  app: string;
  username: string;
  /** scrypt's stored form (auth/secrets.ts). */
  password: string;
  createdAt: number;
}

export interface TokenRecord {
  app: string;
  user: string;
  /** The level of the key that issued it. */
  level: Level;
  id: string;
  createdAt: number;
  expiresAt: number;
}

/** Credentials revoked, for whoever holds sessions on them (live subscriptions end). */
export interface Revocation {
  /** The credentials revoked, as `Access.credential` names them (`token:{id}`, `key:{id}`). */
  credentials: string[];
  app: string;
  /** The user whose tokens these were; null for a key. */
  user: string | null;
  tokenIds: string[];
}

export interface DirectoryContext {
  now: () => number;
  /** Lifetime of an access token. @default 30 days */
  tokenTtlMs?: number;
  /** scrypt cost of new passwords. */
  passwordParams?: PasswordParams;
  /** Brute-force slowing of `authorize`, per user (default: 5 free failures) ... */
  userThrottle?: Throttle;
  /** ... and per source address (default: 50, for the many users behind one NAT). */
  sourceThrottle?: Throttle;
}

const APP = 'auth!app!';
const KEY = 'auth!key!';
const APP_KEY = 'auth!appkey!';
const USER = 'auth!user!';
const TOKEN = 'auth!token!';
const USER_TOKEN = 'auth!usertoken!';
const SHARED = 'auth!shared!';
const ACL = 'auth!acl!';

/** What a wrong username and a wrong password both get: which one it was is not told. */
const WRONG_CREDENTIALS = 'wrong username or password';

export class Directory {
  private readonly userThrottle: Throttle;
  private readonly sourceThrottle: Throttle;
  private readonly revocationListeners = new Set<(revocation: Revocation) => void>();
  /** Verified against when a username is unknown, so that both cost one scrypt. */
  private decoy: Promise<string> | undefined;
  /** Users being created (between the existence check and the write). */
  private readonly creating = new Set<string>();
  private readonly sharedByApp = new Map<string, Promise<Set<string>>>();
  private readonly rulesByApp = new Map<string, Promise<Array<{ key: string; rule: AclRule }>>>();
  /** The rules in force, per app, once loaded: what live streams consult on every record. */
  private readonly rulesNow = new Map<string, readonly AclRule[]>();
  /** Serialises ACL and sharing updates per app (read, then write). */
  private readonly updating = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: KeyValueStore,
    private readonly ctx: DirectoryContext,
  ) {
    this.userThrottle = ctx.userThrottle ?? new Throttle({ now: ctx.now });
    this.sourceThrottle = ctx.sourceThrottle ?? new Throttle({ now: ctx.now, freeFailures: 50 });
  }

  /** Calls `listener` whenever tokens are revoked (revocation, user deleted or reset). */
  onRevocation(listener: (revocation: Revocation) => void): () => void {
    this.revocationListeners.add(listener);
    return () => this.revocationListeners.delete(listener);
  }

  /**
   * Keys another node of the cluster changed (replication/directory-log.ts): cached shared
   * buckets and rules of their apps are dropped, and revoked or deleted keys and tokens end the
   * sessions held on them here too.
   */
  remoteChanges(changes: ReadonlyArray<{ key: string; previous: string | undefined; value: string | null }>): void {
    for (const { key, previous, value } of changes) {
      if (key.startsWith(SHARED) || key.startsWith(ACL)) {
        const app = key.slice((key.startsWith(SHARED) ? SHARED : ACL).length).split('!')[0]!;
        this.sharedByApp.delete(app);
        this.rulesByApp.delete(app);
        this.rulesNow.delete(app);
        // Live streams consult rulesNow: load the new rules now rather than at the next request.
        void this.aclRules(app).catch(() => undefined);
      } else if (key.startsWith(KEY) && previous !== undefined) {
        const before = JSON.parse(previous) as KeyRecord;
        const after = value === null ? undefined : (JSON.parse(value) as KeyRecord);
        if (before.revokedAt === null && (after === undefined || after.revokedAt !== null)) {
          this.emit({ credentials: [`key:${before.id}`], app: before.app, user: null, tokenIds: [] });
        }
      } else if (key.startsWith(TOKEN) && previous !== undefined && value === null) {
        const token = JSON.parse(previous) as TokenRecord;
        this.emit({ credentials: [`token:${token.id}`], app: token.app, user: token.user, tokenIds: [token.id] });
      }
    }
  }

  private emit(revocation: Revocation): void {
    for (const listener of this.revocationListeners) listener(revocation);
  }

  /** Creates an app with one key of each level; returns the keys (shown only now). */
  async createApp(appId: string): Promise<{ app: AppRecord; keys: Record<Level, string> }> {
    const id = normaliseAppId(appId);
    if ((await this.store.get(APP + id)) !== undefined) {
      throw new SyncError(ErrorCode.INVALID_INPUT, `app ${id} already exists`);
    }
    const app: AppRecord = { id, createdAt: this.ctx.now() };
    const made = [Level.ADMIN, Level.DEFAULT, Level.READONLY].map((level) => this.makeKey(id, level));
    await this.store.write(
      [{ type: 'put', key: APP + id, value: JSON.stringify(app) }, ...made.flatMap((m) => m.ops)],
      { sync: true },
    );
    const keys = Object.fromEntries(made.map((m) => [m.record.level, m.secret])) as Record<Level, string>;
    return { app, keys };
  }

  async app(appId: string): Promise<AppRecord | undefined> {
    const raw = await this.store.get(APP + normaliseAppId(appId));
    return raw === undefined ? undefined : (JSON.parse(raw) as AppRecord);
  }

  async listApps(): Promise<AppRecord[]> {
    return (await this.store.page({ gte: APP, lt: prefixEnd(APP), limit: 100_000 })).map(([, raw]) => JSON.parse(raw) as AppRecord);
  }

  /** A new key of `level` for an existing app; the secret is returned only now. */
  async createKey(appId: string, level: Level): Promise<{ key: string; info: KeyInfo }> {
    const app = await this.requireApp(appId);
    const made = this.makeKey(app.id, level);
    await this.store.write(made.ops, { sync: true });
    const { app: _, ...info } = made.record;
    return { key: made.secret, info };
  }

  async listKeys(appId: string): Promise<KeyInfo[]> {
    const app = await this.requireApp(appId);
    const prefix = `${APP_KEY}${app.id}!`;
    const hashes = (await this.store.page({ gte: prefix, lt: prefixEnd(prefix), limit: 100_000 })).map(([, hash]) => hash);
    const records = await this.store.getMany(hashes.map((hash) => KEY + hash));
    return records.flatMap((raw) => {
      if (raw === undefined) return [];
      const { app: _, ...info } = JSON.parse(raw) as KeyRecord;
      return [info];
    });
  }

  /** Revokes key `keyId` of the app: it resolves to nothing from now on. */
  async revokeKey(appId: string, keyId: string): Promise<KeyInfo> {
    const app = await this.requireApp(appId);
    const hash = await this.store.get(`${APP_KEY}${app.id}!${keyId}`);
    const raw = hash === undefined ? undefined : await this.store.get(KEY + hash);
    if (hash === undefined || raw === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `app ${app.id} has no key ${keyId}`);
    const record = JSON.parse(raw) as KeyRecord;
    const revoked: KeyRecord = { ...record, revokedAt: record.revokedAt ?? this.ctx.now() };
    await this.store.write([{ type: 'put', key: KEY + hash, value: JSON.stringify(revoked) }], { sync: true });
    for (const listener of this.revocationListeners) listener({ credentials: [`key:${record.id}`], app: app.id, user: null, tokenIds: [] });
    const { app: _, ...info } = revoked;
    return info;
  }

  /** What a presented key stands for: its app and level; undefined if unknown or revoked. */
  async resolveKey(secret: string): Promise<KeyRecord | undefined> {
    if (secretKind(secret) !== 'key') return undefined;
    const raw = await this.store.get(KEY + secretHash(secret));
    if (raw === undefined) return undefined;
    const record = JSON.parse(raw) as KeyRecord;
    return record.revokedAt === null ? record : undefined;
  }

  async createUser(appId: string, username: string, password: string): Promise<Omit<UserRecord, 'password'>> {
    const app = await this.requireApp(appId);
    const name = normaliseUsername(username);
    validatePassword(password);
    const key = this.userKey(app.id, name);
    // Two concurrent sign-ups of one name: the second must not overwrite the first.
    const exists = () => new SyncError(ErrorCode.INVALID_INPUT, `user ${name} already exists`);
    if (this.creating.has(key)) throw exists();
    this.creating.add(key);
    try {
      if ((await this.store.get(key)) !== undefined) throw exists();
      const record: UserRecord = {
        app: app.id,
        username: name,
        password: await hashPassword(password, this.ctx.passwordParams ?? defaultPasswordParams),
        createdAt: this.ctx.now(),
      };
      await this.store.write([{ type: 'put', key, value: JSON.stringify(record) }], { sync: true });
      return { app: app.id, username: name, createdAt: record.createdAt };
    } finally {
      this.creating.delete(key);
    }
  }

  async user(appId: string, username: string): Promise<Omit<UserRecord, 'password'> | undefined> {
    const raw = await this.store.get(this.userKey(normaliseAppId(appId), normaliseUsername(username)));
    if (raw === undefined) return undefined;
    const { password: _, ...user } = JSON.parse(raw) as UserRecord;
    return user;
  }

  /**
   * Exchanges a user's password for an access token of `level` (the level of the key the caller
   * presented). Wrong username and wrong password are one error (UNAUTHENTICATED); repeated
   * failures lock the user and the source out for a while (LIMIT_EXCEEDED, auth/throttle.ts).
   * `ttlMs` asks for a shorter lifetime than the node's (a short-lived token); never longer.
   */
  async authorize(
    appId: string,
    username: string,
    password: string,
    level: Level,
    source: string,
    ttlMs?: number,
  ): Promise<{ token: string; record: TokenRecord }> {
    if (ttlMs !== undefined && !(Number.isSafeInteger(ttlMs) && ttlMs > 0)) throw new SyncError(ErrorCode.INVALID_INPUT, 'ttlSeconds must be a positive integer');
    const app = await this.requireApp(appId);
    const name = normaliseUsername(username);
    const userSubject = [`${app.id}/${name}`];
    const sourceSubject = [source];
    for (const verdict of [this.userThrottle.check(userSubject), this.sourceThrottle.check(sourceSubject)]) {
      if (!verdict.allowed) {
        throw new SyncError(ErrorCode.LIMIT_EXCEEDED, `too many failed attempts: retry in ${Math.ceil(verdict.retryAfterMs / 1000)} s`);
      }
    }
    const raw = await this.store.get(this.userKey(app.id, name));
    const stored = raw === undefined ? await this.decoyHash() : (JSON.parse(raw) as UserRecord).password;
    const ok = (await verifyPassword(password, stored)) && raw !== undefined;
    if (!ok) {
      this.userThrottle.fail(userSubject);
      this.sourceThrottle.fail(sourceSubject);
      throw new SyncError(ErrorCode.UNAUTHENTICATED, WRONG_CREDENTIALS);
    }
    this.userThrottle.succeed(userSubject[0]!);
    return this.issueToken(app.id, name, level, ttlMs);
  }

  /** What a presented token stands for; undefined if unknown, expired or revoked. */
  async resolveToken(secret: string): Promise<TokenRecord | undefined> {
    if (secretKind(secret) !== 'token') return undefined;
    const raw = await this.store.get(TOKEN + secretHash(secret));
    if (raw === undefined) return undefined;
    const record = JSON.parse(raw) as TokenRecord;
    return record.expiresAt > this.ctx.now() ? record : undefined;
  }

  /** Revokes one token of a user. */
  async revokeToken(appId: string, username: string, tokenId: string): Promise<void> {
    const app = normaliseAppId(appId);
    const user = normaliseUsername(username);
    const hash = await this.store.get(`${this.userTokensPrefix(app, user)}${tokenId}`);
    if (hash === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `${user} has no token ${tokenId}`);
    await this.revoke(app, user, [[tokenId, hash]], []);
  }

  /**
   * Changes a user's password and revokes their tokens, except `keepTokenId` (the session that
   * asked, if it was a token).
   */
  async changePassword(appId: string, username: string, password: string, keepTokenId?: string): Promise<void> {
    const app = normaliseAppId(appId);
    const user = normaliseUsername(username);
    const raw = await this.store.get(this.userKey(app, user));
    if (raw === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `no user ${user}`);
    const record: UserRecord = { ...(JSON.parse(raw) as UserRecord), password: await hashPassword(password, this.ctx.passwordParams ?? defaultPasswordParams) };
    const tokens = (await this.tokensOf(app, user)).filter(([id]) => id !== keepTokenId);
    await this.revoke(app, user, tokens, [{ type: 'put', key: this.userKey(app, user), value: JSON.stringify(record) }]);
  }

  /** Revokes every token of a user; the account stays. */
  async resetUser(appId: string, username: string): Promise<void> {
    const app = normaliseAppId(appId);
    const user = normaliseUsername(username);
    if ((await this.store.get(this.userKey(app, user))) === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `no user ${user}`);
    await this.revoke(app, user, await this.tokensOf(app, user), []);
  }

  /** Deletes a user and revokes every token they had. */
  async deleteUser(appId: string, username: string): Promise<void> {
    const app = normaliseAppId(appId);
    const user = normaliseUsername(username);
    if ((await this.store.get(this.userKey(app, user))) === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `no user ${user}`);
    await this.revoke(app, user, await this.tokensOf(app, user), [{ type: 'del', key: this.userKey(app, user) }]);
  }

  // ------------------------------------------------------------------ sharing and ACL

  /** The app's shared buckets. */
  async sharedBuckets(appId: string): Promise<ReadonlySet<string>> {
    const app = normaliseAppId(appId);
    let shared = this.sharedByApp.get(app);
    if (shared === undefined) {
      const prefix = `${SHARED}${app}!`;
      shared = this.store.page({ gte: prefix, lt: prefixEnd(prefix), limit: 1_000_000 }).then((rows) => new Set(rows.map(([key]) => key.slice(prefix.length))));
      this.sharedByApp.set(app, shared);
      shared.catch(() => this.sharedByApp.delete(app));
    }
    return shared;
  }

  /** Declares a bucket shared by the app's users (access then follows the ACL), or private again. */
  async setShared(appId: string, bucket: string, shared: boolean): Promise<ReadonlySet<string>> {
    const app = (await this.requireApp(appId)).id;
    validateBucketName(bucket);
    return this.serially(app, async () => {
      const current = new Set(await this.sharedBuckets(app));
      const key = `${SHARED}${app}!${bucket}`;
      await this.store.write([shared ? { type: 'put', key, value: '{}' } : { type: 'del', key }], { sync: true });
      if (shared) current.add(bucket);
      else current.delete(bucket);
      this.sharedByApp.set(app, Promise.resolve(current));
      return current;
    });
  }

  /** The app's ACL rules, oldest first (model/acl.ts decides with them). */
  async aclRules(appId: string): Promise<readonly AclRule[]> {
    const app = normaliseAppId(appId);
    await this.ruleEntries(app);
    return this.rulesNow.get(app) ?? [];
  }

  /**
   * The rules in force now, synchronously, for an app whose rules were loaded (by `aclRules`):
   * a live subscription asks on every record, so a change of rules applies to it at once.
   */
  currentRules(appId: string): readonly AclRule[] {
    return this.rulesNow.get(appId) ?? [];
  }

  /** Adds a rule (the newest wins ties); answers the rules now in force. */
  async grant(appId: string, input: { user: string; item: string; action: string; type: string }): Promise<readonly AclRule[]> {
    const app = (await this.requireApp(appId)).id;
    const rule = validateRule(input);
    return this.serially(app, async () => {
      const entries = [...(await this.ruleEntries(app))];
      const last = entries.at(-1)?.key;
      const seq = last === undefined ? 1 : Number(last.slice(last.lastIndexOf('!') + 1)) + 1;
      const key = `${ACL}${app}!${String(seq).padStart(12, '0')}`;
      await this.store.write([{ type: 'put', key, value: JSON.stringify(rule) }], { sync: true });
      entries.push({ key, rule });
      this.setRules(app, entries);
      return entries.map((entry) => entry.rule);
    });
  }

  /** Removes every rule equal to `input`; answers the rules now in force. */
  async revokeRule(appId: string, input: { user: string; item: string; action: string; type: string }): Promise<readonly AclRule[]> {
    const app = (await this.requireApp(appId)).id;
    const rule = validateRule(input);
    return this.serially(app, async () => {
      const entries = await this.ruleEntries(app);
      const same = (r: AclRule) => r.user === rule.user && r.item === rule.item && r.action === rule.action && r.type === rule.type;
      const removed = entries.filter((entry) => same(entry.rule));
      if (removed.length === 0) throw new SyncError(ErrorCode.NOT_FOUND, 'no such rule');
      await this.store.write(removed.map((entry) => ({ type: 'del' as const, key: entry.key })), { sync: true });
      const kept = entries.filter((entry) => !same(entry.rule));
      this.setRules(app, kept);
      return kept.map((entry) => entry.rule);
    });
  }

  private ruleEntries(app: string): Promise<Array<{ key: string; rule: AclRule }>> {
    let entries = this.rulesByApp.get(app);
    if (entries === undefined) {
      const prefix = `${ACL}${app}!`;
      entries = this.store.page({ gte: prefix, lt: prefixEnd(prefix), limit: 1_000_000 }).then((rows) => {
        const loaded = rows.map(([key, raw]) => ({ key, rule: JSON.parse(raw) as AclRule }));
        if (!this.rulesNow.has(app)) this.rulesNow.set(app, loaded.map((entry) => entry.rule));
        return loaded;
      });
      this.rulesByApp.set(app, entries);
      entries.catch(() => this.rulesByApp.delete(app));
    }
    return entries;
  }

  private setRules(app: string, entries: Array<{ key: string; rule: AclRule }>): void {
    this.rulesByApp.set(app, Promise.resolve(entries));
    this.rulesNow.set(app, entries.map((entry) => entry.rule));
  }

  private serially<T>(app: string, run: () => Promise<T>): Promise<T> {
    const previous = this.updating.get(app) ?? Promise.resolve();
    const next = previous.then(run, run);
    this.updating.set(app, next.catch(() => undefined));
    return next;
  }

  private async issueToken(app: string, user: string, level: Level, ttlMs?: number): Promise<{ token: string; record: TokenRecord }> {
    const token = newSecret('token');
    const hash = secretHash(token);
    const now = this.ctx.now();
    const record: TokenRecord = {
      app,
      user,
      level,
      id: randomBytes(6).toString('hex'),
      createdAt: now,
      expiresAt: now + Math.min(ttlMs ?? Infinity, this.ctx.tokenTtlMs ?? 30 * 86_400_000),
    };
    await this.store.write(
      [
        { type: 'put', key: TOKEN + hash, value: JSON.stringify(record) },
        { type: 'put', key: `${this.userTokensPrefix(app, user)}${record.id}`, value: hash },
      ],
      { sync: true },
    );
    return { token, record };
  }

  /** The [id, hash] of every token a user was ever issued (revoked ones included). */
  private async tokensOf(app: string, user: string): Promise<Array<[string, string]>> {
    const prefix = this.userTokensPrefix(app, user);
    return (await this.store.page({ gte: prefix, lt: prefixEnd(prefix), limit: 1_000_000 })).map(([key, hash]) => [key.slice(prefix.length), hash]);
  }

  /**
   * Deletes the tokens (they resolve to nothing from the write on) with `extra` in one atomic
   * write, then tells the listeners.
   */
  private async revoke(app: string, user: string, tokens: Array<[string, string]>, extra: WriteOp[]): Promise<void> {
    const ops: WriteOp[] = [...extra];
    for (const [id, hash] of tokens) {
      ops.push({ type: 'del', key: TOKEN + hash }, { type: 'del', key: `${this.userTokensPrefix(app, user)}${id}` });
    }
    if (ops.length > 0) await this.store.write(ops, { sync: true });
    const tokenIds = tokens.map(([id]) => id);
    const revocation: Revocation = { credentials: tokenIds.map((id) => `token:${id}`), app, user, tokenIds };
    for (const listener of this.revocationListeners) listener(revocation);
  }

  private userKey(app: string, user: string): string {
    return `${USER}${app}!${user}`;
  }

  private userTokensPrefix(app: string, user: string): string {
    return `${USER_TOKEN}${app}!${user}!`;
  }

  private decoyHash(): Promise<string> {
    return (this.decoy ??= hashPassword(newSecret('token'), this.ctx.passwordParams ?? defaultPasswordParams));
  }

  private async requireApp(appId: string): Promise<AppRecord> {
    const app = await this.app(appId);
    if (app === undefined) throw new SyncError(ErrorCode.NOT_FOUND, `no app ${normaliseAppId(appId)}`);
    return app;
  }

  private makeKey(app: string, level: Level) {
    const secret = newSecret('key');
    const hash = secretHash(secret);
    const record: KeyRecord = { app, id: randomBytes(6).toString('hex'), level, createdAt: this.ctx.now(), revokedAt: null };
    const ops = [
      { type: 'put' as const, key: KEY + hash, value: JSON.stringify(record) },
      { type: 'put' as const, key: `${APP_KEY}${app}!${record.id}`, value: hash },
    ];
    return { secret, record, ops };
  }
}
