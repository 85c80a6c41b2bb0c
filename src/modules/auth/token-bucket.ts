/**
 * A token bucket: `ratePerSecond` tokens refill continuously up to `burst`; a call takes as many as
 * it costs. Time is passed in (milliseconds, monotonic) so callers read the clock once per request.
 */
/** Refill adds fractions (0.1 + 0.1 + … is not exactly 1): count a token within this as whole. */
const EPSILON = 1e-9;

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number,
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) {
      throw new RangeError(
        `token bucket needs rate > 0 and burst >= 1 (got ${ratePerSecond}, ${burst})`,
      );
    }
    this.tokens = burst;
    this.updatedAt = now;
  }

  /**
   * Takes `count` tokens when they are there; a cost above the burst can never be paid, so it
   * takes the whole bucket once it is full.
   */
  tryTake(now: number, count = 1): boolean {
    this.refill(now);
    const cost = Math.min(count, this.burst);
    if (this.tokens + EPSILON < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Seconds until `count` tokens are there (0 when they are). */
  secondsUntil(count: number, now: number): number {
    this.refill(now);
    const cost = Math.min(count, this.burst);
    return this.tokens + EPSILON >= cost ? 0 : (cost - this.tokens) / this.ratePerSecond;
  }

  private refill(now: number): void {
    const elapsedMs = now - this.updatedAt;
    if (elapsedMs <= 0) return;
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs / 1000) * this.ratePerSecond);
    this.updatedAt = now;
  }
}
