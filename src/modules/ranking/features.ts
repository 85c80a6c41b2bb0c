import { engagementOf, POPULARITY_WIDTH } from '../online-state/online-state.schema';
import type { ScoreCombiner } from '../serving/served-model';
import type { RankingProfile } from './profile';

/** What the merge knows of each candidate, one column per fact (index i: the i-th candidate). */
export interface CandidateFacts {
  readonly itemIds: readonly string[];
  /**
   * Decayed counts (`popularityColumns`), POPULARITY_WIDTH per candidate (candidate i's from `i * POPULARITY_WIDTH`);
   * zeros without engagement, which every feature reads as it reads none.
   */
  readonly popularity: Float64Array;
  /** ms; NaN when unknown. */
  readonly createdAtMs: Float64Array;
  /** NaN when unknown. */
  readonly price: Float64Array;
  readonly category: readonly (string | undefined)[];
}

export interface PartContext {
  readonly profile: RankingProfile;
  readonly nowMs: number;
  /** The served version's learned combiner, if it has one (used by `learned` profiles). */
  readonly combiner?: ScoreCombiner;
}

/**
 * A built-in ranking feature: its name in profiles and answers, its default weight, and `fill`,
 * which writes its value of every candidate i to `out[i * width + column]`: one loop per feature
 * over the request's columns, not a call per candidate.
 */
export interface FeaturePart {
  readonly name: string;
  readonly defaultWeight: number;
  fill(
    facts: CandidateFacts,
    context: PartContext,
    out: Float64Array,
    width: number,
    column: number,
  ): void;
}

const CTR_PRIOR = 0.05;
const CTR_PRIOR_STRENGTH = 20;
const DAY_MS = 86_400_000;

/** Candidate i's engagement squashed into [0, 1): log-scaled so a few blockbusters do not flatten the rest. */
export function popularityValue(counts: Float64Array, i: number): number {
  const at = i * POPULARITY_WIDTH;
  const engaged = engagementOf(counts[at], counts[at + 1], counts[at + 2], counts[at + 3]);
  const logged = Math.log1p(Math.max(0, engaged));
  return logged / (1 + logged);
}

/** Candidate i's click-through rate smoothed towards a 5 % prior, so a single lucky click is not a 100 % CTR. */
export function ctrValue(counts: Float64Array, i: number): number {
  const at = i * POPULARITY_WIDTH;
  const impressions = Math.max(0, counts[at]);
  const clicks = Math.max(0, counts[at + 1]);
  const ctr = (clicks + CTR_PRIOR * CTR_PRIOR_STRENGTH) / (impressions + CTR_PRIOR_STRENGTH);
  return Math.min(1, ctr);
}

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

/**
 * The first part of every item: the model's score, or, where there is none (no model, a cold
 * user, an unknown item without text), the popularity prior under its own name and weight.
 */
export const SCORE_PARTS = {
  model: { name: 'model', defaultWeight: 1 },
  prior: {
    name: 'prior',
    defaultWeight: 0.5,
    value: (facts: CandidateFacts, i: number): number => popularityValue(facts.popularity, i),
  },
} as const;

/**
 * The built-in parts after the score part, in the order answers list them. Adding a built-in
 * feature is one entry here (profiles that do not name it take its default weight).
 */
export const FEATURE_PARTS: readonly FeaturePart[] = [
  {
    name: 'popularity',
    defaultWeight: 0.2,
    fill: (facts, _context, out, width, column) => {
      for (let i = 0; i < facts.itemIds.length; i++) {
        out[i * width + column] = popularityValue(facts.popularity, i);
      }
    },
  },
  {
    name: 'ctr',
    defaultWeight: 0.5,
    fill: (facts, _context, out, width, column) => {
      for (let i = 0; i < facts.itemIds.length; i++) {
        out[i * width + column] = ctrValue(facts.popularity, i);
      }
    },
  },
  {
    name: 'recency',
    defaultWeight: 0.1,
    fill: (facts, { profile, nowMs }, out, width, column) => {
      for (let i = 0; i < facts.itemIds.length; i++) {
        out[i * width + column] = recencyValue(
          facts.createdAtMs[i],
          nowMs,
          profile.recencyHalfLifeDays,
        );
      }
    },
  },
  {
    name: 'price',
    defaultWeight: 0,
    fill: (facts, _context, out, width, column) => {
      for (let i = 0; i < facts.itemIds.length; i++) {
        out[i * width + column] = priceValue(facts.price[i]);
      }
    },
  },
  {
    name: 'boost',
    defaultWeight: 1,
    fill: (facts, { profile }, out, width, column) => {
      // Without boosts every candidate's is 0 (the table starts at 0).
      if (profile.boosts.length === 0) return;
      for (let i = 0; i < facts.itemIds.length; i++) {
        out[i * width + column] = boostValue(profile, facts.itemIds[i], facts.category[i]);
      }
    },
  },
];
