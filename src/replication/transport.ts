/**
 * What the cluster needs from the outside world, injected so that the same replication code runs
 * over real WebSocket links in a node and over a simulated network on virtual time in the
 * deterministic simulation (test/sim).
 */
import type { PeerRequest, PeerResponse } from './protocol.js';

export interface PeerTransport {
  /**
   * Sends `request` to node `to` and resolves with its answer. Rejects when the node cannot be
   * reached or does not answer within `timeoutMs` (the request may still have been processed).
   */
  call(to: string, request: PeerRequest, timeoutMs: number): Promise<PeerResponse>;
  /** Installs the handler of requests from peers (authenticated by the transport). */
  serve(handler: (from: string, request: PeerRequest) => Promise<PeerResponse>): void;
  /** Tells the transport where a node can be reached (learned from membership gossip). */
  addressBook?(addresses: ReadonlyMap<string, string>): void;
}

/** Time, injected: real timers in a node, a virtual clock in the simulation. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const handle = setTimeout(fn, ms);
    handle.unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
