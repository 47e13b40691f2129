/**
 * The bench's per-change W2 figures (bench/workloads/fanout.ts perChange): first and last receipt
 * of each change after its send, changes never received left out, and the changes with a receipt
 * past the p99 of all deliveries counted.
 */
import { describe, expect, it } from 'vitest';
import { perChange } from '../../bench/workloads/fanout.js';

describe('per-change fanout figures', () => {
  it('measures each received change from its send to its first and last receipt', () => {
    const sent = Float64Array.from([0, 10, 20, 30]);
    const first = Float64Array.from([5, 12, NaN, 34]);
    const last = Float64Array.from([25, 60, NaN, 36]);
    const figures = perChange(sent, first, last, 20);
    expect(figures.firstDelivery).toMatchObject({ count: 3, max: 5 });
    expect(figures.lastDelivery).toMatchObject({ count: 3, max: 50 });
    // 25 and 50 are past 20; 6 is not; the change never received is not counted.
    expect(figures.changesPastP99).toBe(2);
  });
});
