import { auc, impressionMetrics, MetricsAccumulator, mrr, ndcg } from './metrics';

describe('MIND metrics (hand-computed cases)', () => {
  const labels = [1, 0, 0, 1, 0];
  const scores = [0.9, 0.8, 0.3, 0.5, 0.1];

  it('AUC counts correctly ordered (click, non-click) pairs: 5 of 6', () => {
    expect(auc(labels, scores)).toBeCloseTo(5 / 6, 12);
  });

  it('MRR averages reciprocal ranks of the clicks: (1/1 + 1/3) / 2', () => {
    expect(mrr(labels, scores)).toBeCloseTo(2 / 3, 12);
  });

  it('nDCG: clicks at ranks 1 and 3 vs ideal ranks 1 and 2', () => {
    const expected = (1 + 1 / Math.log2(4)) / (1 + 1 / Math.log2(3));
    expect(ndcg(labels, scores, 5)).toBeCloseTo(expected, 12);
    expect(ndcg(labels, scores, 10)).toBeCloseTo(expected, 12);
    // Cut at 2, only the first click counts: 1 / (1 + 1/log2(3)).
    expect(ndcg(labels, scores, 2)).toBeCloseTo(1 / (1 + 1 / Math.log2(3)), 12);
  });

  it('a click at rank 7 scores 0 at nDCG@5 and 1/log2(8) at nDCG@10', () => {
    const l = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const s = [0.3, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.2, 0.1, 0.05];
    expect(ndcg(l, s, 5)).toBe(0);
    expect(ndcg(l, s, 10)).toBeCloseTo(1 / 3, 12);
    expect(mrr(l, s)).toBeCloseTo(1 / 7, 12);
    expect(auc(l, s)).toBeCloseTo(3 / 9, 12);
  });

  it('ties: AUC counts half; ranking puts the later of equal scores first (numpy argsort[::-1])', () => {
    expect(auc([0, 1, 0], [0.5, 0.5, 0.2])).toBeCloseTo(0.75, 12);
    expect(mrr([0, 1, 0], [0.5, 0.5, 0.2])).toBe(1);
    expect(mrr([1, 0, 0], [0.5, 0.5, 0.2])).toBe(0.5);
  });

  it('skips impressions without a click or without a non-click, and averages the rest', () => {
    expect(impressionMetrics([1, 1], [0.1, 0.2])).toBeUndefined();
    expect(impressionMetrics([0, 0], [0.1, 0.2])).toBeUndefined();
    const acc = new MetricsAccumulator();
    acc.add([1, 0], [0.9, 0.1]);
    acc.add([1, 0], [0.1, 0.9]);
    acc.add([0, 0], [0.1, 0.9]);
    expect(acc.count).toBe(2);
    expect(acc.skipped).toBe(1);
    expect(acc.mean().auc).toBeCloseTo(0.5, 12);
    expect(acc.mean().mrr).toBeCloseTo(0.75, 12);
  });
});
