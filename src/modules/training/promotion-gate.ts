import type { ModelMetrics } from '../registry/registry.types';

/** The metric the gate compares; the others are recorded for people. */
export const GATE_METRIC = 'auc';

export type GateDecision =
  | { readonly kind: 'promote'; readonly reason: string }
  | { readonly kind: 'candidate'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };

const fmt = (value: number) => value.toFixed(4);

/** A reason when training produced something unusable (non-finite metrics), else undefined. */
export function unusableMetrics(metrics: ModelMetrics): string | undefined {
  for (const [name, value] of Object.entries(metrics)) {
    if (!Number.isFinite(value)) return `metric ${name} is ${String(value)}`;
  }
  if (!(GATE_METRIC in metrics)) return `no ${GATE_METRIC} metric`;
  return undefined;
}

/**
 * Whether a freshly trained version may replace the active one. Both were scored on the same
 * validation window; the new one passes when its AUC is at most `tolerance` below the active's.
 */
export function decidePromotion(input: {
  readonly candidate: ModelMetrics;
  /** The active version's metrics on the candidate's validation window; null when none is active. */
  readonly active: { readonly id: string; readonly metrics: ModelMetrics } | null;
  readonly tolerance: number;
  readonly diverged?: string;
}): GateDecision {
  if (input.diverged !== undefined) {
    return { kind: 'failed', reason: `training diverged: ${input.diverged}` };
  }
  const unusable = unusableMetrics(input.candidate);
  if (unusable !== undefined) return { kind: 'failed', reason: unusable };
  const score = input.candidate[GATE_METRIC] ?? Number.NaN;
  if (input.active === null) {
    return { kind: 'promote', reason: `no active version; ${GATE_METRIC} ${fmt(score)}` };
  }
  const baseline = GATE_METRIC in input.active.metrics ? input.active.metrics[GATE_METRIC] : NaN;
  if (!Number.isFinite(baseline)) {
    // Cannot tell whether the new one is better: a person decides.
    return {
      kind: 'candidate',
      reason: `active version ${input.active.id} has no finite ${GATE_METRIC} on the window`,
    };
  }
  const drop = baseline - score;
  const comparison = `${GATE_METRIC} ${fmt(score)} vs active version ${input.active.id} ${fmt(baseline)} (tolerance ${fmt(input.tolerance)})`;
  // The epsilon keeps float noise (0.70 - 0.69 = 0.0100000001) from flipping a boundary case.
  if (drop <= input.tolerance + 1e-9) return { kind: 'promote', reason: comparison };
  return { kind: 'candidate', reason: `worse by ${fmt(drop)}: ${comparison}` };
}
