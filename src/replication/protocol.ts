/**
 * The node-to-node protocol: requests and answers, as JSON. Peers are authenticated by the
 * transport (the cluster key), but what they send is still checked for shape before use: a
 * buggy or outdated peer must get an error, not corrupt a log.
 */
import type { BucketInstance } from '../engine/engine.js';
import type { ChangeOutcome, ChangeRecord, EventRecord, BucketConfig } from '../engine/records.js';
import type { ChangeInput, PushEventsOutcome } from '../engine/partition.js';
import type { EventInput } from '../model/event.js';
import type { VersionVector } from '../model/version-vector.js';
import type { DirectoryRecord } from './directory-log.js';

/** What a node knows of a member: gossiped, the entry with the higher `version` wins. */
export interface MemberInfo {
  /** How to reach it (host:port), as the node that added it knew it. */
  address: string;
  status: 'active' | 'left';
  version: number;
}
export type MemberList = Record<string, MemberInfo>;

/** A forwarded caller: what the entry node's ACL said about each key of the request. */
export interface CallerSpec {
  admin: boolean;
  /** Keys the caller may not change (INVALID_PERMISSION). */
  denied: string[];
  /** Whether EMPTY is allowed. */
  mayClear: boolean;
}

export interface Vectors {
  changes: VersionVector;
  events: VersionVector;
}

export type PeerRequest =
  | { type: 'ping'; members: MemberList }
  | { type: 'submit'; partition: string; changes: ChangeInput[]; clientId: string | null; caller: CallerSpec; requestId?: string }
  | { type: 'pushEvents'; partition: string; events: EventInput[]; since: string | null; author: string | null; refused: string[]; requestId?: string }
  | { type: 'configure'; partition: string; patch: Partial<BucketConfig>; replicate: boolean }
  /**
   * `floor`: the sender collected history, and the receiver's vector does not reach its floor:
   * gaps below it are collected records; `since`: the batch holds every record the sender has
   * beyond this vector; `complete`: nothing below the floor is left to send.
   */
  | { type: 'push'; partition: string; changes: ChangeRecord[]; events: EventRecord[]; compacted: boolean; floor?: VersionVector; since?: VersionVector; complete?: boolean }
  | { type: 'pull'; partition: string; vectors: Vectors; limit: number; waitMs: number }
  | { type: 'vectors'; partitions: string[] }
  | { type: 'status'; partition: string }
  | { type: 'dirPush'; records: DirectoryRecord[] }
  | { type: 'dirPull'; vector: VersionVector; limit: number }
  | { type: 'instances'; app: string; owner: string | null }
  | { type: 'purgeOwner'; app: string; owner: string };

export type PeerResponse =
  | { type: 'pong'; members: MemberList }
  | { type: 'submitted'; outcomes: ChangeOutcome[] }
  | { type: 'pushedEvents'; outcome: PushEventsOutcome }
  | { type: 'configured'; config: BucketConfig }
  | { type: 'vectors'; vectors: Vectors }
  | { type: 'records'; changes: ChangeRecord[]; events: EventRecord[]; more: boolean; compacted: boolean; vectors: Vectors; floor?: VersionVector }
  | { type: 'allVectors'; partitions: Record<string, Vectors>; configs?: Record<string, BucketConfig> }
  | { type: 'status'; vectors: Vectors; digest: string; entities: number }
  | { type: 'dirVector'; vector: VersionVector }
  | { type: 'dirRecords'; records: DirectoryRecord[]; more: boolean }
  | { type: 'instances'; instances: BucketInstance[] }
  | { type: 'purged'; instances: number }
  | { type: 'error'; code: string; message: string };

const REQUEST_TYPES = new Set(['ping', 'submit', 'pushEvents', 'configure', 'push', 'pull', 'vectors', 'status', 'dirPush', 'dirPull', 'instances', 'purgeOwner']);

/** A request from the wire, checked for its envelope; handlers check their fields. */
export function isPeerRequest(value: unknown): value is PeerRequest {
  if (typeof value !== 'object' || value === null) return false;
  const { type, partition } = value as { type?: unknown; partition?: unknown };
  if (typeof type !== 'string' || !REQUEST_TYPES.has(type)) return false;
  if (type === 'ping' || type === 'vectors' || type === 'dirPush' || type === 'dirPull') return true;
  if (type === 'instances' || type === 'purgeOwner') {
    const { app, owner } = value as { app?: unknown; owner?: unknown };
    return typeof app === 'string' && (typeof owner === 'string' || (type === 'instances' && owner === null));
  }
  return typeof partition === 'string' && partition.length <= 400;
}
