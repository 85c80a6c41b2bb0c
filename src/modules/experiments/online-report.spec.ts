import { Arm, DEFAULT_DESIGN } from './experiment';
import type { OutcomeCounts } from './experiments.repository';
import { armReports } from './online-report';

const arms: Arm[] = [
  { name: 'control', modelVersion: null, profile: null, share: 50 },
  { name: 'treatment', modelVersion: '9', profile: null, share: 50 },
];

const counts = (impressions: number, clicks: number, purchases = 0): OutcomeCounts => ({
  slates: impressions / 10,
  impressions,
  clicks,
  addToCarts: 0,
  purchases,
});

const design = { ...DEFAULT_DESIGN, minImpressions: 1000 };

describe('online report', () => {
  it('says an arm with a significantly higher CTR is better, with the figures behind it', () => {
    const [control, treatment] = armReports(
      arms,
      new Map([
        ['control', counts(1000, 200, 10)],
        ['treatment', counts(1000, 250, 20)],
      ]),
      design,
    );
    expect(control).toMatchObject({ verdict: 'control', ctrVsControl: null });
    expect(control.ctr.rate).toBeCloseTo(0.2, 10);
    expect(treatment.verdict).toBe('better');
    expect(treatment.ctrVsControl?.difference).toBeCloseTo(0.05, 10);
    expect(treatment.ctrVsControl?.relativeLift).toBeCloseTo(0.25, 10);
    expect(treatment.ctrVsControl?.pValue).toBeCloseTo(0.0074196, 5);
    expect(treatment.conversion.rate).toBeCloseTo(0.02, 10);
    expect(treatment.ctr.low).toBeLessThan(0.25);
    expect(treatment.ctr.high).toBeGreaterThan(0.25);
    expect(treatment.summary).toMatch(
      /^treatment: significantly better than control at 95%: CTR 25\.00%/,
    );
    expect(treatment.summary).toMatch(/\(\+25\.0%\), p = 0\.0074/);
  });

  it('says worse for a significantly lower CTR, and no difference for a small one', () => {
    const worse = armReports(
      arms,
      new Map([
        ['control', counts(2000, 400)],
        ['treatment', counts(2000, 300)],
      ]),
      design,
    );
    expect(worse[1].verdict).toBe('worse');
    const same = armReports(
      arms,
      new Map([
        ['control', counts(2000, 400)],
        ['treatment', counts(2000, 410)],
      ]),
      design,
    );
    expect(same[1].verdict).toBe('no_difference');
    expect(same[1].summary).toMatch(/no significant difference/);
  });

  it('collects until both arms have the minimum impressions, and says how many more are needed', () => {
    const [, treatment] = armReports(
      arms,
      new Map([
        ['control', counts(500, 100)],
        ['treatment', counts(600, 200)],
      ]),
      design,
    );
    expect(treatment.verdict).toBe('collecting');
    // 10% lift on a 20% CTR at 80% power: 6 510 per arm (6 509.5 rounded up); the control has 500.
    expect(treatment.impressionsNeeded).toBe(6510 - 500);
  });

  it('reports zeros, not errors, for an arm without slates yet', () => {
    const [control, treatment] = armReports(arms, new Map(), design);
    expect(control.counts.impressions).toBe(0);
    expect(treatment).toMatchObject({ verdict: 'collecting', impressionsNeeded: null });
    expect(treatment.ctr).toEqual({ rate: 0, low: 0, high: 1 });
  });
});
