/**
 * Who a request is: from its credential (and the optional app and act-as-user it names) to an
 * `Access`, the one thing resolvers consult.
 *
 * Credentials, as `Authorization: Bearer <secret>` on HTTP or `connectionParams.authorization`
 * on graphql-ws:
 * - the node's admin key (the operator): admin of any app, named by `X-Syncgraph-App`
 *   (`connectionParams.app`), `default` when none is named; it alone creates apps;
 * - an app's API key (`sgk_...`): its app and level;
 * - a user's access token (`sgt_...`): its app, the level of the key that issued it, its user.
 * An admin credential may act as any user of its app with `X-Syncgraph-User`
 * (`connectionParams.user`). Naming another app than the credential's, or another user than the
 * token's, is refused (FORBIDDEN): a request is bound to exactly one app, and no header widens it.
 */
import { ErrorCode, SyncError } from '../model/errors.js';
import { normaliseAppId, normaliseUsername } from '../model/names.js';
import { can, Capability, Level } from '../model/permissions.js';
import type { Directory } from './directory.js';
import { secretKind } from './secrets.js';

export interface Access {
  /** The app the request is bound to (normalised). */
  app: string;
  level: Level;
  /** The user the request acts as, or null (a key's own access, app-wide). */
  user: string | null;
  /** The node's admin key. */
  operator: boolean;
  /** The token presented, when one was: its sessions end when it is revoked. */
  tokenId: string | null;
  /** The credential presented (`operator`, `key:{id}`, `token:{id}`), for per-credential quotas. */
  credential: string;
  /** When the credential stops being valid (a token's expiry, ms since the epoch), or null. */
  expiresAt: number | null;
}

export interface Credentials {
  authorization?: unknown;
  app?: unknown;
  actAs?: unknown;
}

export const DEFAULT_APP = 'default';

export class Authenticator {
  constructor(
    private readonly directory: Directory,
    private readonly isOperatorKey: (secret: string) => boolean,
  ) {}

  async authenticate(credentials: Credentials): Promise<Access> {
    const secret = bearer(credentials.authorization);
    if (secret === undefined) {
      throw new SyncError(ErrorCode.UNAUTHENTICATED, 'missing credentials: send "Authorization: Bearer <key or token>"');
    }
    const app = optionalName(credentials.app, 'app', normaliseAppId);
    const actAs = optionalName(credentials.actAs, 'user', normaliseUsername);
    const kind = secretKind(secret);
    if (kind === 'token') {
      const token = await this.directory.resolveToken(secret);
      if (token === undefined) throw new SyncError(ErrorCode.UNAUTHENTICATED, 'unknown, expired or revoked token');
      if (app !== undefined && app !== token.app) throw forbidden('this token belongs to another app');
      if (actAs !== undefined && actAs !== token.user) throw forbidden('a token acts only as its own user');
      return {
        app: token.app,
        level: token.level,
        user: token.user,
        operator: false,
        tokenId: token.id,
        credential: `token:${token.id}`,
        expiresAt: token.expiresAt,
      };
    }
    if (kind === 'key') {
      const key = await this.directory.resolveKey(secret);
      if (key === undefined) throw new SyncError(ErrorCode.UNAUTHENTICATED, 'unknown or revoked key');
      if (app !== undefined && app !== key.app) throw forbidden('this key belongs to another app');
      if (actAs !== undefined && !can(key.level, Capability.ACT_AS_USER)) throw forbidden('only an admin key may act as a user');
      return { app: key.app, level: key.level, user: actAs ?? null, operator: false, tokenId: null, credential: `key:${key.id}`, expiresAt: null };
    }
    if (this.isOperatorKey(secret)) {
      return { app: app ?? DEFAULT_APP, level: Level.ADMIN, user: actAs ?? null, operator: true, tokenId: null, credential: 'operator', expiresAt: null };
    }
    throw new SyncError(ErrorCode.UNAUTHENTICATED, 'unknown credentials');
  }
}

/** The secret of an `Authorization: Bearer <secret>` header, if that is what it is. */
export function bearer(authorization: unknown): string | undefined {
  if (typeof authorization !== 'string') return undefined;
  const match = /^Bearer +(\S+)\s*$/i.exec(authorization);
  return match?.[1];
}

function optionalName(value: unknown, field: string, normalise: (value: string, field: string) => string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new SyncError(ErrorCode.INVALID_INPUT, `${field} must be a string`);
  return normalise(value, field);
}

function forbidden(message: string): SyncError {
  return new SyncError(ErrorCode.FORBIDDEN, message);
}

/** Refuses (FORBIDDEN) what the access's level does not allow. */
export function requireCapability(access: Access, capability: Capability): void {
  if (!can(access.level, capability)) {
    throw forbidden(`a ${access.level} ${access.tokenId !== null ? 'token' : 'key'} may not ${capability}`);
  }
}

/**
 * Whether per-credential quotas (request rate, live subscriptions) apply: to tokens and to
 * default and read-only keys, the credentials that end up in phones and browsers; not to admin
 * credentials, which belong to the operator and to backend services.
 */
export function isMetered(access: Access): boolean {
  return access.level !== Level.ADMIN;
}
