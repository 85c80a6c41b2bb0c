import { Random } from '../../../synthetic/prng';
import { countClicks, Impression, ItemVectors } from '../dataset/dataset';
import { historyUserVector, InterestScorer, memoizedItemVectors } from '../model/interest-scorer';

/** Scores the candidates of one impression (same order). */
export type ImpressionScorer = (impression: Impression, candidates: readonly string[]) => number[];

export function randomScorer(seed: number | string): ImpressionScorer {
  const random = new Random(`random-baseline:${String(seed)}`);
  return (_, candidates) => candidates.map(() => random.next());
}

/** Distinct users who clicked the item in train (history or impression click). */
export function popularityScorer(train: readonly Impression[]): ImpressionScorer {
  const counts = countClicks(train);
  return (_, candidates) => candidates.map((id) => counts.get(id) ?? 0);
}

/** The frozen encoder alone: user = mean of history text vectors, cosine with the candidate's. */
export function frozenEncoderScorer(vectors: ItemVectors): ImpressionScorer {
  const d = vectors.dimension;
  return (impression, candidates) => {
    const user = new Float64Array(d);
    for (const click of impression.history) {
      const vector = vectors.get(click.itemId);
      if (vector === undefined) continue;
      for (let i = 0; i < d; i++) user[i] += vector[i];
    }
    const userNorm = Math.sqrt(user.reduce((sum, x) => sum + x * x, 0)) || 1;
    return candidates.map((id) => {
      const vector = vectors.get(id);
      if (vector === undefined) return 0;
      let dot = 0;
      let norm = 0;
      for (let i = 0; i < d; i++) {
        dot += user[i] * vector[i];
        norm += vector[i] * vector[i];
      }
      return dot / (userNorm * (Math.sqrt(norm) || 1));
    });
  };
}

/** The trained model through the serving scorer, adapted item vectors computed once per item. */
export function interestModelScorer(
  scorer: InterestScorer,
  vectors: ItemVectors,
): ImpressionScorer {
  const itemVector = memoizedItemVectors(scorer, vectors);
  return (impression, candidates) => {
    const user = historyUserVector(scorer, itemVector, impression);
    return candidates.map((id) => {
      const vector = itemVector(id);
      // Unknown items rank last; a finite floor keeps the metric's sorting free of NaN.
      return vector === null ? -1e30 : scorer.score(user, vector, id);
    });
  };
}
