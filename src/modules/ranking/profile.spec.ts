import { ValidationError } from '../../common/errors';
import {
  boostValue,
  ctrValue,
  DEFAULT_PROFILE,
  PartTable,
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

describe('PartTable', () => {
  it('weights every part, caller features after the base parts, and sums value × weight', () => {
    const p = profile({ weights: { model: 2, prior: 3, popularity: -1, 'feature:*': 0.25 } });
    const layouts = [
      { names: ['model', 'popularity'], weights: weightsFor(p, ['model', 'popularity']) },
      { names: ['prior', 'popularity'], weights: weightsFor(p, ['prior', 'popularity']) },
    ];
    const table = new PartTable(2, layouts, 2);
    table.values.set([0.8, 0.5, 0.1, 0.4]);
    table.complete(0, 0, {
      names: ['feature:margin'],
      values: [2],
      weights: weightsFor(p, ['feature:margin']),
    });
    table.complete(1, 1, undefined);
    expect(table.parts(0)).toEqual([
      { name: 'model', value: 0.8, weight: 2 },
      { name: 'popularity', value: 0.5, weight: -1 },
      { name: 'feature:margin', value: 2, weight: 0.25 },
    ]);
    expect(table.parts(1)).toEqual([
      { name: 'prior', value: 0.1, weight: 3 },
      { name: 'popularity', value: 0.4, weight: -1 },
    ]);
    for (const i of [0, 1]) {
      expect(table.scores[i]).toBe(
        table.parts(i).reduce((sum, part) => sum + part.value * part.weight, 0),
      );
    }
    expect(table.scores[0]).toBeCloseTo(1.6 - 0.5 + 0.5, 12);
    expect(table.scores[1]).toBeCloseTo(0.3 - 0.4, 12);
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
    expect(recencyValue(Number.NaN, now, 30)).toBe(0);
    expect(recencyValue(now + 86_400_000, now, 30)).toBe(1);
    expect(priceValue(999)).toBeCloseTo(1, 10);
    expect(priceValue(undefined)).toBe(0);
    expect(priceValue(Number.NaN)).toBe(0);
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
