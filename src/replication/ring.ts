/**
 * The consistent-hashing ring that places partitions on nodes (issue 4; the first piece of the
 * cluster, not yet used by the node).
 *
 * Each node owns `vnodes` points on a 64-bit ring, at the hash of `{nodeId}#{i}`; a partition sits
 * at the hash of its id, and its preference list is the distinct nodes met walking clockwise from
 * there: the owner first, then the backups. Every node computes the same ring from the node ids
 * alone (DESIGN: the ring does not depend on addresses), and when a node joins or leaves, only
 * the partitions whose lists contain it move. Many virtual nodes per node spread the load evenly
 * and spread a leaving node's partitions over all the others.
 *
 * Pure apart from hashing (SHA-256, the same everywhere): no clock, no I/O.
 */
import { createHash } from 'node:crypto';

export interface RingOptions {
  /** Points per node on the ring. @default 64 */
  vnodes?: number;
}

/** A 64-bit position on the ring. */
export function position(key: string): bigint {
  return createHash('sha256').update(key).digest().readBigUInt64BE(0);
}

export class Ring {
  /** Ring points, sorted by position, each with its node. */
  private readonly points: Array<{ at: bigint; node: string }>;
  readonly nodes: readonly string[];

  constructor(nodeIds: Iterable<string>, options: RingOptions = {}) {
    const vnodes = options.vnodes ?? 64;
    if (!Number.isInteger(vnodes) || vnodes < 1) throw new RangeError('vnodes must be a positive integer');
    this.nodes = [...new Set(nodeIds)].sort();
    this.points = this.nodes
      .flatMap((node) => Array.from({ length: vnodes }, (_, i) => ({ at: position(`${node}#${i}`), node })))
      // Ties (vanishingly rare) are broken by node id, so that every node sorts the same way.
      .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /** The owner of a partition, then up to `n - 1` backups: distinct nodes, clockwise. */
  preferenceList(partition: string, n: number): string[] {
    const wanted = Math.min(n, this.nodes.length);
    const list: string[] = [];
    if (wanted <= 0) return list;
    let i = this.firstAtOrAfter(position(partition));
    while (list.length < wanted) {
      const { node } = this.points[i % this.points.length]!;
      if (!list.includes(node)) list.push(node);
      i++;
    }
    return list;
  }

  owner(partition: string): string | undefined {
    return this.preferenceList(partition, 1)[0];
  }

  /** Index of the first point at or after `at`, wrapping round to 0. */
  private firstAtOrAfter(at: bigint): number {
    let low = 0;
    let high = this.points.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.points[mid]!.at < at) low = mid + 1;
      else high = mid;
    }
    return low === this.points.length ? 0 : low;
  }
}
