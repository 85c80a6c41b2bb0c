import { ValidationError } from '../../common/errors';
import { hasControlCharacter } from '../../common/ids';

/**
 * Online experiments: users split into arms by a hash of salt and user id, each arm serving a
 * model version and a profile. Validation of what ops submit lives here too.
 */

export const EXPERIMENT_STATUSES = ['draft', 'running', 'stopped'] as const;
export type ExperimentStatus = (typeof EXPERIMENT_STATUSES)[number];

/** `ab`: arms ops define and judge; `canary`: control and one new version, judged automatically. */
export const EXPERIMENT_KINDS = ['ab', 'canary'] as const;
export type ExperimentKind = (typeof EXPERIMENT_KINDS)[number];

export interface Arm {
  readonly name: string;
  /** The version this arm serves; null: whichever version is active. */
  readonly modelVersion: string | null;
  /** The profile this arm ranks with; null: the one the request names (default without one). */
  readonly profile: string | null;
  /** Percent of the experiment's users; the arms' shares sum to 100. */
  readonly share: number;
}

/** How the report judges the arms (see stats.ts). */
export interface ExperimentDesign {
  /** Impressions every arm needs before a canary is judged (and a verdict is final). */
  readonly minImpressions: number;
  /** The relative CTR change the sample-size figure is sized to detect (0.1: ±10%). */
  readonly minDetectableLift: number;
  readonly confidence: number;
  readonly power: number;
}

export interface Experiment extends ExperimentDesign {
  readonly id: string;
  readonly name: string;
  readonly kind: ExperimentKind;
  readonly status: ExperimentStatus;
  readonly salt: string;
  /** The first arm is the control every other arm is compared to. */
  readonly arms: readonly Arm[];
  readonly outcome: string | null;
  readonly outcomeReason: string | null;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly stoppedAt: Date | null;
}

export interface NewExperiment extends ExperimentDesign {
  readonly name: string;
  readonly kind: ExperimentKind;
  readonly salt: string;
  readonly arms: readonly Arm[];
}

export const DEFAULT_DESIGN: ExperimentDesign = {
  minImpressions: 2000,
  minDetectableLift: 0.1,
  confidence: 0.95,
  power: 0.8,
};

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NAME_RULE = 'must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit';
const MAX_ARMS = 10;
const MAX_SALT_LENGTH = 200;
/** Shares are percents; their sum may miss 100 by rounding only. */
const SHARE_TOLERANCE = 1e-6;

/** Checks what ops submit; throws a ValidationError naming the field. */
export function validateExperiment(input: NewExperiment): NewExperiment {
  if (!NAME.test(input.name)) throw new ValidationError('name', NAME_RULE);
  if (input.salt.length === 0 || input.salt.length > MAX_SALT_LENGTH) {
    throw new ValidationError('salt', `must be 1-${MAX_SALT_LENGTH} characters`);
  }
  if (hasControlCharacter(input.salt)) {
    throw new ValidationError('salt', 'must not contain control characters');
  }
  if (input.arms.length < 2 || input.arms.length > MAX_ARMS) {
    throw new ValidationError('arms', `must list 2-${MAX_ARMS} arms`);
  }
  const names = new Set<string>();
  let total = 0;
  input.arms.forEach((arm, i) => {
    const field = `arms[${i}]`;
    if (!NAME.test(arm.name)) throw new ValidationError(`${field}.name`, NAME_RULE);
    if (names.has(arm.name)) throw new ValidationError(`${field}.name`, 'duplicate arm name');
    names.add(arm.name);
    if (arm.modelVersion !== null && !/^[1-9]\d{0,17}$/.test(arm.modelVersion)) {
      throw new ValidationError(`${field}.modelVersion`, 'must be a positive integer or null');
    }
    if (arm.profile !== null && !NAME.test(arm.profile)) {
      throw new ValidationError(`${field}.profile`, NAME_RULE);
    }
    if (!Number.isFinite(arm.share) || arm.share <= 0 || arm.share >= 100) {
      throw new ValidationError(`${field}.share`, 'must be a percent above 0 and below 100');
    }
    total += arm.share;
  });
  if (Math.abs(total - 100) > SHARE_TOLERANCE) {
    throw new ValidationError('arms', `shares must sum to 100 (got ${total})`);
  }
  const signature = (arm: Arm) => `${arm.modelVersion ?? 'active'}/${arm.profile ?? 'request'}`;
  if (new Set(input.arms.map(signature)).size < input.arms.length) {
    throw new ValidationError('arms', 'two arms serve the same version with the same profile');
  }
  validateDesign(input);
  return input;
}

function validateDesign(design: ExperimentDesign): void {
  if (!Number.isInteger(design.minImpressions) || design.minImpressions < 1) {
    throw new ValidationError('minImpressions', 'must be a positive integer');
  }
  if (!(design.minDetectableLift > 0 && design.minDetectableLift <= 10)) {
    throw new ValidationError('minDetectableLift', 'must be above 0 and at most 10 (1000%)');
  }
  if (!(design.confidence > 0.5 && design.confidence < 1)) {
    throw new ValidationError('confidence', 'must be between 0.5 and 1');
  }
  if (!(design.power > 0.5 && design.power < 1)) {
    throw new ValidationError('power', 'must be between 0.5 and 1');
  }
}

/**
 * The user's position in [0, 1) for an experiment's salt: FNV-1a over salt and id, then
 * murmur3's finalizer so that ids differing in one character spread over the whole range.
 * Pure arithmetic on the strings, so every replica, before and after a restart, agrees.
 */
export function bucketOf(salt: string, userId: string): number {
  let hash = 0x811c9dc5;
  const mix = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193);
    }
  };
  mix(salt);
  mix('\u0000');
  mix(userId);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 0x1_0000_0000;
}

/** The arm a user falls in: arms take consecutive slices of [0, 100) by their shares. */
export function armOf(experiment: Pick<Experiment, 'salt' | 'arms'>, userId: string): Arm {
  const position = bucketOf(experiment.salt, userId) * 100;
  let upTo = 0;
  for (const arm of experiment.arms) {
    upTo += arm.share;
    if (position < upTo) return arm;
  }
  // Shares summing to 100 within rounding: the last slice takes the remainder.
  return experiment.arms[experiment.arms.length - 1];
}
