import { DomainError } from '../../common/errors';
import type { ScoreCombiner } from '../serving/served-model';
import { bestFirst } from '../serving/top-k';
import { CandidateFacts, FEATURE_PARTS, PartContext, SCORE_PARTS } from './features';
import { CALLER_FEATURE_PREFIX, FeatureValue, RankingProfile, weightsFor } from './profile';

/**
 * One term of an item's score: the score is exactly the sum of value × weight. `input` is the
 * feature's own value; `value` is the same under hand weights, and the learned shape's
 * contribution at `input` under the version's combiner.
 */
export interface ScorePart {
  readonly name: string;
  readonly value: number;
  readonly weight: number;
  readonly input: number;
}

/** What the merge takes: the candidates' facts, their model scores and their own features. */
export interface MergeInput extends CandidateFacts {
  /** The model's score of each candidate; NaN where there is none (the prior stands in). */
  readonly modelScores: Float64Array;
  /** The caller's features of each candidate, if any. */
  readonly callerFeatures: readonly (readonly FeatureValue[] | null | undefined)[];
}

export interface Merged {
  /** Every candidate's parts and score. */
  readonly table: PartTable;
  /** Candidate indexes, best score first (ties: input order). */
  readonly order: Int32Array;
}

/** Parts beyond an item's base parts: the caller features it came with. */
interface ExtraParts {
  readonly names: readonly string[];
  readonly values: readonly number[];
  readonly weights: readonly number[];
}

/**
 * The base parts of an item: which names and weights its `width` base inputs go with, and, under
 * a learned combiner, which shape turns each input into its value (`shapes[j]`: the combiner's
 * input index, UNSHAPED, or MISSING_MODEL for the prior standing in for the model).
 */
export interface PartLayout {
  readonly names: readonly string[];
  readonly weights: readonly number[];
  readonly shapes?: Int8Array;
  readonly combiner?: ScoreCombiner;
}

const MODEL_LAYOUT = 0;
const PRIOR_LAYOUT = 1;
const UNSHAPED = -1;
const MISSING_MODEL = -2;

/**
 * The merge of every candidate's score part (model or prior) and built-in feature parts
 * (features.ts), plus the caller's own features. Under a `learned` profile and a version with a
 * combiner, the built-in parts are the combiner's shapes (weight 1) and only boosts and caller
 * features take the profile's weights; otherwise the profile weights every part by hand. Pure:
 * the same input gives the same table and order.
 */
export function merge(input: MergeInput, context: PartContext): Merged {
  const { profile } = context;
  const count = input.itemIds.length;
  const combiner = profile.scoring === 'learned' ? context.combiner : undefined;
  const layouts = layoutsFor(profile, combiner);
  const width = PART_NAMES.model.length;
  const table = new PartTable(count, layouts, width);
  const { inputs } = table;
  for (let j = 0; j < FEATURE_PARTS.length; j++) {
    FEATURE_PARTS[j].fill(input, context, inputs, width, 1 + j);
  }
  for (let i = 0; i < count; i++) {
    const modelScore = input.modelScores[i];
    const withModel = !Number.isNaN(modelScore);
    inputs[i * width] = withModel ? modelScore : SCORE_PARTS.prior.value(input, i);
    table.complete(
      i,
      withModel ? MODEL_LAYOUT : PRIOR_LAYOUT,
      callerParts(profile, input.callerFeatures[i]),
    );
    if (!Number.isFinite(table.scores[i])) throw notFinite(input.itemIds[i], table.parts(i));
  }
  return { table, order: bestFirst(table.scores) };
}

const FEATURE_NAMES = FEATURE_PARTS.map((part) => part.name);
const PART_NAMES = {
  model: [SCORE_PARTS.model.name, ...FEATURE_NAMES],
  prior: [SCORE_PARTS.prior.name, ...FEATURE_NAMES],
};

/** A profile's layouts under the combiner it was last merged with (profiles are immutable). */
const layoutCache = new WeakMap<
  RankingProfile,
  { combiner: ScoreCombiner | undefined; layouts: readonly PartLayout[] }
>();

/** The model and prior layouts (MODEL_LAYOUT, PRIOR_LAYOUT) of a profile under `combiner`. */
function layoutsFor(
  profile: RankingProfile,
  combiner: ScoreCombiner | undefined,
): readonly PartLayout[] {
  const cached = layoutCache.get(profile);
  if (cached !== undefined && cached.combiner === combiner) return cached.layouts;
  const { model, prior } = PART_NAMES;
  const layouts =
    combiner === undefined
      ? [
          { names: model, weights: weightsFor(profile, model) },
          { names: prior, weights: weightsFor(profile, prior) },
        ]
      : [
          learnedLayout(profile, model, combiner, false),
          learnedLayout(profile, prior, combiner, true),
        ];
  layoutCache.set(profile, { combiner, layouts });
  return layouts;
}

/** Parts the combiner has a shape for weigh 1; the rest (boosts) keep the profile's weight. */
function learnedLayout(
  profile: RankingProfile,
  names: readonly string[],
  combiner: ScoreCombiner,
  prior: boolean,
): PartLayout {
  const shapes = Int8Array.from(names, (name, j) =>
    j === 0 && prior ? MISSING_MODEL : combiner.inputs.indexOf(name),
  );
  const weights = weightsFor(profile, names).map((weight, j) =>
    shapes[j] === UNSHAPED ? weight : 1,
  );
  return { names, weights, shapes, combiner };
}

/**
 * Every input is bounded (decay clamped, times and values validated at ingest), so this is a
 * bug, not bad input: say which item and which part, never a NaN the GraphQL layer refuses.
 */
function notFinite(itemId: string, parts: readonly ScorePart[]): DomainError {
  const part = parts.find((entry) => !Number.isFinite(entry.value * entry.weight));
  return new DomainError(
    'INTERNAL',
    `item ${itemId}: the score is not a finite number (part ${part?.name ?? 'sum'})`,
    { itemId, part: part?.name ?? null },
  );
}

/** The caller's own features of a candidate as parts named `feature:<name>`. */
function callerParts(
  profile: RankingProfile,
  features: readonly FeatureValue[] | null | undefined,
): ExtraParts | undefined {
  if (features == null || features.length === 0) return undefined;
  const names = features.map((feature) => `${CALLER_FEATURE_PREFIX}${feature.name}`);
  return {
    names,
    values: features.map((feature) => feature.value),
    weights: weightsFor(profile, names),
  };
}

/**
 * The merged parts of one request's items, stored column-wise (one allocation per request, not
 * several per item). Each item has `width` base inputs, laid out by one of the layouts, plus
 * optional extra parts. `parts(i)` is built only when read (a caller that does not select parts
 * allocates nothing per part), in the same order, so a score is exactly the sum of value × weight.
 */
export class PartTable {
  readonly scores: Float64Array;
  /** Item i's base inputs are `inputs[i * width .. (i + 1) * width)`. */
  readonly inputs: Float64Array;
  /** The base parts' values: the inputs themselves unless a layout shapes them. */
  readonly values: Float64Array;
  private readonly layoutOf: Uint8Array;
  /** Caller parts by item; allocated with the first item that has any. */
  private extras: (ExtraParts | undefined)[] | undefined;

  constructor(
    readonly size: number,
    private readonly layouts: readonly PartLayout[],
    readonly width: number,
  ) {
    // One allocation for the columns: a typed array of its own costs a malloc and a sweep each.
    const shaped = layouts.some((layout) => layout.shapes !== undefined);
    const columns = new Float64Array(size * (1 + width * (shaped ? 2 : 1)));
    this.scores = columns.subarray(0, size);
    this.inputs = columns.subarray(size, size * (1 + width));
    this.values = shaped ? columns.subarray(size * (1 + width)) : this.inputs;
    this.layoutOf = new Uint8Array(size);
  }

  /** Shapes item i's inputs into values and sums its score, once its inputs are written. */
  complete(i: number, layout: number, extra: ExtraParts | undefined): void {
    const { weights, shapes, combiner } = this.layouts[layout];
    const offset = i * this.width;
    if (shapes !== undefined && combiner !== undefined) {
      for (let j = 0; j < this.width; j++) {
        const shape = shapes[j];
        const input = this.inputs[offset + j];
        this.values[offset + j] =
          shape === UNSHAPED
            ? input
            : shape === MISSING_MODEL
              ? combiner.missingModel
              : combiner.contribution(shape, input);
      }
    }
    let score = 0;
    for (let j = 0; j < this.width; j++) score += this.values[offset + j] * weights[j];
    if (extra !== undefined) {
      for (let j = 0; j < extra.values.length; j++) score += extra.values[j] * extra.weights[j];
    }
    this.scores[i] = score;
    this.layoutOf[i] = layout;
    if (extra !== undefined)
      (this.extras ??= new Array<ExtraParts | undefined>(this.size))[i] = extra;
  }

  parts(i: number): ScorePart[] {
    const { names, weights } = this.layouts[this.layoutOf[i]];
    const offset = i * this.width;
    const parts: ScorePart[] = [];
    for (let j = 0; j < this.width; j++) {
      parts.push({
        name: names[j],
        value: this.values[offset + j],
        weight: weights[j],
        input: this.inputs[offset + j],
      });
    }
    const extra = this.extras?.[i];
    extra?.names.forEach((name, j) => {
      parts.push({
        name,
        value: extra.values[j],
        weight: extra.weights[j],
        input: extra.values[j],
      });
    });
    return parts;
  }
}
