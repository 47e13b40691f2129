/**
 * An engine for unit tests: on the in-memory store unless given one, with node id `node1`,
 * sequential UUIDv7-shaped ids, a fixed clock, the default limits and retention; a failure of
 * background work fails the test. `overrides` replaces any of these.
 */
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { defaultRetention } from '../../src/model/retention.js';
import { defaultLimits } from '../../src/options.js';
import type { KeyValueStore } from '../../src/storage/store.js';
import { MemoryStore } from './memory-store.js';

export function openTestEngine(store: KeyValueStore = new MemoryStore(), overrides: Partial<EngineOptions> = {}): Promise<Engine> {
  let id = 0;
  return Engine.open(store, {
    now: () => 1_700_000_000_000,
    newId: () => `0190a000-0000-7000-8000-${(++id).toString(16).padStart(12, '0')}`,
    newNodeId: () => 'node1',
    limits: defaultLimits,
    retention: defaultRetention,
    onBackgroundError: (error) => {
      throw error;
    },
    ...overrides,
  });
}
