import { TokenBucket } from './token-bucket';

describe('TokenBucket', () => {
  it('grants the burst at once, then refuses until tokens refill', () => {
    const bucket = new TokenBucket(10, 20, 0);
    const granted = Array.from({ length: 25 }, () => bucket.tryTake(0)).filter(Boolean);
    expect(granted).toHaveLength(20);
    expect(bucket.tryTake(0)).toBe(false);
    expect(bucket.secondsUntil(1, 0)).toBeCloseTo(0.1, 9);
  });

  it('refills at the rate and never above the burst', () => {
    const bucket = new TokenBucket(10, 20, 0);
    for (let i = 0; i < 20; i++) bucket.tryTake(0);
    // 250 ms at 10/s: 2.5 tokens.
    expect([bucket.tryTake(250), bucket.tryTake(250), bucket.tryTake(250)]).toEqual([
      true,
      true,
      false,
    ]);
    expect(bucket.secondsUntil(1, 250)).toBeCloseTo(0.05, 9);
    const later = 250 + 3_600_000;
    const grantedAfterIdle = Array.from({ length: 30 }, () => bucket.tryTake(later));
    expect(grantedAfterIdle.filter(Boolean)).toHaveLength(20);
  });

  it('sustains exactly the rate over time', () => {
    const bucket = new TokenBucket(100, 1, 0);
    let granted = 0;
    // Asking every millisecond for 10 s: 1 (initial) + 100/s × 10 s.
    for (let ms = 0; ms <= 10_000; ms++) if (bucket.tryTake(ms)) granted++;
    expect(granted).toBe(1001);
  });

  it('ignores a clock that goes backwards', () => {
    const bucket = new TokenBucket(1, 1, 1000);
    expect(bucket.tryTake(1000)).toBe(true);
    expect(bucket.tryTake(500)).toBe(false);
    expect(bucket.tryTake(2000)).toBe(true);
  });

  it('rejects a rate or burst that could never grant', () => {
    expect(() => new TokenBucket(0, 1, 0)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0.5, 0)).toThrow(RangeError);
  });

  it('takes a cost of several tokens at once, or none', () => {
    const bucket = new TokenBucket(10, 20, 0);
    expect(bucket.tryTake(0, 15)).toBe(true);
    expect(bucket.tryTake(0, 6)).toBe(false);
    expect(bucket.secondsUntil(6, 0)).toBeCloseTo(0.1, 9);
    expect(bucket.tryTake(0, 5)).toBe(true);
    // A cost above the burst takes a full bucket.
    expect(bucket.tryTake(2000, 100)).toBe(true);
    expect(bucket.tryTake(2000)).toBe(false);
  });
});
