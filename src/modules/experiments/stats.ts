/**
 * Statistics for A/B tests on proportions (conversions out of trials). Pure and dependency-free,
 * so every caller computes intervals, p-values and sample sizes the same way.
 */

export interface Proportion {
  readonly successes: number;
  readonly trials: number;
}

export interface Interval {
  readonly low: number;
  readonly high: number;
}

export interface ProportionComparison {
  /** treatment rate - control rate */
  readonly difference: number;
  /** difference / control rate; null when the control rate is 0 */
  readonly relativeLift: number | null;
  /** Unpooled (Wald) interval of the difference at `confidence`. */
  readonly interval: Interval;
  /** Pooled two-proportion z statistic (0 when undefined, e.g. no trials or pooled rate 0 or 1). */
  readonly z: number;
  /** Two-sided p-value of the pooled z test (1 when undefined). */
  readonly pValue: number;
  /** pValue < 1 - confidence */
  readonly significant: boolean;
}

const SQRT_2PI = Math.sqrt(2 * Math.PI);

/** Smallest normal double; for p below it the Halley step's exp(x²/2) overflows or nearly so. */
const MIN_NORMAL = 2.2250738585072014e-308;

// Hart's rational approximation of the normal upper tail (algorithm 5666, as given by West 2005).
const HART_NUMERATOR = [
  0.0352624965998911, 0.700383064443688, 6.37396220353165, 33.912866078383, 112.079291497871,
  221.213596169931, 220.206867912376,
];
const HART_DENOMINATOR = [
  0.0883883476483184, 1.75566716318264, 16.064177579207, 86.7807322029461, 296.564248779674,
  637.333633378831, 793.826512519948, 440.413735824752,
];

// Acklam's inverse-normal coefficients: a rational fit for the centre, one in sqrt(-2 ln p) for the tails.
const ACKLAM_A = [
  -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
  2.506628277459239,
];
const ACKLAM_B = [
  -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  1,
];
const ACKLAM_C = [
  -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
  4.374664141464968, 2.938163982698783,
];
const ACKLAM_D = [
  0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416, 1,
];
/** Below this probability (and above its complement) Acklam switches to the tail fit. */
const ACKLAM_TAIL = 0.02425;

/** Evaluates a polynomial whose coefficients run from the highest power down (Horner's rule). */
function polynomial(x: number, coefficients: readonly number[]): number {
  return coefficients.reduce((sum, c) => sum * x + c, 0);
}

/**
 * Upper tail Q(x) = ½·erfc(x/√2) for x ≥ 0, absolute error about 1e-15. Computing the tail
 * directly, rather than 1 − Φ(x), keeps small p-values accurate instead of losing them to
 * cancellation.
 */
function upperTail(x: number): number {
  const density = Math.exp((-x * x) / 2);
  if (x < 7.07106781186547) {
    return (density * polynomial(x, HART_NUMERATOR)) / polynomial(x, HART_DENOMINATOR);
  }
  // Far tail: a continued fraction for Mills' ratio, where the rational fit loses accuracy.
  return density / (x + 1 / (x + 2 / (x + 3 / (x + 4 / (x + 0.65))))) / SQRT_2PI;
}

/** Standard normal CDF; absolute error about 1e-15 (see upperTail). */
export function normalCdf(z: number): number {
  return z >= 0 ? 1 - upperTail(z) : upperTail(-z);
}

/**
 * Inverse standard normal CDF: Acklam's algorithm with one Halley refinement step.
 * Throws RangeError unless 0 < p < 1.
 */
export function normalQuantile(p: number): number {
  checkOpenUnit('p', p);
  let x: number;
  if (p < ACKLAM_TAIL) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = polynomial(q, ACKLAM_C) / polynomial(q, ACKLAM_D);
  } else if (p <= 1 - ACKLAM_TAIL) {
    const q = p - 0.5;
    x = (polynomial(q * q, ACKLAM_A) * q) / polynomial(q * q, ACKLAM_B);
  } else {
    const q = Math.sqrt(-2 * Math.log1p(-p));
    x = -polynomial(q, ACKLAM_C) / polynomial(q, ACKLAM_D);
  }
  // The Halley step divides by the density, which underflows for subnormal p: keep Acklam's
  // estimate (relative error 1.15e-9) there.
  if (p < MIN_NORMAL) return x;
  // One Halley step against the accurate CDF cuts the error from about 1e-9 to about 1e-13.
  const u = (normalCdf(x) - p) * SQRT_2PI * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

/**
 * Wilson score interval for successes/trials at `confidence`. Unlike the Wald interval it stays
 * inside [0, 1] and keeps its coverage near rates of 0 or 1; with no trials it is all of [0, 1].
 */
export function wilsonInterval(proportion: Proportion, confidence = 0.95): Interval {
  checkProportion('proportion', proportion);
  const z = twoSidedCritical(confidence);
  const { successes, trials } = proportion;
  if (trials === 0) return { low: 0, high: 1 };
  const rate = successes / trials;
  const z2n = (z * z) / trials;
  const centre = (rate + z2n / 2) / (1 + z2n);
  const halfWidth = (z / (1 + z2n)) * Math.sqrt((rate * (1 - rate)) / trials + z2n / (4 * trials));
  // At 0 or all successes the bound is exactly 0 or 1; the formula leaves a rounding residue there.
  return {
    low: successes === 0 ? 0 : centre - halfWidth,
    high: successes === trials ? 1 : centre + halfWidth,
  };
}

/**
 * Compares treatment against control. An arm without trials counts as rate 0, and the interval
 * then spans every possible difference, [-1, 1].
 */
export function compareProportions(
  control: Proportion,
  treatment: Proportion,
  confidence = 0.95,
): ProportionComparison {
  checkProportion('control', control);
  checkProportion('treatment', treatment);
  const critical = twoSidedCritical(confidence);
  const controlRate = rateOf(control);
  const difference = rateOf(treatment) - controlRate;
  const relativeLift = controlRate === 0 ? null : difference / controlRate;

  const empty = control.trials === 0 || treatment.trials === 0;
  const interval = empty
    ? { low: -1, high: 1 }
    : waldInterval(control, treatment, difference, critical);

  // Under the null hypothesis both arms share one rate, so the test's standard error pools them.
  const pooled = (control.successes + treatment.successes) / (control.trials + treatment.trials);
  const undefinedTest = empty || pooled === 0 || pooled === 1;
  const z = undefinedTest
    ? 0
    : difference / Math.sqrt(pooled * (1 - pooled) * (1 / control.trials + 1 / treatment.trials));
  const pValue = undefinedTest ? 1 : 2 * normalCdf(-Math.abs(z));
  return { difference, relativeLift, interval, z, pValue, significant: pValue < 1 - confidence };
}

/**
 * Trials needed in EACH arm for a two-sided two-proportion z test at level alpha = 1 - confidence
 * and the given power to detect a change of the control rate `baseRate` by `relativeLift`
 * (treatment rate = baseRate * (1 + relativeLift)), using
 * n = (z_{1-α/2}·sqrt(2·p̄(1-p̄)) + z_{power}·sqrt(p1(1-p1)+p2(1-p2)))² / (p2-p1)², p̄=(p1+p2)/2, rounded up.
 * Returns Infinity when baseRate is 0 or 1 or the lift is 0; a p2 past 0 or 1 is capped just
 * inside (0, 1).
 */
export function trialsPerArm(
  baseRate: number,
  relativeLift: number,
  power = 0.8,
  confidence = 0.95,
): number {
  if (!(baseRate >= 0 && baseRate <= 1)) {
    throw new RangeError(`baseRate must lie between 0 and 1, got ${baseRate}`);
  }
  if (!Number.isFinite(relativeLift)) {
    throw new RangeError(`relativeLift must be a finite number, got ${relativeLift}`);
  }
  checkOpenUnit('power', power);
  const alphaCritical = twoSidedCritical(confidence);
  const p1 = baseRate;
  // Past 0 or 1 the lift asks for an impossible rate; the most extreme possible one stands in.
  const p2 = Math.min(Math.max(p1 * (1 + relativeLift), Number.EPSILON), 1 - Number.EPSILON);
  // A rate of 0 or 1 cannot change by a relative lift, and an unchanged rate is never detected.
  if (p1 === 0 || p1 === 1 || p2 === p1) return Infinity;
  const mean = (p1 + p2) / 2;
  const spread =
    alphaCritical * Math.sqrt(2 * mean * (1 - mean)) +
    normalQuantile(power) * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  return Math.ceil((spread * spread) / ((p2 - p1) * (p2 - p1)));
}

/** Unpooled interval: each arm keeps its own variance, as nothing is assumed equal here. */
function waldInterval(
  control: Proportion,
  treatment: Proportion,
  difference: number,
  critical: number,
): Interval {
  const halfWidth = critical * Math.sqrt(variance(control) + variance(treatment));
  // A difference of two proportions cannot leave [-1, 1], however wide the Wald interval is.
  return { low: Math.max(-1, difference - halfWidth), high: Math.min(1, difference + halfWidth) };
}

function rateOf({ successes, trials }: Proportion): number {
  return trials === 0 ? 0 : successes / trials;
}

/** Sampling variance of an arm's observed rate. */
function variance(p: Proportion): number {
  const rate = rateOf(p);
  return (rate * (1 - rate)) / p.trials;
}

/** z with P(|Z| < z) = confidence. */
function twoSidedCritical(confidence: number): number {
  checkOpenUnit('confidence', confidence);
  return normalQuantile(1 - (1 - confidence) / 2);
}

function checkOpenUnit(name: string, value: number): void {
  if (!(value > 0 && value < 1)) {
    throw new RangeError(`${name} must lie strictly between 0 and 1, got ${value}`);
  }
}

function checkProportion(name: string, { successes, trials }: Proportion): void {
  if (!(Number.isFinite(trials) && trials >= 0)) {
    throw new RangeError(`${name}.trials must be a finite number ≥ 0, got ${trials}`);
  }
  if (!(successes >= 0 && successes <= trials)) {
    throw new RangeError(
      `${name}.successes must lie between 0 and ${name}.trials (${trials}), got ${successes}`,
    );
  }
}
