import { z } from 'zod';

/**
 * The learned combiner: an additive model over the ranking features, stored in a model version's
 * artifact next to the interest model it was fitted with. Each input has a shape function (a
 * piecewise-linear curve over knots, flat beyond the ends); an item's score is the sum of its
 * inputs' shape values, so every part of an answer is exact: it is that input's contribution.
 */

/** The inputs the combiner learns a shape for, by their ranking part names. */
export const COMBINER_INPUTS = ['model', 'popularity', 'ctr', 'recency', 'price'] as const;
export type CombinerInput = (typeof COMBINER_INPUTS)[number];

export interface ShapeFunction {
  /** Strictly increasing. */
  readonly knots: readonly number[];
  /** The contribution at each knot. */
  readonly values: readonly number[];
}

export interface CombinerSpec {
  readonly kind: 'additive';
  readonly shapes: Readonly<Record<CombinerInput, ShapeFunction>>;
  /** The contribution of the model part when an item has no model score (the prior stands in). */
  readonly missingModel: number;
  /** Learned position effect (1-based position i at index i - 1); fitted, never served. */
  readonly positionBias: readonly number[];
  /** What it was fitted on, for the registry and the console. */
  readonly fit: Readonly<Record<string, number | string>>;
}

/** Piecewise-linear interpolation; flat beyond the first and last knot. */
export function shapeValue(shape: ShapeFunction, x: number): number {
  const { knots, values } = shape;
  const last = knots.length - 1;
  if (x <= knots[0]) return values[0];
  if (x >= knots[last]) return values[last];
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (knots[mid] <= x) lo = mid;
    else hi = mid;
  }
  const t = (x - knots[lo]) / (knots[hi] - knots[lo]);
  return values[lo] + t * (values[hi] - values[lo]);
}

const SHAPE = z
  .object({ knots: z.array(z.number().finite()).min(1), values: z.array(z.number().finite()) })
  .superRefine((shape, context) => {
    if (shape.values.length !== shape.knots.length) {
      context.addIssue({ code: 'custom', message: 'needs as many values as knots' });
    }
    if (shape.knots.some((knot, k) => k > 0 && !(knot > shape.knots[k - 1]))) {
      context.addIssue({ code: 'custom', path: ['knots'], message: 'must increase strictly' });
    }
  });

const SPEC = z.object({
  kind: z.literal('additive'),
  shapes: z.object(
    Object.fromEntries(COMBINER_INPUTS.map((input) => [input, SHAPE])) as Record<
      CombinerInput,
      typeof SHAPE
    >,
  ),
  missingModel: z.number().finite(),
  positionBias: z.array(z.number()),
  fit: z.record(z.union([z.number(), z.string()])),
});

/** Throws on a spec serving cannot run (a corrupt or hand-edited artifact), naming the field. */
export function validateCombiner(raw: unknown): CombinerSpec {
  const parsed = SPEC.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new Error(`combiner.${issue.path.join('.')}: ${issue.message}`);
}

/** A spec as serving runs it: the shape of input `i` (in `inputs` order) at a value. */
export interface RunnableCombiner {
  readonly inputs: readonly string[];
  readonly missingModel: number;
  contribution(input: number, value: number): number;
}

export function runnableCombiner(raw: CombinerSpec): RunnableCombiner {
  const spec = validateCombiner(raw);
  const shapes = COMBINER_INPUTS.map((input) => spec.shapes[input]);
  return {
    inputs: COMBINER_INPUTS,
    missingModel: spec.missingModel,
    contribution: (input, value) => shapeValue(shapes[input], value),
  };
}
