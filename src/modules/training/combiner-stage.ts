import { Impression, ItemVectors } from './dataset/dataset';
import { MetricsAccumulator } from './eval/metrics';
import { ImpressionScorer, interestModelScorer } from './eval/scorers';
import { COMBINER_INPUTS, CombinerSpec, runnableCombiner } from './model/combiner';
import { CombinerSlate, DEFAULT_COMBINER_FIT, fitCombiner } from './model/combiner-fit';
import type { InterestScorer } from './model/interest-scorer';

/** The interest scorer's floor for items without a vector: serving has no model score there. */
export const NO_MODEL_SCORE = -1e29;

/** An interest-scorer score as serving has it: NaN where the scorer had no vector. */
export const servedModelScore = (score: number): number =>
  score <= NO_MODEL_SCORE ? Number.NaN : score;

/**
 * Impressions with served inputs as combiner slates: per candidate the model's score (NaN where
 * it has none) and the logged inputs, with the logged position (0 when unknown). Candidates the
 * log does not hold are left out.
 */
export function combinerSlates(
  impressions: readonly Impression[],
  model: ImpressionScorer,
): CombinerSlate[] {
  const width = COMBINER_INPUTS.length;
  const slates: CombinerSlate[] = [];
  for (const impression of impressions) {
    const served = impression.served;
    if (served === undefined) continue;
    const clicked = new Set(impression.clicked);
    const candidates = [...impression.clicked, ...impression.notClicked].filter((itemId) =>
      Object.hasOwn(served, itemId),
    );
    if (candidates.length < 2) continue;
    const scores = model(impression, candidates);
    const inputs = new Float64Array(candidates.length * width);
    candidates.forEach((itemId, i) => {
      inputs[i * width] = servedModelScore(scores[i]);
      inputs.set(served[itemId].inputs, i * width + 1);
    });
    slates.push({
      inputs,
      positions: Int32Array.from(candidates, (itemId) => served[itemId].position),
      clicked: Uint8Array.from(candidates, (itemId) => (clicked.has(itemId) ? 1 : 0)),
    });
  }
  return slates;
}

export interface CombinerStage {
  /** Present when the combiner beat the model alone on the judged half. */
  readonly spec?: CombinerSpec;
  readonly metrics: Readonly<Record<string, number>>;
  /** Why it ships, or why not. */
  readonly note: string;
}

/**
 * Fits the learned combiner with a freshly trained model, on the held-out window's logged slates
 * (the model never trained on them: stacking, so the combiner does not learn to trust the
 * model's training-set confidence): the earlier half fits it, the later half judges the served
 * score (the shapes summed, positions left out as at serving) against the model alone. It ships
 * only when it is at least as good there.
 */
export async function fitServedCombiner(
  scorer: InterestScorer,
  validation: readonly Impression[],
  vectors: ItemVectors,
  minSlates: number,
): Promise<CombinerStage> {
  const model = interestModelScorer(scorer, vectors);
  const slates = combinerSlates(
    [...validation].sort((a, b) => a.time - b.time),
    model,
  ).filter((slate) => slate.clicked.some((c) => c > 0));
  if (slates.length < minSlates) {
    return {
      metrics: { combinerSlates: slates.length },
      note: `${slates.length} clicked, logged slates in the held-out window; ${minSlates} needed`,
    };
  }
  const half = Math.floor(slates.length / 2);
  const { spec } = await fitCombiner(slates.slice(0, half), DEFAULT_COMBINER_FIT);
  const combiner = runnableCombiner(spec);
  const width = COMBINER_INPUTS.length;
  const served = new MetricsAccumulator();
  const alone = new MetricsAccumulator();
  for (const slate of slates.slice(half)) {
    const labels = Array.from(slate.clicked);
    const scores = labels.map((_, i) => {
      let total = 0;
      for (let f = 0; f < width; f++) {
        const x = slate.inputs[i * width + f];
        total += f === 0 && Number.isNaN(x) ? combiner.missingModel : combiner.contribution(f, x);
      }
      return total;
    });
    served.add(labels, scores);
    alone.add(
      labels,
      labels.map((_, i) => {
        const x = slate.inputs[i * width];
        return Number.isNaN(x) ? NO_MODEL_SCORE : x;
      }),
    );
  }
  const combinerAuc = served.mean().auc;
  const modelAuc = alone.mean().auc;
  const ships = combinerAuc >= modelAuc;
  const judged = {
    ...spec,
    fit: { ...spec.fit, judgedSlates: slates.length - half, servedAuc: combinerAuc, modelAuc },
  };
  return {
    ...(ships ? { spec: judged } : {}),
    metrics: {
      combinerSlates: slates.length,
      combinerAuc,
      combinerModelAuc: modelAuc,
      combinerShipped: ships ? 1 : 0,
    },
    note: `served AUC ${combinerAuc.toFixed(4)} vs the model alone ${modelAuc.toFixed(4)} on ${slates.length - half} held-out slates: ${ships ? 'ships' : 'not shipped'}`,
  };
}
