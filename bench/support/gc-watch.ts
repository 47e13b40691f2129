/**
 * The server's garbage collections during a workload, seen from inside it: a PerformanceObserver
 * of `gc` entries installed through its inspector, read and removed at the end. A GC entry's
 * duration is the pause of the JavaScript thread (a mark-compact's concurrent marking, on
 * helper threads, is not in it: it competes for the cores instead).
 */
import type { Service } from './services.js';

export interface GcKind {
  count: number;
  totalMs: number;
  maxMs: number;
}

export interface GcSummary {
  /** Scavenges (young generation). */
  minor: GcKind;
  /** Mark-compacts, incremental marking steps and weak callbacks. */
  major: GcKind;
}

// perf_hooks' NODE_PERFORMANCE_GC_MINOR: every other kind counts as major here.
const INSTALL = `(() => {
  const watch = { minor: [], major: [] };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) (entry.detail?.kind === 1 ? watch.minor : watch.major).push(entry.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  watch.stop = () => observer.disconnect();
  globalThis.__benchGcWatch = watch;
  return true;
})()`;

const COLLECT = `(() => {
  const watch = globalThis.__benchGcWatch;
  delete globalThis.__benchGcWatch;
  watch.stop();
  return { minor: watch.minor, major: watch.major };
})()`;

function kind(durations: readonly number[]): GcKind {
  let totalMs = 0;
  let maxMs = 0;
  for (const ms of durations) {
    totalMs += ms;
    if (ms > maxMs) maxMs = ms;
  }
  return { count: durations.length, totalMs, maxMs };
}

/** Starts watching; the returned function stops and summarises (the entries of the last moments may still be queued: they are taken too). */
export async function watchGc(target: Pick<Service, 'evaluate'>): Promise<() => Promise<GcSummary>> {
  await target.evaluate(INSTALL);
  return async () => {
    // Observer callbacks run after the GC, on a later turn: give them one.
    const raw = (await target.evaluate(`new Promise((resolve) => setImmediate(() => resolve(${COLLECT})))`)) as { minor: number[]; major: number[] };
    return { minor: kind(raw.minor), major: kind(raw.major) };
  };
}
