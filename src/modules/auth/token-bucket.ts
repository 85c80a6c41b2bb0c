/**
 * A token bucket: `ratePerSecond` tokens refill continuously up to `burst`; each request takes
 * one. Time is passed in (milliseconds, monotonic) so callers read the clock once per request.
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

  /** Takes a token when one is there. */
  tryTake(now: number): boolean {
    this.refill(now);
    if (this.tokens + EPSILON < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Seconds until the next token (0 when one is there). */
  secondsUntilNext(now: number): number {
    this.refill(now);
    return this.tokens + EPSILON >= 1 ? 0 : (1 - this.tokens) / this.ratePerSecond;
  }

  private refill(now: number): void {
    const elapsedMs = now - this.updatedAt;
    if (elapsedMs <= 0) return;
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs / 1000) * this.ratePerSecond);
    this.updatedAt = now;
  }
}
