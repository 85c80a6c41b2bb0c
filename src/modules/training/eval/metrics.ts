/**
 * MIND's ranking metrics (the official evaluate.py), per impression: `labels[i]` is 1 for a click,
 * `scores[i]` the model's score. Candidates are ranked like numpy's `argsort(scores)[::-1]` with a
 * stable sort: among equal scores the later candidate ranks first.
 */

export interface RankingMetrics {
  readonly auc: number;
  readonly mrr: number;
  readonly ndcg5: number;
  readonly ndcg10: number;
}

export const METRIC_NAMES = ['auc', 'mrr', 'ndcg5', 'ndcg10'] as const;

function descendingOrder(scores: readonly number[]): number[] {
  return scores
    .map((_, i) => i)
    .sort((a, b) => scores[a] - scores[b] || a - b)
    .reverse();
}

/** sklearn's roc_auc_score: the share of (click, non-click) pairs ordered right, ties count half. */
export function auc(labels: readonly number[], scores: readonly number[]): number {
  // Mann-Whitney U with mid-ranks for ties.
  const order = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const ranks = new Float64Array(scores.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]] === scores[order[i]]) j++;
    const mid = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]] = mid;
    i = j + 1;
  }
  let positives = 0;
  let rankSum = 0;
  labels.forEach((label, i) => {
    if (label > 0) {
      positives++;
      rankSum += ranks[i];
    }
  });
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

export function mrr(labels: readonly number[], scores: readonly number[]): number {
  const order = descendingOrder(scores);
  let sum = 0;
  let positives = 0;
  order.forEach((index, rank) => {
    sum += labels[index] / (rank + 1);
    positives += labels[index];
  });
  return sum / positives;
}

function dcg(labels: readonly number[], scores: readonly number[], k: number): number {
  const order = descendingOrder(scores).slice(0, k);
  let sum = 0;
  order.forEach((index, rank) => {
    sum += (2 ** labels[index] - 1) / Math.log2(rank + 2);
  });
  return sum;
}

export function ndcg(labels: readonly number[], scores: readonly number[], k: number): number {
  return dcg(labels, scores, k) / dcg(labels, labels, k);
}

/** All four for one impression; undefined when it has no click or no non-click (AUC undefined). */
export function impressionMetrics(
  labels: readonly number[],
  scores: readonly number[],
): RankingMetrics | undefined {
  const positives = labels.filter((label) => label > 0).length;
  if (positives === 0 || positives === labels.length) return undefined;
  return {
    auc: auc(labels, scores),
    mrr: mrr(labels, scores),
    ndcg5: ndcg(labels, scores, 5),
    ndcg10: ndcg(labels, scores, 10),
  };
}

/** Running mean over impressions. */
export class MetricsAccumulator {
  private readonly sums = { auc: 0, mrr: 0, ndcg5: 0, ndcg10: 0 };
  count = 0;
  skipped = 0;

  add(labels: readonly number[], scores: readonly number[]): void {
    const metrics = impressionMetrics(labels, scores);
    if (metrics === undefined) {
      this.skipped++;
      return;
    }
    this.count++;
    for (const name of METRIC_NAMES) this.sums[name] += metrics[name];
  }

  mean(): RankingMetrics {
    const n = Math.max(this.count, 1);
    return {
      auc: this.sums.auc / n,
      mrr: this.sums.mrr / n,
      ndcg5: this.sums.ndcg5 / n,
      ndcg10: this.sums.ndcg10 / n,
    };
  }
}
