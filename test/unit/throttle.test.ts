/**
 * Brute-force slowing (src/auth/throttle.ts), on a fake clock: free failures, doubling lock-outs
 * up to a cap, per-subject independence, success clearing only its own subject, forgetting, and
 * a bounded table.
 */
import { describe, expect, it } from 'vitest';
import { Throttle } from '../../src/auth/throttle.js';

function setup(options: Partial<ConstructorParameters<typeof Throttle>[0]> = {}) {
  let now = 0;
  const throttle = new Throttle({ now: () => now, ...options });
  return { throttle, advance: (ms: number) => (now += ms) };
}

describe('Throttle', () => {
  it('allows five failures, then locks out for 1 s, 2 s, 4 s ...', () => {
    const { throttle, advance } = setup();
    const who = ['user:app/alice', 'addr:10.0.0.1'];
    for (let i = 0; i < 5; i++) {
      expect(throttle.check(who)).toEqual({ allowed: true });
      throttle.fail(who);
    }
    expect(throttle.check(who)).toEqual({ allowed: true });
    throttle.fail(who); // the sixth
    expect(throttle.check(who)).toEqual({ allowed: false, retryAfterMs: 1000 });
    advance(999);
    expect(throttle.check(who)).toEqual({ allowed: false, retryAfterMs: 1 });
    advance(1);
    expect(throttle.check(who)).toEqual({ allowed: true });
    throttle.fail(who);
    expect(throttle.check(who)).toEqual({ allowed: false, retryAfterMs: 2000 });
    advance(2000);
    throttle.fail(who);
    expect(throttle.check(who)).toEqual({ allowed: false, retryAfterMs: 4000 });
  });

  it('caps a lock-out at maxLockMs', () => {
    const { throttle } = setup({ freeFailures: 0, baseLockMs: 1000, maxLockMs: 5000 });
    for (let i = 0; i < 50; i++) throttle.fail(['s']);
    expect(throttle.check(['s'])).toEqual({ allowed: false, retryAfterMs: 5000 });
  });

  it('locks an attempt out if any of its subjects is locked out', () => {
    const { throttle } = setup({ freeFailures: 0 });
    throttle.fail(['addr:1.2.3.4']);
    expect(throttle.check(['user:a/bob', 'addr:1.2.3.4']).allowed).toBe(false);
    expect(throttle.check(['user:a/bob', 'addr:5.6.7.8']).allowed).toBe(true);
  });

  it('clears a user on success, but not the address guessing', () => {
    const { throttle, advance } = setup({ freeFailures: 1 });
    throttle.fail(['user:a/alice', 'addr:x']);
    throttle.fail(['user:a/alice', 'addr:x']);
    advance(1000);
    throttle.succeed('user:a/alice');
    expect(throttle.check(['user:a/alice']).allowed).toBe(true);
    throttle.fail(['user:a/carol', 'addr:x']); // the address keeps its count: locked again at once
    expect(throttle.check(['user:a/dave', 'addr:x']).allowed).toBe(false);
  });

  it('forgets failures a day after the last one', () => {
    const { throttle, advance } = setup({ freeFailures: 2 });
    throttle.fail(['s']);
    throttle.fail(['s']);
    advance(86_400_001);
    throttle.fail(['s']); // counted from zero again: still free
    expect(throttle.check(['s']).allowed).toBe(true);
  });

  it('keeps at most subjectsMax subjects', () => {
    const { throttle } = setup({ freeFailures: 0, subjectsMax: 100 });
    for (let i = 0; i < 1000; i++) throttle.fail([`addr:${i}`]);
    expect(throttle.check(['addr:999']).allowed).toBe(false);
    expect(throttle.check(['addr:0']).allowed).toBe(true); // dropped, least recently failed
  });
});
