import { ValidationError } from '../../common/errors';
import { hasControlCharacter, idProblem } from '../../common/ids';

/**
 * Ranking profiles: the named, ops-editable recipe that merges the model score with the other
 * features. Pure functions only: values in, parts and score out.
 */

/** Built-in features; caller features are `feature:<name>`, weighted by their own key or `feature:*`. */
export const BUILT_IN_FEATURES = [
  'model',
  'prior',
  'popularity',
  'ctr',
  'recency',
  'price',
  'boost',
] as const;
export type BuiltInFeature = (typeof BUILT_IN_FEATURES)[number];

export const CALLER_FEATURE_PREFIX = 'feature:';
export const CALLER_FEATURE_DEFAULT = 'feature:*';

export interface Boost {
  /** Exactly one of `category` and `itemIds` selects the boosted items. */
  readonly category?: string;
  readonly itemIds?: readonly string[];
  readonly value: number;
}

export interface RankingProfile {
  readonly name: string;
  readonly weights: Readonly<Record<string, number>>;
  readonly boosts: readonly Boost[];
  readonly recencyHalfLifeDays: number;
}

/** Same values as the seeded `default` row (migrations/*_ranking-profiles.sql): used until PostgreSQL answers. */
export const DEFAULT_PROFILE: RankingProfile = {
  name: 'default',
  weights: {
    model: 1,
    prior: 0.5,
    popularity: 0.2,
    ctr: 0.5,
    recency: 0.1,
    price: 0,
    boost: 1,
    [CALLER_FEATURE_DEFAULT]: 1,
  },
  boosts: [],
  recencyHalfLifeDays: 30,
};

export interface FeatureValue {
  readonly name: string;
  readonly value: number;
}

export interface ScorePart {
  readonly name: string;
  readonly value: number;
  readonly weight: number;
}

export function weightOf(profile: RankingProfile, feature: string): number {
  if (Object.hasOwn(profile.weights, feature)) return profile.weights[feature];
  if (
    feature.startsWith(CALLER_FEATURE_PREFIX) &&
    Object.hasOwn(profile.weights, CALLER_FEATURE_DEFAULT)
  ) {
    return profile.weights[CALLER_FEATURE_DEFAULT];
  }
  return 0;
}

/** The weight of each named part under a profile; resolved once per request, not per item. */
export function weightsFor(profile: RankingProfile, names: readonly string[]): number[] {
  return names.map((name) => weightOf(profile, name));
}

/** Parts beyond an item's base parts: the caller features it came with. */
export interface ExtraParts {
  readonly names: readonly string[];
  readonly values: readonly number[];
  readonly weights: readonly number[];
}

/** The base parts of an item: which names and weights its `width` base values go with. */
export interface PartLayout {
  readonly names: readonly string[];
  readonly weights: readonly number[];
}

/**
 * The merged parts of one request's items, stored column-wise (one allocation per request, not
 * several per item). Each item has `width` base values, laid out by one of the layouts, plus
 * optional extra parts. `parts(i)` is built only when read (a caller that does not select parts
 * allocates nothing per part), in the same order, so a score is exactly the sum of value × weight.
 */
export class PartTable {
  readonly scores: Float64Array;
  /** Item i's base values are `values[i * width .. (i + 1) * width)`. */
  readonly values: Float64Array;
  private readonly layoutOf: Uint8Array;
  private readonly extras: (ExtraParts | undefined)[];

  constructor(
    readonly size: number,
    private readonly layouts: readonly PartLayout[],
    readonly width: number,
  ) {
    this.scores = new Float64Array(size);
    this.values = new Float64Array(size * width);
    this.layoutOf = new Uint8Array(size);
    this.extras = new Array<ExtraParts | undefined>(size);
  }

  /** Sums item i's score once its base values are written. */
  complete(i: number, layout: number, extra: ExtraParts | undefined): void {
    const { weights } = this.layouts[layout];
    const offset = i * this.width;
    let score = 0;
    for (let j = 0; j < this.width; j++) score += this.values[offset + j] * weights[j];
    if (extra !== undefined) {
      for (let j = 0; j < extra.values.length; j++) score += extra.values[j] * extra.weights[j];
    }
    this.scores[i] = score;
    this.layoutOf[i] = layout;
    this.extras[i] = extra;
  }

  parts(i: number): ScorePart[] {
    const { names, weights } = this.layouts[this.layoutOf[i]];
    const offset = i * this.width;
    const parts: ScorePart[] = [];
    for (let j = 0; j < this.width; j++) {
      parts.push({ name: names[j], value: this.values[offset + j], weight: weights[j] });
    }
    const extra = this.extras[i];
    extra?.names.forEach((name, j) => {
      parts.push({ name, value: extra.values[j], weight: extra.weights[j] });
    });
    return parts;
  }
}

/** Decayed interaction counts of an item (online state). */
export interface ItemPopularity {
  readonly impressions: number;
  readonly clicks: number;
  readonly addToCarts: number;
  readonly purchases: number;
}

const CTR_PRIOR = 0.05;
const CTR_PRIOR_STRENGTH = 20;

/** Engagement squashed into [0, 1): log-scaled so a few blockbusters do not flatten the rest. */
export function popularityValue(pop: ItemPopularity | undefined): number {
  if (pop === undefined) return 0;
  const engagement = Math.max(0, pop.clicks + 3 * pop.addToCarts + 5 * pop.purchases);
  const logged = Math.log1p(engagement);
  return logged / (1 + logged);
}

/** Click-through rate smoothed towards a 5 % prior, so a single lucky click is not a 100 % CTR. */
export function ctrValue(pop: ItemPopularity | undefined): number {
  const clicks = Math.max(0, pop?.clicks ?? 0);
  const impressions = Math.max(0, pop?.impressions ?? 0);
  const ctr = (clicks + CTR_PRIOR * CTR_PRIOR_STRENGTH) / (impressions + CTR_PRIOR_STRENGTH);
  return Math.min(1, ctr);
}

const DAY_MS = 86_400_000;

/**
 * 1 for a new item, halving every `halfLifeDays`; 0 when the creation time is unknown (undefined
 * or NaN). `Math.exp` rather than `2 **`: V8's pow takes about 4x as long.
 */
export function recencyValue(
  createdAtMs: number | undefined,
  nowMs: number,
  halfLifeDays: number,
): number {
  if (createdAtMs === undefined || Number.isNaN(createdAtMs)) return 0;
  const ageDays = Math.max(0, nowMs - createdAtMs) / DAY_MS;
  return Math.exp((-Math.LN2 * ageDays) / halfLifeDays);
}

/**
 * log10(1 + price) / 3: about 1 at 1,000; 0 when unknown (undefined or NaN). A negative weight
 * favours cheap items.
 */
export function priceValue(price: number | undefined): number {
  if (price === undefined || !(price >= 0)) return 0;
  return Math.log10(1 + price) / 3;
}

export function boostValue(
  profile: RankingProfile,
  itemId: string,
  category: string | undefined,
): number {
  let total = 0;
  for (const boost of profile.boosts) {
    if (
      boost.category !== undefined ? boost.category === category : boost.itemIds?.includes(itemId)
    ) {
      total += boost.value;
    }
  }
  return total;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const NAME_RULE = 'must be 1-64 letters, digits, "_" or "-"';
const MAX_CATEGORY_LENGTH = 200;
const CALLER_FEATURE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_WEIGHT = 1e6;
const MAX_BOOSTS = 1000;

export function isKnownFeature(name: string): boolean {
  if ((BUILT_IN_FEATURES as readonly string[]).includes(name)) return true;
  if (name === CALLER_FEATURE_DEFAULT) return true;
  return (
    name.startsWith(CALLER_FEATURE_PREFIX) &&
    CALLER_FEATURE.test(name.slice(CALLER_FEATURE_PREFIX.length))
  );
}

export function isCallerFeatureName(name: string): boolean {
  return CALLER_FEATURE.test(name);
}

/** Checks a profile name a caller asks for (`field` names the argument it came in). */
export function validateProfileName(name: string, field: string): void {
  if (!NAME.test(name)) throw new ValidationError(field, NAME_RULE);
}

/** Checks a profile an operator submits; names the offending field. */
export function validateProfile(profile: RankingProfile): RankingProfile {
  validateProfileName(profile.name, 'name');
  for (const [feature, weight] of Object.entries(profile.weights)) {
    if (!isKnownFeature(feature)) {
      throw new ValidationError(
        `weights.${feature}`,
        `unknown feature; use one of ${BUILT_IN_FEATURES.join(', ')}, feature:<name> or feature:*`,
      );
    }
    if (!Number.isFinite(weight) || Math.abs(weight) > MAX_WEIGHT) {
      throw new ValidationError(`weights.${feature}`, `must be finite and at most ${MAX_WEIGHT}`);
    }
  }
  if (profile.boosts.length > MAX_BOOSTS) {
    throw new ValidationError('boosts', `at most ${MAX_BOOSTS} boosts`);
  }
  profile.boosts.forEach((boost, i) => {
    if ((boost.category === undefined) === (boost.itemIds === undefined)) {
      throw new ValidationError(`boosts[${i}]`, 'give exactly one of category and itemIds');
    }
    if (
      boost.category !== undefined &&
      (boost.category.length === 0 ||
        boost.category.length > MAX_CATEGORY_LENGTH ||
        hasControlCharacter(boost.category))
    ) {
      throw new ValidationError(
        `boosts[${i}].category`,
        `must be 1-${MAX_CATEGORY_LENGTH} characters without control characters`,
      );
    }
    boost.itemIds?.forEach((itemId, j) => {
      const problem = idProblem(itemId);
      if (problem !== undefined) throw new ValidationError(`boosts[${i}].itemIds[${j}]`, problem);
    });
    if (!Number.isFinite(boost.value) || Math.abs(boost.value) > MAX_WEIGHT) {
      throw new ValidationError(`boosts[${i}].value`, `must be finite and at most ${MAX_WEIGHT}`);
    }
  });
  if (!(profile.recencyHalfLifeDays > 0 && profile.recencyHalfLifeDays <= 36_500)) {
    throw new ValidationError('recencyHalfLifeDays', 'must be in (0, 36500]');
  }
  return profile;
}
