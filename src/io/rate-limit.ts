// A per-API pacer: requests start at most `rps` per second, evenly spaced. A 429 pauses the whole
// pool for that API (not just the request that got it) and halves its pace, which then recovers
// step by step as requests succeed.

import { setTimeout as sleep } from 'node:timers/promises';

export class RateLimiter {
  private nextStartAt = 0;
  private pausedUntil = 0;
  private currentRps: number;

  constructor(
    /** Requests per second; 0 means no limit. */
    private readonly rps: number,
    private readonly now: () => number = Date.now,
  ) {
    this.currentRps = rps;
  }

  /** Resolves when the caller may start its request. */
  async take(signal?: AbortSignal): Promise<void> {
    const now = this.now();
    let startAt = Math.max(now, this.pausedUntil);
    if (this.currentRps > 0) {
      startAt = Math.max(startAt, this.nextStartAt);
      this.nextStartAt = startAt + 1000 / this.currentRps;
    }
    if (startAt > now) await sleep(startAt - now, undefined, signal ? { signal } : {});
  }

  /** A 429: nobody starts before `untilMs`, and the pace halves. */
  throttled(untilMs: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, untilMs);
    if (this.rps > 0) this.currentRps = Math.max(this.rps / 16, this.currentRps / 2);
  }

  /** A success: the pace creeps back towards the configured rate. */
  succeeded(): void {
    if (this.rps > 0 && this.currentRps < this.rps) this.currentRps = Math.min(this.rps, this.currentRps * 1.05);
  }

  get effectiveRps(): number {
    return this.currentRps;
  }
}
