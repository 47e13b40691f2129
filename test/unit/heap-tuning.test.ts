import { describe, expect, it } from 'vitest';
import { heapGrowingFlag, HEAP_GROWING_PERCENT } from '../../src/server/heap-tuning.js';

describe('heapGrowingFlag', () => {
  const ours = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;

  it('sets the growing factor when the operator chose none', () => {
    expect(heapGrowingFlag([])).toBe(ours);
    expect(heapGrowingFlag(['--inspect=127.0.0.1:0', '--max-semi-space-size=32', '--max-old-space-size=4096'])).toBe(ours);
  });

  it("leaves the operator's own setting alone, in either spelling", () => {
    expect(heapGrowingFlag(['--heap-growing-percent=50'])).toBeUndefined();
    expect(heapGrowingFlag(['--max-old-space-size=4096', '--heap_growing_percent=30'])).toBeUndefined();
    expect(heapGrowingFlag(['--heap-growing-percent'])).toBeUndefined();
  });

  it('is not fooled by a flag that only starts alike', () => {
    expect(heapGrowingFlag(['--heap-growing-percentage=5'])).toBe(ours);
  });
});
