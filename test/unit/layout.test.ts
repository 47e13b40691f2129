/**
 * The key layout's cache policy (PartitionLayout.isUncached): decided from the key alone, so it
 * must tell each kind of key apart whatever the partition's names look like.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { epochKey, nodeIdKey, PartitionLayout, registry } from '../../src/storage/layout.js';

// Names as the validators allow them (no `!`), including ones that look like the layout's own words.
const name = fc.oneof(fc.constantFrom('c', 'ccid', 'e', 'uuid', 'g1', 'ver', 'ent', 'meta', 'config'), fc.stringMatching(/^[a-z0-9_.-]{1,12}$/));
const partition = fc.tuple(name, name, fc.option(name, { nil: undefined })).map(([app, bucket, owner]) => (owner === undefined ? `${app}/${bucket}` : `${app}/${bucket}/${owner}`));

describe('PartitionLayout.isUncached', () => {
  it('leaves out logs, the ccid and uuid indexes and versions; caches entities, metadata and settings', () => {
    fc.assert(
      fc.property(partition, name, fc.nat({ max: 1e9 }), fc.integer({ min: 1, max: 1000 }), (id, key, seq, gen) => {
        const layout = new PartitionLayout(id);
        for (const uncached of [layout.change(seq), layout.event(seq), layout.ccid(key), layout.uuid(key), layout.version(gen, key, seq)]) {
          expect(PartitionLayout.isUncached(uncached), uncached).toBe(true);
        }
        for (const cached of [layout.entity(gen, key), layout.meta, layout.config]) {
          expect(PartitionLayout.isUncached(cached), cached).toBe(false);
        }
      }),
    );
  });

  it('caches keys outside partitions', () => {
    for (const key of [nodeIdKey, epochKey('a/b'), registry.bucket('a', 'b', null), registry.owned('a', 'u', 'b'), 'auth!app!x', 'cluster!members']) {
      expect(PartitionLayout.isUncached(key), key).toBe(false);
    }
  });
});
