import { ValidationError } from '../../common/errors';
import {
  boostValue,
  ctrValue,
  DEFAULT_PROFILE,
  MergedParts,
  popularityValue,
  priceValue,
  RankingProfile,
  recencyValue,
  validateProfile,
  weightOf,
  weightsFor,
} from './profile';

const profile = (overrides: Partial<RankingProfile> = {}): RankingProfile => ({
  ...DEFAULT_PROFILE,
  ...overrides,
});

describe('MergedParts', () => {
  it('weights every part and sums value × weight into the score', () => {
    const names = ['model', 'popularity', 'feature:margin'];
    const weights = weightsFor(
      profile({ weights: { model: 2, popularity: -1, 'feature:*': 0.25 } }),
      names,
    );
    const merged = new MergedParts(names, [0.8, 0.5, 2], weights);
    expect(merged.parts).toEqual([
      { name: 'model', value: 0.8, weight: 2 },
      { name: 'popularity', value: 0.5, weight: -1 },
      { name: 'feature:margin', value: 2, weight: 0.25 },
    ]);
    expect(merged.score).toBe(
      merged.parts.reduce((sum, part) => sum + part.value * part.weight, 0),
    );
    expect(merged.score).toBeCloseTo(1.6 - 0.5 + 0.5, 12);
  });

  it('prefers a caller feature’s own weight over feature:*, and 0 for unknown built-ins', () => {
    const p = profile({ weights: { 'feature:a': 3, 'feature:*': 1 } });
    expect(weightOf(p, 'feature:a')).toBe(3);
    expect(weightOf(p, 'feature:b')).toBe(1);
    expect(weightOf(p, 'recency')).toBe(0);
  });
});

describe('feature values', () => {
  it('squashes popularity into [0, 1) monotonically', () => {
    const low = popularityValue({ impressions: 10, clicks: 1, addToCarts: 0, purchases: 0 });
    const high = popularityValue({ impressions: 10, clicks: 100, addToCarts: 5, purchases: 2 });
    expect(popularityValue(undefined)).toBe(0);
    expect(low).toBeGreaterThan(0);
    expect(high).toBeGreaterThan(low);
    expect(high).toBeLessThan(1);
  });

  it('smooths CTR towards the prior', () => {
    expect(ctrValue(undefined)).toBeCloseTo(0.05, 10);
    expect(ctrValue({ impressions: 1, clicks: 1, addToCarts: 0, purchases: 0 })).toBeLessThan(0.1);
    expect(
      ctrValue({ impressions: 10_000, clicks: 3000, addToCarts: 0, purchases: 0 }),
    ).toBeCloseTo(0.3, 2);
  });

  it('halves recency every half-life and prices on a log scale', () => {
    const now = Date.UTC(2025, 0, 31);
    expect(recencyValue(now, now, 30)).toBe(1);
    expect(recencyValue(now - 30 * 86_400_000, now, 30)).toBeCloseTo(0.5, 10);
    expect(recencyValue(undefined, now, 30)).toBe(0);
    expect(priceValue(999)).toBeCloseTo(1, 10);
    expect(priceValue(undefined)).toBe(0);
  });

  it('adds up matching boosts by category and by item id', () => {
    const p = profile({
      boosts: [
        { category: 'garden', value: 0.5 },
        { itemIds: ['a', 'b'], value: 0.25 },
      ],
    });
    expect(boostValue(p, 'a', 'garden')).toBe(0.75);
    expect(boostValue(p, 'c', 'garden')).toBe(0.5);
    expect(boostValue(p, 'b', 'kitchen')).toBe(0.25);
    expect(boostValue(p, 'c', undefined)).toBe(0);
  });
});

describe('validateProfile', () => {
  it('accepts the default profile', () => {
    expect(validateProfile(DEFAULT_PROFILE)).toBe(DEFAULT_PROFILE);
  });

  it.each<[string, Partial<RankingProfile>]>([
    ['name', { name: 'bad name!' }],
    ['weights.colour', { weights: { colour: 1 } }],
    ['weights.model', { weights: { model: Number.POSITIVE_INFINITY } }],
    ['boosts[0]', { boosts: [{ value: 1 }] }],
    ['boosts[0]', { boosts: [{ category: 'x', itemIds: ['y'], value: 1 }] }],
    ['recencyHalfLifeDays', { recencyHalfLifeDays: 0 }],
    ['boosts[0].itemIds[1]', { boosts: [{ itemIds: ['ok', 'nul\u0000'], value: 1 }] }],
    ['boosts[0].category', { boosts: [{ category: 'tab\there', value: 1 }] }],
  ])('rejects a bad %s', (field, overrides) => {
    expect(() => validateProfile(profile(overrides))).toThrow(
      expect.objectContaining({ field }) as ValidationError,
    );
  });
});
