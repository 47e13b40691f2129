/**
 * How much V8 lets the old generation grow between mark-compacts, for a node under steady load.
 *
 * V8 starts marking, soon, whenever the room left below the old generation's limit is smaller
 * than the young generation's capacity (a scavenge could promote that much). After each
 * mark-compact it sets the limit from the live size times a factor it picks from its own speed
 * measurements, often 1.3-1.9 for a node. A node with 45 MB live then gets 15-40 MB of room:
 * under 32 MB, the capacity of Node's default young generation (two 16 MiB semi-spaces), so
 * marking starts again at once, and a node fanning changes out ran a mark-compact every few
 * hundred milliseconds, each with ~60 ms of concurrent marking on a helper thread. With a fixed
 * factor of 2 the room after a mark-compact is the live size itself: W2's node did 2 mark-compacts
 * in 30 s instead of 40, and its p99 latency halved (bench/RESULTS.md). The price is an old
 * generation of up to twice the live size, where V8 would itself go up to 4 for large heaps.
 *
 * The flag is set at run time, before the node allocates much, so that every way of starting a
 * node gets it (`syncgraph start`, `node bin/syncgraph.js`, a process manager). An operator's own
 * setting, given to Node.js on its command line, is left alone (NODE_OPTIONS cannot carry it:
 * Node.js refuses this V8 flag there).
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 100;

/** The flag to set, or undefined when the operator gave Node.js one (`execArgv`). */
export function heapGrowingFlag(execArgv: readonly string[]): string | undefined {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg))) return undefined;
  return `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/** Applies `heapGrowingFlag` to this process; returns the percent it set, if it set one. */
export function tuneHeap(): number | undefined {
  const flag = heapGrowingFlag(process.execArgv);
  if (flag === undefined) return undefined;
  setFlagsFromString(flag);
  return HEAP_GROWING_PERCENT;
}
