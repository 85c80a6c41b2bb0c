import { popularityColumns } from '../online-state/online-state.schema';
import type { ScoreCombiner } from '../serving/served-model';
import { FEATURE_PARTS } from './features';
import { merge, PartTable } from './merge';
import { DEFAULT_PROFILE, RankingProfile, weightsFor } from './profile';

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
    table.inputs.set([0.8, 0.5, 0.1, 0.4]);
    table.complete(0, 0, {
      names: ['feature:margin'],
      values: [2],
      weights: weightsFor(p, ['feature:margin']),
    });
    table.complete(1, 1, undefined);
    expect(table.parts(0)).toEqual([
      { name: 'model', value: 0.8, weight: 2, input: 0.8 },
      { name: 'popularity', value: 0.5, weight: -1, input: 0.5 },
      { name: 'feature:margin', value: 2, weight: 0.25, input: 2 },
    ]);
    expect(table.parts(1)).toEqual([
      { name: 'prior', value: 0.1, weight: 3, input: 0.1 },
      { name: 'popularity', value: 0.4, weight: -1, input: 0.4 },
    ]);
    for (const i of [0, 1]) {
      expect(table.scores[i]).toBe(
        table.parts(i).reduce((sum, part) => sum + part.value * part.weight, 0),
      );
    }
    expect(table.scores[0]).toBeCloseTo(1.6 - 0.5 + 0.5, 12);
    expect(table.scores[1]).toBeCloseTo(0.3 - 0.4, 12);
  });
});

describe('merge', () => {
  const NOW = Date.UTC(2025, 5, 1);
  const input = (overrides: Partial<Parameters<typeof merge>[0]> = {}) => ({
    itemIds: ['a', 'b', 'c'],
    popularity: popularityColumns([
      { impressions: 100, clicks: 10, addToCarts: 1, purchases: 0 },
      undefined,
      { impressions: 5, clicks: 0, addToCarts: 0, purchases: 0 },
    ]),
    createdAtMs: Float64Array.of(NOW, Number.NaN, NOW - 30 * 86_400_000),
    price: Float64Array.of(10, Number.NaN, 1000),
    category: ['x', undefined, 'y'],
    modelScores: Float64Array.of(0.5, 2, Number.NaN),
    callerFeatures: [undefined, [{ name: 'margin', value: 0.5 }], null],
    ...overrides,
  });

  it('lists the score part, then every built-in part in order, then caller features', () => {
    const { table } = merge(input(), { profile: DEFAULT_PROFILE, nowMs: NOW });
    const names = (i: number) => table.parts(i).map((part) => part.name);
    const builtIns = FEATURE_PARTS.map((part) => part.name);
    expect(names(0)).toEqual(['model', ...builtIns]);
    expect(names(1)).toEqual(['model', ...builtIns, 'feature:margin']);
    // No model score: the popularity prior stands in, under its own name and weight.
    expect(names(2)).toEqual(['prior', ...builtIns]);
    expect(table.parts(2)[0]).toEqual({
      name: 'prior',
      value: table.parts(2)[1].value,
      weight: DEFAULT_PROFILE.weights.prior,
      input: table.parts(2)[1].value,
    });
  });

  it('scores each item as exactly the sum of value × weight and orders best first', () => {
    const { table, order } = merge(input(), { profile: DEFAULT_PROFILE, nowMs: NOW });
    for (let i = 0; i < 3; i++) {
      const sum = table.parts(i).reduce((total, part) => total + part.value * part.weight, 0);
      expect(table.scores[i]).toBeCloseTo(sum, 12);
    }
    expect(Array.from(order)).toEqual([1, 0, 2]);
  });

  it('applies the profile: weights, boosts by category, the recency half-life', () => {
    const p = profile({
      weights: { model: 0, popularity: 0, ctr: 0, recency: 1, price: 0, boost: 1, prior: 0 },
      boosts: [{ category: 'y', value: 10 }],
      recencyHalfLifeDays: 30,
    });
    const { table, order } = merge(input(), { profile: p, nowMs: NOW });
    expect(table.scores[2]).toBeCloseTo(10.5, 10);
    expect(table.scores[0]).toBeCloseTo(1, 10);
    expect(Array.from(order)).toEqual([2, 0, 1]);
  });

  it('is pure: the same input gives the same answer', () => {
    const first = merge(input(), { profile: DEFAULT_PROFILE, nowMs: NOW });
    const second = merge(input(), { profile: DEFAULT_PROFILE, nowMs: NOW });
    expect(Array.from(second.table.scores)).toEqual(Array.from(first.table.scores));
    expect(Array.from(second.order)).toEqual(Array.from(first.order));
  });

  it('refuses a score that is not a finite number, naming the item and the part', () => {
    const broken = input({ modelScores: Float64Array.of(Number.POSITIVE_INFINITY, 1, 1) });
    expect(() => merge(broken, { profile: DEFAULT_PROFILE, nowMs: NOW })).toThrow(
      expect.objectContaining({
        code: 'INTERNAL',
        details: { itemId: 'a', part: 'model' },
      }) as Error,
    );
  });

  describe('with a learned combiner', () => {
    // Contribution = slope × input per combined input, so the expected values are easy to read.
    const slopes = [2, 1, -3, 0.5, -1];
    const combiner: ScoreCombiner = {
      inputs: ['model', 'popularity', 'ctr', 'recency', 'price'],
      missingModel: -0.7,
      contribution: (f, x) => slopes[f] * x,
    };
    const boosted = profile({
      boosts: [{ category: 'y', value: 4 }],
      weights: { boost: 0.5, 'feature:*': 1 },
    });

    it('a learned profile takes the shapes at weight 1; boosts and caller features keep theirs', () => {
      const { table } = merge(input(), { profile: boosted, nowMs: NOW, combiner });
      const [model, popularity, ctr] = table.parts(0);
      expect(model).toEqual({ name: 'model', input: 0.5, value: 1, weight: 1 });
      expect(popularity.value).toBeCloseTo(popularity.input, 12);
      expect(ctr.value).toBeCloseTo(-3 * ctr.input, 12);
      expect(ctr.weight).toBe(1);
      expect(table.parts(2).find((part) => part.name === 'boost')).toEqual({
        name: 'boost',
        input: 4,
        value: 4,
        weight: 0.5,
      });
      expect(table.parts(1).at(-1)).toMatchObject({ name: 'feature:margin', weight: 1 });
      // No model score: the prior's value is the combiner's constant, its input the popularity.
      expect(table.parts(2)[0]).toMatchObject({ name: 'prior', value: -0.7, weight: 1 });
      for (let i = 0; i < 3; i++) {
        const sum = table.parts(i).reduce((total, part) => total + part.value * part.weight, 0);
        expect(table.scores[i]).toBeCloseTo(sum, 12);
      }
    });

    it('a hand profile ignores the combiner', () => {
      const hand = profile({ scoring: 'hand' });
      const withCombiner = merge(input(), { profile: hand, nowMs: NOW, combiner });
      const without = merge(input(), { profile: hand, nowMs: NOW });
      expect(Array.from(withCombiner.table.scores)).toEqual(Array.from(without.table.scores));
    });
  });
});
