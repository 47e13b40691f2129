/**
 * Where a partition's operations run. A single node runs them on its own partitions
 * (`localRouter`); in a cluster (`Cluster`), writes go to the partition's coordinator and are
 * acknowledged once replicated, reads are served from a local copy kept current, and what spans
 * buckets (listing them, deleting a user's) asks every member.
 */
import type { BucketInstance, Engine } from '../engine/engine.js';
import type { Caller, ChangeInput, Partition, PushEventsOutcome } from '../engine/partition.js';
import type { BucketConfig, ChangeOutcome } from '../engine/records.js';
import type { EventInput } from '../model/event.js';

export interface Router {
  /** `requestId` names the client's request in the logs of every node the write reaches. */
  submitChanges(partition: Partition, inputs: readonly ChangeInput[], clientId: string | null, caller: Caller, requestId?: string): Promise<ChangeOutcome[]>;
  pushEvents(
    partition: Partition,
    inputs: readonly EventInput[],
    since: string | null,
    author: string | null,
    mayPush?: (event: EventInput) => boolean,
    requestId?: string,
  ): Promise<PushEventsOutcome>;
  configure(partition: Partition, patch: Partial<BucketConfig>, caller: Caller): Promise<BucketConfig>;
  /** Makes the local copy current enough to answer a read. */
  beforeRead(partition: Partition): Promise<void>;
  /** Keeps the local copy live while a subscription reads it; returns the release. */
  follow(partition: Partition): () => void;
  /**
   * The bucket instances of `app` that hold something, wherever they are: all of them, or only
   * `owner`'s private ones; sorted by bucket, then owner (the app's own first).
   */
  instances(app: string, owner?: string): Promise<BucketInstance[]>;
  /** Deletes every private bucket instance of `owner` in `app`, every copy of it. */
  purgeOwner(app: string, owner: string): Promise<void>;
}

export function localRouter(engine: Engine): Router {
  return {
    submitChanges: (partition, inputs, clientId, caller) => partition.submitChanges(inputs, clientId, caller),
    pushEvents: (partition, inputs, since, author, mayPush) => partition.pushEvents(inputs, since, author, mayPush),
    configure: (partition, patch, caller) => partition.configure(patch, caller),
    beforeRead: async () => undefined,
    follow: () => () => undefined,
    instances: (app, owner) => engine.instances(app, owner),
    purgeOwner: async (app, owner) => {
      await engine.purgeOwner(app, owner);
    },
  };
}
