/**
 * replication/membership.ts: gossip keeps the entry of the higher version, a removal wins a tie,
 * an address learned late still arrives, and liveness follows what was heard.
 */
import { describe, expect, it } from 'vitest';
import { Membership } from '../../src/replication/membership.js';

function clock(start = 1000) {
  const t = { now: start };
  return { t, timers: { now: () => t.now, setTimeout: () => undefined, clearTimeout: () => undefined } };
}

describe('membership', () => {
  it('merges gossip by version, a left entry winning a tie', () => {
    const { timers } = clock();
    const m = new Membership('a', 'h:1', timers, 2000);
    expect(m.merge({ b: { address: 'h:2', status: 'active', version: 1 } })).toBe(true);
    expect(m.active()).toEqual(['a', 'b']);
    // An older or equal entry changes nothing...
    expect(m.merge({ b: { address: 'h:9', status: 'active', version: 1 } })).toBe(false);
    // ...but a removal of the same version wins, and a re-join needs a higher version.
    expect(m.merge({ b: { address: 'h:2', status: 'left', version: 1 } })).toBe(true);
    expect(m.active()).toEqual(['a']);
    expect(m.merge({ b: { address: 'h:2', status: 'active', version: 1 } })).toBe(false);
    expect(m.merge({ b: { address: 'h:2', status: 'active', version: 2 } })).toBe(true);
    expect(m.active()).toEqual(['a', 'b']);
    // Malformed entries are ignored.
    expect(m.merge({ c: { address: 1, status: 'maybe', version: 'x' } as never })).toBe(false);
  });

  it('takes the address of a node first met on an inbound link from its own gossip', () => {
    const { timers } = clock();
    const m = new Membership('a', 'h:1', timers, 2000);
    expect(m.learned('c', null)).toBe(true);
    expect(m.info('c')?.address).toBe('');
    expect(m.merge({ c: { address: 'h:3', status: 'active', version: 1 } })).toBe(true);
    expect(m.info('c')?.address).toBe('h:3');
  });

  it('counts a node up while heard from, down from a failed call until heard again', () => {
    const { t, timers } = clock();
    const m = new Membership('a', 'h:1', timers, 2000);
    m.learned('b', 'h:2');
    expect(m.isUp('b')).toBe(true); // grace period after start
    t.now += 2001;
    expect(m.isUp('b')).toBe(false);
    m.heard('b');
    expect(m.isUp('b')).toBe(true);
    m.failed('b');
    expect(m.isUp('b')).toBe(false);
    m.heard('b');
    expect(m.isUp('b')).toBe(true);
    expect(m.isUp('a')).toBe(true);
    m.setStatus('b', 'left');
    expect(m.active()).toEqual(['a']);
    expect(m.others()).toEqual(['b']);
  });
});
