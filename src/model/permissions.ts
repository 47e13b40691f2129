/**
 * What each level of credential may do in its app, Simperium's three API key levels
 * (../shared/seeds/simperium-overview.txt): admin "any operation on an application"; default "any
 * operation except deleting and resetting users, listing buckets and bucket changes"; read-only
 * "only read access ... as well as the ability to create new users". An access token has the level
 * of the key that issued it, and acts as its user.
 *
 * Levels decide which operations a credential may attempt; which data a user reaches is then
 * decided by per-user buckets and, for shared buckets, the ACL (model/acl.ts). The table below is
 * the source of docs/SECURITY.md's matrix (a test checks that they agree).
 */
export const Level = { ADMIN: 'admin', DEFAULT: 'default', READONLY: 'readonly' } as const;
export type Level = (typeof Level)[keyof typeof Level];
export const levels: readonly Level[] = [Level.ADMIN, Level.DEFAULT, Level.READONLY];

export const Capability = {
  /** Read entities, versions, changes and events; subscribe. */
  READ: 'read',
  /** Submit changes (MODIFY, DELETE, EMPTY) and push events. */
  WRITE: 'write',
  /** DROP a bucket (Simperium: administrative privileges on the bucket). */
  DROP_BUCKET: 'dropBucket',
  /** Configure a bucket (conflict mode, history retention, sharing). */
  CONFIGURE_BUCKET: 'configureBucket',
  CREATE_USER: 'createUser',
  /** Exchange a user's password for an access token. */
  AUTHORIZE: 'authorize',
  /** Change a password: one's own with a token, anyone's with an admin key. */
  CHANGE_PASSWORD: 'changePassword',
  DELETE_USER: 'deleteUser',
  /** Revoke a user's tokens and clear their data. */
  RESET_USER: 'resetUser',
  LIST_BUCKETS: 'listBuckets',
  /** Read the changes of a bucket across all of its users. */
  LIST_CHANGES_ACROSS_USERS: 'listChangesAcrossUsers',
  /** Act as any user of the app (a documented header or argument). */
  ACT_AS_USER: 'actAsUser',
  /** Create, list and revoke API keys; manage ACL rules. */
  MANAGE_APP: 'manageApp',
} as const;
export type Capability = (typeof Capability)[keyof typeof Capability];
export const capabilities: readonly Capability[] = Object.values(Capability);

/** The capabilities default keys lack (Simperium's list). */
const NOT_DEFAULT: ReadonlySet<Capability> = new Set([
  Capability.DELETE_USER,
  Capability.RESET_USER,
  Capability.LIST_BUCKETS,
  Capability.LIST_CHANGES_ACROSS_USERS,
  Capability.DROP_BUCKET,
  Capability.CONFIGURE_BUCKET,
  Capability.ACT_AS_USER,
  Capability.MANAGE_APP,
]);

/** All read-only keys may do: read, and let people sign up and in. */
const READONLY: ReadonlySet<Capability> = new Set([Capability.READ, Capability.CREATE_USER, Capability.AUTHORIZE, Capability.CHANGE_PASSWORD]);

export function can(level: Level, capability: Capability): boolean {
  switch (level) {
    case Level.ADMIN:
      return true;
    case Level.DEFAULT:
      return !NOT_DEFAULT.has(capability);
    case Level.READONLY:
      return READONLY.has(capability);
  }
}
