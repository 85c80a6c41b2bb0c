import {
  compareProportions,
  normalCdf,
  normalQuantile,
  trialsPerArm,
  wilsonInterval,
} from './stats';

// Reference values: Python's math.erfc and statistics.NormalDist, and the formulas worked by hand.
describe('normalCdf', () => {
  it('matches tabulated values', () => {
    expect(normalCdf(0)).toBe(0.5);
    expect(normalCdf(1.96)).toBeCloseTo(0.9750021048517795, 12);
    expect(normalCdf(-1)).toBeCloseTo(0.15865525393145707, 12);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316301, 12);
  });

  it('keeps far-tail probabilities instead of rounding them to 0 or 1', () => {
    expect(normalCdf(-10) / 7.619853024160593e-24).toBeCloseTo(1, 7);
    expect(normalCdf(-37)).toBeGreaterThan(0);
    expect(normalCdf(10)).toBe(1);
    expect(normalCdf(-Infinity)).toBe(0);
    expect(normalCdf(Infinity)).toBe(1);
  });

  it('is symmetric: Φ(-z) = 1 - Φ(z)', () => {
    for (const z of [0.1, 0.5, 1.3, 2.7, 5]) {
      expect(normalCdf(-z) + normalCdf(z)).toBeCloseTo(1, 15);
    }
  });
});

describe('normalQuantile', () => {
  it('matches tabulated values', () => {
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.8)).toBeCloseTo(0.8416212335729143, 12);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.3263478740408408, 12);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 8);
  });

  it('inverts normalCdf in the centre and in both tails', () => {
    for (const p of [1e-12, 0.001, 0.02425, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97575, 0.999]) {
      expect(normalCdf(normalQuantile(p)) / p).toBeCloseTo(1, 9);
    }
    for (const z of [-6, -2.5, -0.3, 0.3, 2.5, 6]) {
      expect(normalQuantile(normalCdf(z))).toBeCloseTo(z, 6);
    }
  });

  it('stays finite for the smallest subnormal probability', () => {
    expect(normalQuantile(Number.MIN_VALUE)).toBeCloseTo(-38.47, 1);
  });

  it.each([0, 1, -0.1, 1.5, NaN])('rejects p = %p', (p) => {
    expect(() => normalQuantile(p)).toThrow(RangeError);
    expect(() => normalQuantile(p)).toThrow(/^p must/);
  });
});

describe('wilsonInterval', () => {
  it('matches the reference interval for 10/100 at 95%', () => {
    const { low, high } = wilsonInterval({ successes: 10, trials: 100 });
    expect(low).toBeCloseTo(0.0552291370606751, 10);
    expect(high).toBeCloseTo(0.17436566150491345, 10);
  });

  it('starts exactly at 0 with no successes and ends exactly at 1 with all of them', () => {
    const none = wilsonInterval({ successes: 0, trials: 10 });
    expect(none.low).toBe(0);
    expect(none.high).toBeCloseTo(0.27753279986288915, 10);
    const all = wilsonInterval({ successes: 10, trials: 10 });
    expect(all.low).toBeCloseTo(0.7224672001371109, 10);
    expect(all.high).toBe(1);
  });

  it('covers everything without trials and narrows at lower confidence', () => {
    expect(wilsonInterval({ successes: 0, trials: 0 })).toEqual({ low: 0, high: 1 });
    const wide = wilsonInterval({ successes: 30, trials: 200 }, 0.99);
    const narrow = wilsonInterval({ successes: 30, trials: 200 }, 0.8);
    expect(narrow.low).toBeGreaterThan(wide.low);
    expect(narrow.high).toBeLessThan(wide.high);
  });

  it.each([
    [{ successes: 1, trials: -1 }, /^proportion\.trials/],
    [{ successes: 11, trials: 10 }, /^proportion\.successes/],
    [{ successes: -1, trials: 10 }, /^proportion\.successes/],
    [{ successes: NaN, trials: 10 }, /^proportion\.successes/],
    [{ successes: 1, trials: Infinity }, /^proportion\.trials/],
  ])('rejects %p', (proportion, message) => {
    expect(() => wilsonInterval(proportion)).toThrow(RangeError);
    expect(() => wilsonInterval(proportion)).toThrow(message);
  });

  it.each([0, 1, 95])('rejects confidence %p', (confidence) => {
    expect(() => wilsonInterval({ successes: 1, trials: 2 }, confidence)).toThrow(/^confidence/);
  });
});

describe('compareProportions', () => {
  it('matches the pooled z test for 200/1000 against 250/1000', () => {
    const result = compareProportions(
      { successes: 200, trials: 1000 },
      { successes: 250, trials: 1000 },
    );
    expect(result.difference).toBeCloseTo(0.05, 12);
    expect(result.relativeLift).toBeCloseTo(0.25, 12);
    // z = 0.05 / sqrt(0.225 · 0.775 · (1/1000 + 1/1000)) = 0.05 / 0.0186748 ≈ 2.67740.
    expect(result.z).toBeCloseTo(2.6773977630083294, 10);
    expect(result.pValue).toBeCloseTo(0.007419649261025674, 10);
    expect(result.significant).toBe(true);
    // Wald: 0.05 ± 1.96 · sqrt(0.2 · 0.8 / 1000 + 0.25 · 0.75 / 1000).
    expect(result.interval.low).toBeCloseTo(0.01346362168753986, 10);
    expect(result.interval.high).toBeCloseTo(0.08653637831246014, 10);
  });

  it('calls the same data not significant at a stricter confidence', () => {
    const result = compareProportions(
      { successes: 200, trials: 1000 },
      { successes: 250, trials: 1000 },
      0.999,
    );
    expect(result.pValue).toBeCloseTo(0.007419649261025674, 10);
    expect(result.significant).toBe(false);
  });

  it('gives z 0 and p 1 for identical rates', () => {
    const result = compareProportions(
      { successes: 100, trials: 1000 },
      { successes: 200, trials: 2000 },
    );
    expect(result.difference).toBe(0);
    expect(result.relativeLift).toBe(0);
    expect(result.z).toBe(0);
    expect(result.pValue).toBe(1);
    expect(result.significant).toBe(false);
  });

  it('reports a negative z for a worse treatment', () => {
    const result = compareProportions(
      { successes: 250, trials: 1000 },
      { successes: 200, trials: 1000 },
    );
    expect(result.z).toBeCloseTo(-2.6773977630083294, 10);
    expect(result.relativeLift).toBeCloseTo(-0.2, 12);
    expect(result.interval.high).toBeLessThan(0);
  });

  it('leaves the test undefined without trials or with a pooled rate of 0 or 1', () => {
    const empty = compareProportions({ successes: 0, trials: 0 }, { successes: 3, trials: 10 });
    expect(empty).toEqual({
      difference: 0.3,
      relativeLift: null,
      interval: { low: -1, high: 1 },
      z: 0,
      pValue: 1,
      significant: false,
    });
    const none = compareProportions({ successes: 0, trials: 50 }, { successes: 0, trials: 60 });
    expect(none).toMatchObject({ z: 0, pValue: 1, relativeLift: null });
    expect(none.interval).toEqual({ low: 0, high: 0 });
    const all = compareProportions({ successes: 50, trials: 50 }, { successes: 60, trials: 60 });
    expect(all).toMatchObject({ difference: 0, relativeLift: 0, z: 0, pValue: 1 });
  });

  it('keeps the Wald interval of small samples inside [-1, 1]', () => {
    // 0.5 ± 1.96 · sqrt(0.25 / 2 + 0): the upper end would be 1.193.
    const result = compareProportions({ successes: 1, trials: 2 }, { successes: 2, trials: 2 });
    expect(result.interval.low).toBeCloseTo(0.5 - 1.959963984540054 * Math.sqrt(0.125), 12);
    expect(result.interval.high).toBe(1);
  });

  it('names the bad argument', () => {
    const ok = { successes: 1, trials: 10 };
    expect(() => compareProportions({ successes: 5, trials: 4 }, ok)).toThrow(
      /^control\.successes/,
    );
    expect(() => compareProportions(ok, { successes: 1, trials: -3 })).toThrow(
      /^treatment\.trials/,
    );
    expect(() => compareProportions(ok, ok, 1)).toThrow(/^confidence/);
  });
});

describe('trialsPerArm', () => {
  it('matches the formula for a 10% base rate and a 20% lift', () => {
    // p1 = 0.10, p2 = 0.12, p̄ = 0.11:
    // (1.959964 · sqrt(2 · 0.11 · 0.89) + 0.841621 · sqrt(0.09 + 0.1056))² / 0.02²
    // = (0.867270 + 0.372222)² / 0.0004 = 3840.85, rounded up.
    expect(trialsPerArm(0.1, 0.2)).toBe(3841);
  });

  it('needs fewer trials for larger lifts and more for more power or confidence', () => {
    expect(trialsPerArm(0.1, 0.5)).toBe(686);
    expect(trialsPerArm(0.1, 0.5)).toBeLessThan(trialsPerArm(0.1, 0.2));
    expect(trialsPerArm(0.1, -0.2)).toBe(3213);
    expect(trialsPerArm(0.1, 0.2, 0.9, 0.99)).toBe(7281);
    expect(trialsPerArm(0.5, 0.1)).toBe(1565);
  });

  it('returns Infinity when no change can be detected', () => {
    expect(trialsPerArm(0, 0.2)).toBe(Infinity);
    expect(trialsPerArm(1, -0.2)).toBe(Infinity);
    expect(trialsPerArm(0.1, 0)).toBe(Infinity);
  });

  it('caps a treatment rate past 0 or 1 just inside', () => {
    // p2 would be 1.2 or -0.1; the formula then targets a rate of (almost) exactly 1 or 0.
    expect(trialsPerArm(0.6, 1)).toBe(Math.ceil(trialsPerArmAt(0.6, 1 - Number.EPSILON)));
    expect(trialsPerArm(0.5, -1.2)).toBe(Math.ceil(trialsPerArmAt(0.5, Number.EPSILON)));
  });

  it.each<[number, number, number, number, RegExp]>([
    [-0.1, 0.2, 0.8, 0.95, /^baseRate/],
    [1.1, 0.2, 0.8, 0.95, /^baseRate/],
    [0.1, NaN, 0.8, 0.95, /^relativeLift/],
    [0.1, 0.2, 1, 0.95, /^power/],
    [0.1, 0.2, 0.8, 0, /^confidence/],
  ])('rejects baseRate %p, lift %p, power %p, confidence %p', (rate, lift, power, conf, msg) => {
    expect(() => trialsPerArm(rate, lift, power, conf)).toThrow(RangeError);
    expect(() => trialsPerArm(rate, lift, power, conf)).toThrow(msg);
  });
});

/** The sample-size formula written out for explicit rates, at 80% power and 95% confidence. */
function trialsPerArmAt(p1: number, p2: number): number {
  const mean = (p1 + p2) / 2;
  const spread =
    1.959963984540054 * Math.sqrt(2 * mean * (1 - mean)) +
    0.8416212335729143 * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  return spread ** 2 / (p2 - p1) ** 2;
}
