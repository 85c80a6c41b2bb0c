/**
 * The registry's records: model versions (each with one immutable artifact, an interest-model
 * artifact as training/model/artifact.ts writes it), training runs and activations. It neither
 * trains (the training module does, in the train role) nor serves (the serving module loads the
 * active version in the api role).
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

/** One entry of the activation log: a change of the active version, or a canary's start or end. */
export interface Activation {
  readonly id: string;
  readonly versionId: string;
  /** The version active before (for a canary entry: the one active at the time). */
  readonly previousVersionId: string | null;
  readonly action:
    'promote' | 'activate' | 'rollback' | 'canary_start' | 'canary_promote' | 'canary_rollback';
  readonly reason: string | null;
  readonly experimentId: string | null;
  readonly triggeredBy: string;
  readonly createdAt: Date;
}

/** One finished epoch of a training run. */
export interface RunEpoch {
  readonly epoch: number;
  /** Mean training loss over the epoch. */
  readonly loss: number;
  /** AUC on the validation window after the epoch; null without validation data. */
  readonly validationAuc: number | null;
  readonly seconds: number;
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
  readonly epochs: readonly RunEpoch[];
  /** Why a queued run has not started yet, as the trainer last found; null otherwise. */
  readonly waitingFor: string | null;
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

export const ARTIFACT_STORE = Symbol('ARTIFACT_STORE');
