/**
 * Live subscriptions: replay from disk, then live (see engine/record-stream.ts). The cursor is
 * checked before the stream starts, so a bad cursor is an immediate error, not a silent stream.
 */
import { LATER, mapAsyncIterator } from '../engine/async-map.js';
import { OVERFLOW, type LiveFeed } from '../engine/live-feed.js';
import type { Engine } from '../engine/engine.js';
import { covers, cursorFor, type Partition } from '../engine/partition.js';
import type { VersionVector } from '../model/version-vector.js';
import type { Limits } from '../options.js';
import type { ChangeView, EventView } from '../engine/records.js';
import { recordStream, type Sequenced } from '../engine/record-stream.js';
import type { SubscriptionResolvers } from '../generated/graphql.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { toGraphQLError } from '../server/errors.js';
import type { ResolverContext } from './context.js';
import { Capability, keyFilter, scopeFor } from './scope.js';

function payloads<K extends string, T extends Sequenced>(
  field: K,
  records: AsyncGenerator<T | typeof OVERFLOW, void, undefined>,
  onOverflow: () => void,
): AsyncGenerator<{ [key in K]: T }, void, undefined> {
  const live = (record: T | typeof OVERFLOW) => (record === OVERFLOW ? LATER : (livePayload(field, record) as { [key in K]: T }));
  return mapAsyncIterator(
    records,
    (record) => {
      if (record === OVERFLOW) {
        onOverflow();
        throw toGraphQLError(
          new SyncError(ErrorCode.SLOW_CONSUMER, 'subscriber fell too far behind: resubscribe from the last cursor received'),
        );
      }
      return { [field]: record } as { [key in K]: T };
    },
    live,
    // The same for every subscriber of the field: fusable (engine/async-map.ts).
    { key: `payload ${field}`, map: live },
  );
}

/**
 * The payload of a live record, one object for all its subscribers: a change is pushed to each
 * subscriber in turn, so the last one made is the one asked for next (an object with a computed
 * key, made per subscriber, was a measurable part of a fan-out). Payloads are never modified.
 */
let lastRecord: object | undefined;
let lastField: string | undefined;
let lastPayload: object | undefined;
function livePayload(field: string, record: object): object {
  if (record !== lastRecord || field !== lastField) {
    lastRecord = record;
    lastField = field;
    lastPayload = { [field]: record };
  }
  return lastPayload!;
}

/** Validates `since` now (an immediate error), then streams one log of the partition. */
async function stream<K extends 'changes' | 'events'>(
  partition: Partition,
  kind: K,
  since: string | null | undefined,
  queueMax: number,
  onClose: () => void,
  mayRead: ((key: string) => boolean) | undefined,
  keyPrefix: string | null | undefined,
  onOverflow: () => void,
) {
  const resume = await partition.resume(since ?? null, kind);
  const readPage =
    kind === 'changes'
      ? (from: number, limit: number) => partition.readChangeRecords(from, limit)
      : (from: number, limit: number) => partition.readEventRecords(from, limit);
  const feed = kind === 'changes' ? partition.changeFeed : partition.eventFeed;
  type Record = Sequenced & { origin: string; originSeq: number; cursor: string; vector: VersionVector };
  // Records the subscriber saw on another replica are skipped; so are changes of entities the ACL
  // hides from it (events have their own items).
  const keep = kind === 'changes' ? keyFilter(keyPrefix, mayRead) : undefined;
  const hidden = keep === undefined ? undefined : (record: Record) => !keep((record as unknown as ChangeView).key);
  const accept =
    resume.covered === null && hidden === undefined
      ? undefined
      : (record: Record) => !covers(resume, record) && hidden?.(record) !== true;
  const records = recordStream<Record>({
    fromSeq: resume.fromPos,
    readPage: readPage as (from: number, limit: number) => Promise<Record[]>,
    feed: feed as unknown as LiveFeed<Record>,
    queueMax,
    onClose,
    ...(accept ? { accept } : {}),
  });
  // A subscriber resuming with records this log holds elsewhere keeps them covered in its cursors.
  const recursor = (r: Record | typeof OVERFLOW) => {
    if (r === OVERFLOW) return r;
    const cursor = cursorFor(resume, r);
    return cursor === r.cursor ? r : { ...r, cursor };
  };
  return payloads(kind, resume.covered !== null ? mapAsyncIterator(records, recursor, recursor) : records, onOverflow);
}

/** Live subscriptions are bounded per node, like every other resource. */
function checkCapacity(engine: Engine, limits: Limits): void {
  if (engine.subscriberCount >= limits.subscriptionsMax) {
    throw new SyncError(ErrorCode.LIMIT_EXCEEDED, `this node serves at most ${limits.subscriptionsMax} live subscriptions`);
  }
}

/** Checks the node's and the credential's capacity, then the caller's scope, then streams. */
async function open<K extends 'changes' | 'events'>(
  ctx: ResolverContext,
  bucket: string,
  kind: K,
  since: string | null | undefined,
  keyPrefix?: string | null,
) {
  checkCapacity(ctx.engine, ctx.limits);
  const releaseQuota = ctx.quotas.subscribe(ctx.access);
  let unfollow = () => undefined as void;
  const release = () => {
    releaseQuota();
    unfollow();
  };
  try {
    const { partition, mayRead } = await scopeFor(ctx, bucket, Capability.READ);
    // A node that does not replicate the bucket keeps its copy live while the stream is open.
    unfollow = ctx.router.follow(partition);
    return await stream(partition, kind, since, ctx.limits.subscriberQueueMax, release, mayRead, keyPrefix, () => ctx.metrics.slowConsumers.inc());
  } catch (error) {
    release();
    throw error;
  }
}

export const Subscription: SubscriptionResolvers = {
  changes: {
    subscribe: async (_, { bucket, since, keyPrefix }, ctx) =>
      (await open(ctx, bucket, 'changes', since, keyPrefix)) as AsyncGenerator<{ changes: ChangeView }>,
  },
  events: {
    subscribe: async (_, { bucket, since }, ctx) =>
      (await open(ctx, bucket, 'events', since)) as AsyncGenerator<{ events: EventView }>,
  },
};
