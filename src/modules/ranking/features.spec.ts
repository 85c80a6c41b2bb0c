import { ItemPopularity, popularityColumns } from '../online-state/online-state.schema';
import { DEFAULT_PROFILE, RankingProfile } from './profile';
import { boostValue, ctrValue, popularityValue, priceValue, recencyValue } from './features';

const profile = (overrides: Partial<RankingProfile> = {}): RankingProfile => ({
  ...DEFAULT_PROFILE,
  ...overrides,
});

/** One candidate's columns (undefined: no engagement). */
const counts = (popularity: ItemPopularity | undefined) => popularityColumns([popularity]);

describe('feature values', () => {
  it('squashes popularity into [0, 1) monotonically', () => {
    const low = popularityValue(
      counts({ impressions: 10, clicks: 1, addToCarts: 0, purchases: 0 }),
      0,
    );
    const high = popularityValue(
      counts({ impressions: 10, clicks: 100, addToCarts: 5, purchases: 2 }),
      0,
    );
    expect(popularityValue(counts(undefined), 0)).toBe(0);
    expect(low).toBeGreaterThan(0);
    expect(high).toBeGreaterThan(low);
    expect(high).toBeLessThan(1);
  });

  it('smooths CTR towards the prior', () => {
    expect(ctrValue(counts(undefined), 0)).toBeCloseTo(0.05, 10);
    expect(
      ctrValue(counts({ impressions: 1, clicks: 1, addToCarts: 0, purchases: 0 }), 0),
    ).toBeLessThan(0.1);
    expect(
      ctrValue(counts({ impressions: 10_000, clicks: 3000, addToCarts: 0, purchases: 0 }), 0),
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
