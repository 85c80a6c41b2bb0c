import { ValidationError } from '../../common/errors';
import { hasControlCharacter, idProblem } from '../../common/ids';
import { FEATURE_PARTS, SCORE_PARTS } from './features';

/**
 * Ranking profiles: the named, ops-editable weights that merge the model score with the other
 * features (features.ts), and their validation.
 */

/** Built-in features; caller features are `feature:<name>`, weighted by their own key or `feature:*`. */
export const BUILT_IN_FEATURES: readonly string[] = [
  SCORE_PARTS.model.name,
  SCORE_PARTS.prior.name,
  ...FEATURE_PARTS.map((part) => part.name),
];

const DEFAULT_WEIGHTS: ReadonlyMap<string, number> = new Map([
  [SCORE_PARTS.model.name, SCORE_PARTS.model.defaultWeight],
  [SCORE_PARTS.prior.name, SCORE_PARTS.prior.defaultWeight],
  ...FEATURE_PARTS.map((part): [string, number] => [part.name, part.defaultWeight]),
]);

export const CALLER_FEATURE_PREFIX = 'feature:';
export const CALLER_FEATURE_DEFAULT = 'feature:*';

export interface Boost {
  /** Exactly one of `category` and `itemIds` selects the boosted items. */
  readonly category?: string;
  readonly itemIds?: readonly string[];
  readonly value: number;
}

/**
 * How a profile merges the built-in features: `learned` takes the served version's learned
 * combiner where it has one (hand weights otherwise); `hand` always takes the profile's weights.
 */
export const PROFILE_SCORINGS = ['learned', 'hand'] as const;
export type ProfileScoring = (typeof PROFILE_SCORINGS)[number];

export interface RankingProfile {
  readonly name: string;
  readonly scoring: ProfileScoring;
  readonly weights: Readonly<Record<string, number>>;
  readonly boosts: readonly Boost[];
  readonly recencyHalfLifeDays: number;
}

/**
 * The built-in profile: every built-in feature at its default weight, caller features at 1. The
 * `default` row in PostgreSQL starts with the same values; it serves until PostgreSQL answers.
 */
export const DEFAULT_PROFILE: RankingProfile = {
  name: 'default',
  scoring: 'learned',
  weights: { ...Object.fromEntries(DEFAULT_WEIGHTS), [CALLER_FEATURE_DEFAULT]: 1 },
  boosts: [],
  recencyHalfLifeDays: 30,
};

export interface FeatureValue {
  readonly name: string;
  readonly value: number;
}

/**
 * A feature's weight under a profile: the profile's own, else for a built-in feature its default,
 * for a caller feature the profile's `feature:*`; 0 otherwise.
 */
export function weightOf(profile: RankingProfile, feature: string): number {
  if (Object.hasOwn(profile.weights, feature)) return profile.weights[feature];
  const builtIn = DEFAULT_WEIGHTS.get(feature);
  if (builtIn !== undefined) return builtIn;
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

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const NAME_RULE = 'must be 1-64 letters, digits, "_" or "-"';
const MAX_CATEGORY_LENGTH = 200;
const CALLER_FEATURE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_WEIGHT = 1e6;
const MAX_BOOSTS = 1000;

export function isKnownFeature(name: string): boolean {
  if (BUILT_IN_FEATURES.includes(name)) return true;
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
  if (!PROFILE_SCORINGS.includes(profile.scoring)) {
    throw new ValidationError('scoring', `must be one of ${PROFILE_SCORINGS.join(', ')}`);
  }
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
