import type { Arm, ExperimentDesign } from './experiment';
import type { OutcomeCounts } from './experiments.repository';
import { compareProportions, Proportion, trialsPerArm, wilsonInterval } from './stats';

/** A rate with its Wilson interval at the experiment's confidence. */
export interface RateEstimate {
  readonly rate: number;
  readonly low: number;
  readonly high: number;
}

/** One rate of an arm against the control's. */
export interface RateComparison {
  readonly difference: number;
  readonly relativeLift: number | null;
  /** Interval of the difference. */
  readonly low: number;
  readonly high: number;
  readonly pValue: number;
  readonly significant: boolean;
}

/**
 * `collecting`: an arm has fewer impressions than the design asks (figures are shown, the verdict
 * waits); otherwise the CTR difference against the control, two-sided at the design's confidence.
 */
export const VERDICTS = ['control', 'collecting', 'better', 'worse', 'no_difference'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Online figures of a set of slates: counts, and CTR and conversion per impression. */
export interface OnlineFigures {
  readonly counts: OutcomeCounts;
  readonly ctr: RateEstimate;
  /** Purchased items per impression. */
  readonly conversion: RateEstimate;
}

export interface ArmReport extends OnlineFigures {
  readonly arm: Arm;
  /** Null for the control. */
  readonly ctrVsControl: RateComparison | null;
  readonly conversionVsControl: RateComparison | null;
  /**
   * Impressions this arm and the control still need, each, for the design's power to detect its
   * minimum lift on the control's CTR; null for the control or while the control has no click.
   */
  readonly impressionsNeeded: number | null;
  readonly verdict: Verdict;
  /** The verdict in one sentence, with the figures behind it. */
  readonly summary: string;
}

const NO_OUTCOMES: OutcomeCounts = {
  slates: 0,
  impressions: 0,
  clicks: 0,
  addToCarts: 0,
  purchases: 0,
};

function estimate(proportion: Proportion, confidence: number): RateEstimate {
  const { low, high } = wilsonInterval(proportion, confidence);
  return {
    rate: proportion.trials === 0 ? 0 : proportion.successes / proportion.trials,
    low,
    high,
  };
}

function compare(control: Proportion, arm: Proportion, confidence: number): RateComparison {
  const result = compareProportions(control, arm, confidence);
  return {
    difference: result.difference,
    relativeLift: result.relativeLift,
    low: result.interval.low,
    high: result.interval.high,
    pValue: result.pValue,
    significant: result.significant,
  };
}

const clicks = (counts: OutcomeCounts): Proportion => ({
  successes: counts.clicks,
  trials: counts.impressions,
});
const purchases = (counts: OutcomeCounts): Proportion => ({
  successes: counts.purchases,
  trials: counts.impressions,
});

export function onlineFigures(
  counts: OutcomeCounts | undefined,
  confidence: number,
): OnlineFigures {
  const found = counts ?? NO_OUTCOMES;
  return {
    counts: found,
    ctr: estimate(clicks(found), confidence),
    conversion: estimate(purchases(found), confidence),
  };
}

const percent = (rate: number) => `${(rate * 100).toFixed(2)}%`;
const pText = (p: number) => (p < 0.0001 ? 'p < 0.0001' : `p = ${p.toFixed(4)}`);

/**
 * Every arm's figures against the first arm (the control): CTR and conversion with Wilson
 * intervals, the two-proportion test of each difference, and the impressions still needed.
 */
export function armReports(
  arms: readonly Arm[],
  counts: ReadonlyMap<string, OutcomeCounts>,
  design: ExperimentDesign,
): ArmReport[] {
  const { confidence } = design;
  const control = onlineFigures(counts.get(arms[0].name), confidence);
  return arms.map((arm, index): ArmReport => {
    const figures = index === 0 ? control : onlineFigures(counts.get(arm.name), confidence);
    if (index === 0) {
      return {
        ...figures,
        arm,
        ctrVsControl: null,
        conversionVsControl: null,
        impressionsNeeded: null,
        verdict: 'control',
        summary: `${arm.name} (control): CTR ${percent(figures.ctr.rate)} over ${figures.counts.impressions} impressions`,
      };
    }
    const ctrVsControl = compare(clicks(control.counts), clicks(figures.counts), confidence);
    const needed = trialsPerArm(
      control.ctr.rate,
      design.minDetectableLift,
      design.power,
      confidence,
    );
    const seen = Math.min(control.counts.impressions, figures.counts.impressions);
    const verdict = verdictOf(ctrVsControl, seen, design.minImpressions);
    return {
      ...figures,
      arm,
      ctrVsControl,
      conversionVsControl: compare(
        purchases(control.counts),
        purchases(figures.counts),
        confidence,
      ),
      impressionsNeeded: Number.isFinite(needed) ? Math.max(0, needed - seen) : null,
      verdict,
      summary: summaryOf(arm, verdict, control, figures, ctrVsControl, design),
    };
  });
}

function verdictOf(ctr: RateComparison, seen: number, minImpressions: number): Verdict {
  if (seen < minImpressions) return 'collecting';
  if (!ctr.significant) return 'no_difference';
  return ctr.difference > 0 ? 'better' : 'worse';
}

function summaryOf(
  arm: Arm,
  verdict: Verdict,
  control: OnlineFigures,
  figures: OnlineFigures,
  ctr: RateComparison,
  design: ExperimentDesign,
): string {
  const lift =
    ctr.relativeLift === null
      ? ''
      : ` (${ctr.relativeLift >= 0 ? '+' : ''}${(ctr.relativeLift * 100).toFixed(1)}%)`;
  const figuresText =
    `CTR ${percent(figures.ctr.rate)} [${percent(figures.ctr.low)}, ${percent(figures.ctr.high)}]` +
    ` vs control ${percent(control.ctr.rate)} [${percent(control.ctr.low)}, ${percent(control.ctr.high)}]${lift}, ${pText(ctr.pValue)}` +
    ` after ${figures.counts.impressions} and ${control.counts.impressions} impressions`;
  const level = `${Math.round(design.confidence * 100)}%`;
  switch (verdict) {
    case 'better':
      return `${arm.name}: significantly better than control at ${level}: ${figuresText}`;
    case 'worse':
      return `${arm.name}: significantly worse than control at ${level}: ${figuresText}`;
    case 'no_difference':
      return `${arm.name}: no significant difference from control at ${level}: ${figuresText}`;
    case 'collecting':
      return `${arm.name}: collecting (${design.minImpressions} impressions per arm before a verdict): ${figuresText}`;
    case 'control':
      return `${arm.name}: control`;
  }
}
