/**
 * The directory of a node's apps and their API keys, kept in the node's LevelDB under `auth!`.
 *
 *   auth!app!{app}              AppRecord
 *   auth!key!{sha256(key)}      KeyRecord: what a presented key resolves to
 *   auth!appkey!{app}!{id}      the hash of key `id` of `app`, to list and revoke by id
 *
 * Keys are stored only as hashes (auth/secrets.ts): a key is shown once, when created. Every key
 * belongs to exactly one app, so resolving a key also decides which app a request is bound to:
 * there is no way to name another app with it. Writes are synced before they are acknowledged.
 *
 * Work in progress (issue 3): users, access tokens and ACL rules come next, in the same manner.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, SyncError } from '../model/errors.js';
import { normaliseAppId } from '../model/names.js';
import { Level } from '../model/permissions.js';
import { prefixEnd, type KeyValueStore } from '../storage/store.js';
import { newSecret, secretHash, secretKind } from './secrets.js';

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

export interface DirectoryContext {
  now: () => number;
}

const APP = 'auth!app!';
const KEY = 'auth!key!';
const APP_KEY = 'auth!appkey!';

export class Directory {
  constructor(
    private readonly store: KeyValueStore,
    private readonly ctx: DirectoryContext,
  ) {}

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
