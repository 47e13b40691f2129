import type { Partition } from '../engine/partition.js';
import type { BucketResolvers } from '../generated/graphql.js';

/** The parent object of `Bucket` fields. */
export interface BucketParent {
  partition: Partition;
}

export const Bucket: BucketResolvers = {
  name: ({ partition }) => partition.bucket,
  config: ({ partition }) => partition.config(),
  changesCursor: ({ partition }) => partition.headCursor('changes'),
  eventsCursor: ({ partition }) => partition.headCursor('events'),
};
