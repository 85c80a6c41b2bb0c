import type { ModelMetrics, RunEpoch, TimeWindow, TrainingMode } from '../registry/registry.types';

/** What to train. */
export interface TrainRequest {
  readonly mode: TrainingMode;
  /** The version to warm-start from (INCREMENTAL); absent for FULL. */
  readonly parent?: { readonly id: string; readonly artifact: Buffer };
  /** Events to learn from: seq in (afterSeq, untilSeq]; afterSeq null = from the beginning. */
  readonly events: { readonly afterSeq: string | null; readonly untilSeq: string };
  readonly signal: AbortSignal;
  /** Fraction done, 0..1. */
  readonly onProgress: (fraction: number) => void;
  /** Each finished epoch of the interest model. */
  readonly onEpoch?: (epoch: RunEpoch) => void;
}

/** A trained artifact and what it was judged on. */
export interface TrainResult {
  readonly artifact: Buffer;
  readonly metrics: ModelMetrics;
  /** The held-out, time-based window the metrics were computed on. */
  readonly validation: TimeWindow;
  readonly trainWindow: TimeWindow | null;
  readonly trainSamples: number;
  readonly validSamples: number;
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  readonly backend: string;
  readonly encoderId: string;
  /** Set when the optimiser blew up (NaN loss, exploding weights): the version is marked failed. */
  readonly diverged?: string;
}

/**
 * The seam training runs go through: the real implementation fits the interest model in a child
 * process (training.service.ts); tests use a fake (test/support).
 */
export interface ModelTrainer {
  /** Encoder the next version will be trained against; known before training starts. */
  readonly encoderId: string;
  /**
   * Why a run queued at `queuedAt` should not start yet (no item text vectors of that encoder so
   * far, or a catalog backlog still being embedded); null: it can.
   */
  waitingFor(queuedAt: Date): Promise<string | null>;
  train(request: TrainRequest): Promise<TrainResult>;
  /** Scores an artifact on a validation window, for comparing versions on equal terms. */
  evaluate(artifact: Buffer, window: TimeWindow, signal: AbortSignal): Promise<ModelMetrics>;
}

export const MODEL_TRAINER = Symbol('MODEL_TRAINER');
