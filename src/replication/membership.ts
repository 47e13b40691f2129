/**
 * Who is in the cluster, and who is up. Members are gossiped: every ping carries the sender's
 * list, and for each node the entry with the higher version wins (a tie goes to `left`, so a
 * removal is never undone by an old entry). Liveness is local: a node is up while we have
 * heard from it within `suspectAfterMs`, and down from the moment a call to it fails until we
 * hear from it again.
 */
import type { Timers } from './transport.js';
import type { MemberInfo, MemberList } from './protocol.js';

export class Membership {
  private readonly members = new Map<string, MemberInfo>();
  private readonly lastHeard = new Map<string, number>();
  private readonly failedAt = new Map<string, number>();
  private readonly startedAt: number;

  constructor(
    readonly self: string,
    selfAddress: string,
    private readonly timers: Timers,
    private readonly suspectAfterMs: number,
  ) {
    this.members.set(self, { address: selfAddress, status: 'active', version: 1 });
    this.startedAt = timers.now();
  }

  /** Merges a gossiped list; true when anything changed. */
  merge(list: MemberList): boolean {
    let changed = false;
    for (const [id, info] of Object.entries(list)) {
      if (!isMemberInfo(info)) continue;
      const mine = this.members.get(id);
      if (mine === undefined || info.version > mine.version || (info.version === mine.version && info.status === 'left' && mine.status !== 'left')) {
        this.members.set(id, { ...info });
        changed = true;
      } else if (info.version === mine.version && mine.address === '' && info.address !== '') {
        // A node first met on a link it dialed to us: its address arrives with gossip.
        mine.address = info.address;
        changed = true;
      }
    }
    return changed;
  }

  /** A node we connected to, not yet known: an active member (a peer-list addition). */
  learned(id: string, address: string | null): boolean {
    const mine = this.members.get(id);
    if (mine !== undefined) {
      if (address !== null && mine.address === '') mine.address = address;
      return false;
    }
    // Version 0: the node's own entry (version 1 and up) wins over what we inferred.
    this.members.set(id, { address: address ?? '', status: 'active', version: 0 });
    return true;
  }

  /** Marks a node as leaving (or re-joining): a new version of its entry. */
  setStatus(id: string, status: MemberInfo['status'], address?: string): void {
    const mine = this.members.get(id);
    this.members.set(id, { address: address ?? mine?.address ?? '', status, version: (mine?.version ?? 0) + 1 });
  }

  list(): MemberList {
    return Object.fromEntries([...this.members].map(([id, info]) => [id, { ...info }]));
  }

  info(id: string): MemberInfo | undefined {
    return this.members.get(id);
  }

  /** Active members, sorted: the nodes of the ring. */
  active(): string[] {
    return [...this.members].filter(([, info]) => info.status === 'active').map(([id]) => id).sort();
  }

  /** Every member but this node, left ones included (they must hear that they left). */
  others(): string[] {
    return [...this.members.keys()].filter((id) => id !== this.self).sort();
  }

  heard(id: string): void {
    this.lastHeard.set(id, this.timers.now());
    this.failedAt.delete(id);
  }

  failed(id: string): void {
    if (id !== this.self) this.failedAt.set(id, this.timers.now());
  }

  isUp(id: string): boolean {
    if (id === this.self) return true;
    if (this.failedAt.has(id)) return false;
    // Never heard yet: up during a first grace period, so that the first requests are tried.
    const heard = this.lastHeard.get(id) ?? this.startedAt;
    return this.timers.now() - heard <= this.suspectAfterMs;
  }

  lastHeardAt(id: string): number | undefined {
    return this.lastHeard.get(id);
  }
}

function isMemberInfo(value: unknown): value is MemberInfo {
  if (typeof value !== 'object' || value === null) return false;
  const info = value as Partial<MemberInfo>;
  return typeof info.address === 'string' && (info.status === 'active' || info.status === 'left') && Number.isSafeInteger(info.version);
}
