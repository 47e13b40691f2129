/** Small statistics helpers: latency percentiles, rates, and CPU/memory readings of processes. */
import { readFileSync } from 'node:fs';

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Summarises `values[0..count)` (milliseconds); sorts that part of the array in place. */
export function summarise(values: Float64Array, count = values.length): LatencySummary {
  if (count === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN, mean: NaN };
  const part = values.subarray(0, count).sort();
  let sum = 0;
  for (const v of part) sum += v;
  return { count, p50: rank(part, 0.5), p99: rank(part, 0.99), max: part[count - 1] ?? NaN, mean: sum / count };
}

/** Nearest-rank percentile of sorted values. */
function rank(sorted: Float64Array, q: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

/** A growable Float64Array of samples. */
export class Samples {
  private data: Float64Array;
  count = 0;
  constructor(capacity = 1024) {
    this.data = new Float64Array(capacity);
  }
  push(value: number): void {
    if (this.count === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count++] = value;
  }
  summary(): LatencySummary {
    return summarise(this.data, this.count);
  }
}

// ------------------------------------------------------------------ process readings (Linux /proc)

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds (user + system) a process has used so far, all threads; with `mainThread`, only its
 * main thread (for Node: the JavaScript thread, without the libuv pool, GC helpers and LevelDB's
 * compaction thread). NaN when unreadable.
 */
export function processCpuSeconds(pid: number, mainThread = false): number {
  try {
    const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in KiB (VmRSS); NaN when unreadable. */
export function rssKiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Measures the CPU used by some processes (by pid, and this process) over a span of time. */
export class CpuMeter {
  private readonly started: number;
  private readonly startSelf: NodeJS.CpuUsage;
  private readonly startOthers: number[];
  private readonly startMains: number[];

  constructor(private readonly pids: readonly number[]) {
    this.started = performance.now();
    this.startSelf = process.cpuUsage();
    this.startOthers = pids.map((pid) => processCpuSeconds(pid));
    this.startMains = pids.map((pid) => processCpuSeconds(pid, true));
  }

  /**
   * Fractions of one core used since construction: `self` is the bench process, `others` the
   * processes (all threads), `mains` their main threads.
   */
  read(): { self: number; selfKernel: number; others: number[]; mains: number[]; seconds: number } {
    const seconds = (performance.now() - this.started) / 1000;
    const self = process.cpuUsage(this.startSelf);
    return {
      seconds,
      self: (self.user + self.system) / 1e6 / seconds,
      selfKernel: self.system / 1e6 / seconds,
      others: this.pids.map((pid, i) => (processCpuSeconds(pid) - (this.startOthers[i] ?? NaN)) / seconds),
      mains: this.pids.map((pid, i) => (processCpuSeconds(pid, true) - (this.startMains[i] ?? NaN)) / seconds),
    };
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return 'n/a';
  if (perSecond >= 100) return Math.round(perSecond).toLocaleString('en-US');
  return perSecond.toFixed(1);
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}

export function formatPercent(fraction: number): string {
  return Number.isFinite(fraction) ? `${Math.round(fraction * 100)}%` : 'n/a';
}

/** CPU seconds the whole machine has been busy (all cores, from /proc/stat); NaN when unreadable. */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    // cpu user nice system idle iowait irq softirq steal ...
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return ((user ?? NaN) + (nice ?? NaN) + (system ?? NaN) + (irq ?? NaN) + (softirq ?? NaN) + (steal ?? 0)) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** CPU seconds of this process plus its terminated (reaped) children. */
export function selfAndChildrenCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * CPU used on the machine by processes other than the bench and its children, as a fraction of
 * one core, between construction and `read()` (call `read` after the children have exited).
 * Anything well above zero means other work competed with the bench.
 */
export class ForeignLoadMeter {
  private readonly started = performance.now();
  private readonly busy = machineBusySeconds();
  private readonly ours = selfAndChildrenCpuSeconds();

  read(): number {
    const seconds = (performance.now() - this.started) / 1000;
    return Math.max(0, machineBusySeconds() - this.busy - (selfAndChildrenCpuSeconds() - this.ours)) / seconds;
  }
}
