/**
 * The LevelDB key layout. One LevelDB per node; every partition (one bucket of one app) lives
 * under its own prefix. `!` separates parts: no app, bucket, entity key or ccid may contain it,
 * and it sorts before every character they may contain, so prefix ranges never overlap.
 *
 *   node!id                                   this node's id (origin of the records it accepts)
 *   cluster!members                           in a cluster: the members this node knows
 *   dl!, dm!, dv!                             in a cluster: the directory log (replication/directory-log.ts)
 *   auth!...                                  apps and API keys (auth/directory.ts)
 *   r!{app}!b!{bucket}!{owner}                a partition that exists (owner empty: the app's own)
 *   r!{app}!u!{owner}!{bucket}                the same, by owner (to list or delete a user's data)
 *   p!{partition}!meta                        PartitionMeta: sequences, generation, log start
 *   p!{partition}!config                      BucketConfig
 *   p!{partition}!c!{seq}                     change log, in local arrival order
 *   p!{partition}!e!{seq}                     event log
 *   p!{partition}!ccid!{ccid}                 ccid -> the change it produced (idempotency): its log
 *                                             position on a single node, the record itself on a
 *                                             replica or once EMPTY/DROP cleared it from the log
 *   p!{partition}!uuid!{uuid}                 event uuid -> seq (idempotency)
 *   p!{partition}!g{gen}!ent!{key}            latest state of an entity
 *   p!{partition}!g{gen}!ver!{key}!{version}  retained versions
 *   pe!{sha256(partition)}                    in a cluster: how often the partition's copy here was
 *                                             purged (hashed: a deleted user's name stays off disk)
 *
 * Entities and versions sit under a generation so that EMPTY and DROP are one small atomic
 * write (bump the generation); the old generation is garbage, cleared in the background.
 */
import { createHash } from 'node:crypto';
import { prefixEnd } from './store.js';

const SEQ_DIGITS = 16;
const VERSION_DIGITS = 10;

const pad = (n: number, digits: number) => n.toString().padStart(digits, '0');

export const nodeIdKey = 'node!id';

/** Outside the partition's prefix: it survives the purge it counts. */
export function epochKey(partition: string): string {
  return `pe!${createHash('sha256').update(partition).digest('hex').slice(0, 32)}`;
}

export class PartitionLayout {
  readonly base: string;
  constructor(readonly partition: string) {
    this.base = `p!${partition}!`;
  }
  get meta() {
    return `${this.base}meta`;
  }
  get config() {
    return `${this.base}config`;
  }
  change(seq: number) {
    return `${this.base}c!${pad(seq, SEQ_DIGITS)}`;
  }
  event(seq: number) {
    return `${this.base}e!${pad(seq, SEQ_DIGITS)}`;
  }
  /** Key range of the change log from `fromSeq` on. */
  changesFrom(fromSeq: number) {
    return { gte: this.change(fromSeq), lt: prefixEnd(`${this.base}c!`) };
  }
  changesBefore(seq: number) {
    return { gte: `${this.base}c!`, lt: this.change(seq) };
  }
  eventsFrom(fromSeq: number) {
    return { gte: this.event(fromSeq), lt: prefixEnd(`${this.base}e!`) };
  }
  ccid(ccid: string) {
    return `${this.base}ccid!${ccid}`;
  }
  /** The ccid index, strictly after the ccid key `after` when given (not empty). */
  ccids(after = '') {
    const prefix = `${this.base}ccid!`;
    return after === '' ? { gte: prefix, lt: prefixEnd(prefix) } : { gt: after, lt: prefixEnd(prefix) };
  }
  uuid(uuid: string) {
    return `${this.base}uuid!${uuid}`;
  }
  entity(gen: number, key: string) {
    return `${this.base}g${gen}!ent!${key}`;
  }
  /** Entities in key order, strictly after `afterKey` when given. */
  /** Where entity keys start in the store's keys of generation `gen`. */
  entityKeyOffset(gen: number) {
    return `${this.base}g${gen}!ent!`.length;
  }
  /** Entities of a generation in key order: after `afterKey`, and only keys starting with `keyPrefix`. */
  entities(gen: number, afterKey?: string, keyPrefix = '') {
    const prefix = `${this.base}g${gen}!ent!`;
    const lt = prefixEnd(prefix + keyPrefix);
    return afterKey === undefined || afterKey < keyPrefix ? { gte: prefix + keyPrefix, lt } : { gt: prefix + afterKey, lt };
  }
  version(gen: number, key: string, version: number) {
    return `${this.base}g${gen}!ver!${key}!${pad(version, VERSION_DIGITS)}`;
  }
  versions(gen: number, key: string) {
    const prefix = `${this.base}g${gen}!ver!${key}!`;
    return { gte: prefix, lt: prefixEnd(prefix) };
  }
  /** The retained versions of every entity of a generation. */
  allVersions(gen: number) {
    const prefix = `${this.base}g${gen}!ver!`;
    return { gte: prefix, lt: prefixEnd(prefix) };
  }
  /** The entity key and version of a key in `allVersions`. */
  static parseVersionKey(dbKey: string): { key: string; version: number } {
    const end = dbKey.lastIndexOf('!');
    const start = dbKey.indexOf('!ver!') + 5;
    return { key: dbKey.slice(start, end), version: Number(dbKey.slice(end + 1)) };
  }
  /** Everything of one generation: what EMPTY and DROP leave behind as garbage. */
  generation(gen: number) {
    const prefix = `${this.base}g${gen}!`;
    return { gte: prefix, lt: prefixEnd(prefix) };
  }
  /** Everything of this partition. */
  all() {
    return { gte: this.base, lt: prefixEnd(this.base) };
  }
  /**
   * Whether a key is one the engine's cache never holds (StagedStore `uncached`): log records and
   * the ccid and uuid indexes (read by range, or by key only on a retry) and retained versions
   * (read only to rebase a stale change). Entities, metadata and settings are cached.
   */
  static isUncached(key: string): boolean {
    if (!key.startsWith('p!')) return false;
    const at = key.indexOf('!', 2) + 1;
    if (at === 0) return false;
    switch (key.charCodeAt(at)) {
      case 99: // c!{seq}, ccid!{ccid} (not config)
        return key.startsWith('c!', at) || key.startsWith('ccid!', at);
      case 101: // e!{seq}
        return key.startsWith('e!', at);
      case 117: // uuid!{uuid}
        return key.startsWith('uuid!', at);
      case 103: // g{gen}!ver!{key}!{version} (not g{gen}!ent!{key})
        return key.startsWith('ver!', key.indexOf('!', at) + 1);
      default:
        return false;
    }
  }

  static seqOfKey(key: string): number {
    return Number(key.slice(key.length - SEQ_DIGITS));
  }
}

/** The registry of a node's partitions, per app: which buckets exist, and whose. */
export const registry = {
  bucket: (app: string, bucket: string, owner: string | null) => `r!${app}!b!${bucket}!${owner ?? ''}`,
  owned: (app: string, owner: string, bucket: string) => `r!${app}!u!${owner}!${bucket}`,
  /** Keys `r!{app}!b!{bucket}!{owner}`. */
  buckets: (app: string) => ({ gte: `r!${app}!b!`, lt: prefixEnd(`r!${app}!b!`) }),
  /** Keys `r!{app}!u!{owner}!{bucket}`. */
  ownedBy: (app: string, owner: string) => ({ gte: `r!${app}!u!${owner}!`, lt: prefixEnd(`r!${app}!u!${owner}!`) }),
};
