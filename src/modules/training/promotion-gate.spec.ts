import { decidePromotion, unusableMetrics } from './promotion-gate';

const active = (auc: number) => ({ id: '7', metrics: { auc, mrr: 0.3 } });

describe('decidePromotion', () => {
  it('promotes the first version when nothing is active', () => {
    expect(decidePromotion({ candidate: { auc: 0.6 }, active: null, tolerance: 0.01 }).kind).toBe(
      'promote',
    );
  });

  it('promotes a version that is better, equal, or worse by no more than the tolerance', () => {
    for (const auc of [0.75, 0.7, 0.69]) {
      const decision = decidePromotion({
        candidate: { auc },
        active: active(0.7),
        tolerance: 0.01,
      });
      expect(decision).toMatchObject({ kind: 'promote' });
      expect(decision.reason).toContain('vs active version 7 0.7000');
    }
  });

  it('keeps a version worse by more than the tolerance as a candidate, saying by how much', () => {
    const decision = decidePromotion({
      candidate: { auc: 0.62 },
      active: active(0.7),
      tolerance: 0.01,
    });
    expect(decision).toEqual({
      kind: 'candidate',
      reason: 'worse by 0.0800: auc 0.6200 vs active version 7 0.7000 (tolerance 0.0100)',
    });
  });

  it('a tolerance of zero rejects any drop', () => {
    expect(
      decidePromotion({ candidate: { auc: 0.6999 }, active: active(0.7), tolerance: 0 }).kind,
    ).toBe('candidate');
  });

  it('fails diverged training and non-finite or missing metrics, whatever is active', () => {
    expect(
      decidePromotion({
        candidate: { auc: 0.9 },
        active: null,
        tolerance: 1,
        diverged: 'loss NaN',
      }),
    ).toEqual({ kind: 'failed', reason: 'training diverged: loss NaN' });
    expect(
      decidePromotion({ candidate: { auc: Number.NaN }, active: active(0.5), tolerance: 1 }),
    ).toEqual({ kind: 'failed', reason: 'metric auc is NaN' });
    expect(
      decidePromotion({ candidate: { auc: 0.8, loss: Infinity }, active: null, tolerance: 1 }).kind,
    ).toBe('failed');
    expect(decidePromotion({ candidate: { mrr: 0.4 }, active: null, tolerance: 1 }).kind).toBe(
      'failed',
    );
  });

  it('leaves the decision to a person when the active version cannot be scored', () => {
    expect(
      decidePromotion({ candidate: { auc: 0.8 }, active: active(Number.NaN), tolerance: 0.01 })
        .kind,
    ).toBe('candidate');
  });
});

describe('unusableMetrics', () => {
  it('accepts finite metrics with an auc', () => {
    expect(unusableMetrics({ auc: 0.5, ndcg: 0.2 })).toBeUndefined();
  });
});
