/**
 * Live subscriptions: replay from disk, then live (see engine/record-stream.ts). The cursor is
 * checked before the stream starts, so a bad cursor is an immediate error, not a silent stream.
 */
import { OVERFLOW } from '../engine/live-feed.js';
import { recordStream, type Sequenced } from '../engine/record-stream.js';
import type { SubscriptionResolvers } from '../generated/graphql.js';
import { ErrorCode, SyncError } from '../model/errors.js';
import { toGraphQLError } from '../server/errors.js';

async function* payloads<K extends string, T extends Sequenced>(
  field: K,
  records: AsyncGenerator<T | typeof OVERFLOW, void, undefined>,
): AsyncGenerator<{ [key in K]: T }, void, undefined> {
  for await (const record of records) {
    if (record === OVERFLOW) {
      throw toGraphQLError(
        new SyncError(ErrorCode.SLOW_CONSUMER, 'subscriber fell too far behind: resubscribe from the last cursor received'),
      );
    }
    yield { [field]: record } as { [key in K]: T };
  }
}

export const Subscription: SubscriptionResolvers = {
  changes: {
    subscribe: async (_, { bucket, since }, { engine, app, limits }) => {
      const partition = await engine.partition(app, bucket);
      const fromSeq = since ? partition.startOf(since, 'changes') : 1;
      return payloads(
        'changes',
        recordStream({
          fromSeq,
          readPage: (from, limit) => partition.readChangeRecords(from, limit),
          feed: partition.changeFeed,
          queueMax: limits.subscriberQueueMax,
        }),
      );
    },
  },
  events: {
    subscribe: async (_, { bucket, since }, { engine, app, limits }) => {
      const partition = await engine.partition(app, bucket);
      const fromSeq = since ? partition.startOf(since, 'events') : 1;
      return payloads(
        'events',
        recordStream({
          fromSeq,
          readPage: (from, limit) => partition.readEventRecords(from, limit),
          feed: partition.eventFeed,
          queueMax: limits.subscriberQueueMax,
        }),
      );
    },
  },
};
