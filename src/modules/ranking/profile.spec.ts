import { ValidationError } from '../../common/errors';
import { DEFAULT_PROFILE, RankingProfile, validateProfile, weightOf } from './profile';

const profile = (overrides: Partial<RankingProfile> = {}): RankingProfile => ({
  ...DEFAULT_PROFILE,
  ...overrides,
});

describe('weightOf', () => {
  it('prefers a caller feature’s own weight over feature:*, built-ins not named at their default', () => {
    const p = profile({ weights: { 'feature:a': 3, 'feature:*': 1 } });
    expect(weightOf(p, 'feature:a')).toBe(3);
    expect(weightOf(p, 'feature:b')).toBe(1);
    expect(weightOf(p, 'recency')).toBe(0.1);
    expect(weightOf(profile({ weights: {} }), 'feature:x')).toBe(0);
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
