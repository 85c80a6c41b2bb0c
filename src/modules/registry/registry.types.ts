/**
 * The registry's seams and records. Training, artifact storage and model loading are reached only
 * through the interfaces here, so the registry runs with in-memory fakes in tests and the training
 * module's implementations in production.
 */

export const MODEL_STATUSES = ['training', 'candidate', 'active', 'retired', 'failed'] as const;
export type ModelStatus = (typeof MODEL_STATUSES)[number];

export const TRAINING_MODES = ['INCREMENTAL', 'FULL'] as const;
export type TrainingMode = (typeof TRAINING_MODES)[number];

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Named scores on a validation window; `auc` drives the promotion gate. */
export type ModelMetrics = Readonly<Record<string, number>>;

export interface TimeWindow {
  readonly from: Date;
  readonly to: Date;
}

export interface ModelVersion {
  readonly id: string;
  readonly parentId: string | null;
  readonly status: ModelStatus;
  readonly encoderId: string;
  readonly backend: string | null;
  readonly trainFrom: Date | null;
  readonly trainTo: Date | null;
  readonly validFrom: Date | null;
  readonly validTo: Date | null;
  readonly trainSamples: number | null;
  readonly validSamples: number | null;
  /** Newest events.seq in the training data; the scheduler counts events after it. */
  readonly eventsSeq: string | null;
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  readonly metrics: ModelMetrics;
  readonly statusReason: string | null;
  readonly triggeredBy: string;
  readonly createdAt: Date;
  readonly activatedAt: Date | null;
  readonly artifact: { readonly sha256: string; readonly size: number } | null;
}

export interface TrainingRun {
  readonly id: string;
  readonly mode: TrainingMode;
  readonly status: RunStatus;
  readonly progress: number;
  readonly versionId: string | null;
  /** promoted, candidate, failed (the version's fate), or skipped. */
  readonly outcome: string | null;
  readonly error: string | null;
  readonly triggeredBy: string;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export interface TrainRequest {
  readonly mode: TrainingMode;
  /** The version to warm-start from (INCREMENTAL); absent for FULL. */
  readonly parent?: { readonly id: string; readonly artifact: Buffer };
  /** Events to learn from: seq in (afterSeq, untilSeq]; afterSeq null = from the beginning. */
  readonly events: { readonly afterSeq: string | null; readonly untilSeq: string };
  readonly signal: AbortSignal;
  /** Fraction done, 0..1. */
  readonly onProgress: (fraction: number) => void;
}

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

/** Trains off the event loop (worker thread or child process in the real implementation). */
export interface ModelTrainer {
  /** Encoder the next version will be trained against; known before training starts. */
  readonly encoderId: string;
  train(request: TrainRequest): Promise<TrainResult>;
  /** Scores an artifact on a validation window, for comparing versions on equal terms. */
  evaluate(artifact: Buffer, window: TimeWindow, signal: AbortSignal): Promise<ModelMetrics>;
}

/** What serving holds: the version id and whatever the loader precomputed. */
export interface ServingModel<T = unknown> {
  readonly versionId: string;
  readonly model: T;
  readonly loadedAt: Date;
  readonly loadMs: number;
}

/** Turns artifact bytes into a ready-to-score object (parsing, item-vector precompute). */
export interface ModelLoader<T = unknown> {
  load(artifact: Buffer, version: { readonly id: string; readonly encoderId: string }): Promise<T>;
}

/** Immutable artifact bytes under a version id. PostgreSQL bytea now; object storage later. */
export interface ArtifactStore {
  /** Writes once; a second write for the same version is a CONFLICT. */
  put(versionId: string, bytes: Buffer): Promise<{ sha256: string; size: number }>;
  /** The bytes, sha256-verified; NOT_FOUND when absent, CONFLICT when the digest mismatches. */
  get(versionId: string): Promise<Buffer>;
  /** Existence and digest without the bytes. */
  stat(versionId: string): Promise<{ sha256: string; size: number } | null>;
}

export const MODEL_TRAINER = Symbol('MODEL_TRAINER');
export const MODEL_LOADER = Symbol('MODEL_LOADER');
export const ARTIFACT_STORE = Symbol('ARTIFACT_STORE');
