/**
 * The node's hybrid logical clock: microseconds of wall time, pushed forward past every value it
 * has issued or seen in a record from another node. A record's clock is therefore above those of
 * every record its origin had when it made it, which makes (clock, origin) a total order that
 * respects causality (model/converge.ts), while staying close to real time.
 */
export class HybridClock {
  private last = 0;

  constructor(private readonly wallMs: () => number) {}

  /** A value above every one issued or observed, and not below the wall clock. */
  tick(): number {
    const next = Math.max(Math.floor(this.wallMs() * 1000), this.last + 1);
    this.last = next;
    return next;
  }

  observe(hlc: number): void {
    if (hlc > this.last) this.last = hlc;
  }
}
