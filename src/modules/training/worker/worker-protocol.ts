import type { Impression } from '../dataset/dataset';
import type { RankingMetrics } from '../eval/metrics';
import type { ModelArchitecture } from '../model/architecture';
import type { TrainBackendPreference } from '../model/backend';
import type { EpochReport, TrainingHyperparameters } from '../trainer';

/** Text vectors shipped to the worker as one transferable block. */
export interface VectorBlock {
  readonly encoderId: string;
  readonly dimension: number;
  readonly ids: readonly string[];
  /** ids.length * dimension values. */
  readonly data: Float32Array;
}

/**
 * Item texts for a model with token attention: the worker encodes them to the token states its
 * item tower reads (the fp32 encoder's, after layer L − k, each text cut at the model's limit).
 */
export interface TextBlock {
  /** The encoder's folder: its fp32 ONNX file, config and tokenizer. */
  readonly folder: string;
  /** ONNX Runtime intra-op threads. */
  readonly threads: number;
  readonly texts: readonly (readonly [itemId: string, text: string])[];
}

export interface TrainJob {
  readonly kind: 'train';
  readonly backend: TrainBackendPreference;
  readonly train: readonly Impression[];
  readonly validation: readonly Impression[];
  readonly vectors: VectorBlock;
  /** Needed when `architecture.tokenAttention`. */
  readonly texts?: TextBlock;
  readonly architecture: ModelArchitecture;
  readonly hyperparameters: TrainingHyperparameters;
  readonly parent?: Uint8Array;
  readonly clickCounts?: readonly (readonly [string, number])[];
  readonly notes?: Readonly<Record<string, unknown>>;
  /** Fit the learned combiner on the validation window's logged slates (combiner-stage.ts). */
  readonly combiner?: { readonly minSlates: number };
}

export interface EvaluateJob {
  readonly kind: 'evaluate';
  readonly artifact: Uint8Array;
  readonly impressions: readonly Impression[];
  readonly vectors: VectorBlock;
  /** Needed when the artifact's model has token attention. */
  readonly texts?: TextBlock;
}

export type WorkerJob = TrainJob | EvaluateJob;

export type WorkerMessage =
  | {
      readonly type: 'backend';
      /** The backend and the device it runs on (`backendLabel`). */
      readonly name: string;
      readonly skipped: readonly string[];
    }
  | { readonly type: 'progress'; readonly fraction: number; readonly loss: number }
  /** Item texts encoded to token states so far (models with token attention). */
  | { readonly type: 'encoding'; readonly done: number; readonly total: number }
  | { readonly type: 'epoch'; readonly report: EpochReport }
  | {
      readonly type: 'trained';
      readonly artifact: Uint8Array;
      readonly validation?: RankingMetrics;
      readonly epochs: readonly EpochReport[];
      readonly trainSamples: number;
      readonly validSamples: number;
      readonly samplesPerSecond: number;
      /** The combiner stage's figures and why it ships or not (absent: not asked for). */
      readonly combiner?: {
        readonly metrics: Readonly<Record<string, number>>;
        readonly note: string;
      };
    }
  | { readonly type: 'evaluated'; readonly metrics: RankingMetrics; readonly count: number }
  | { readonly type: 'error'; readonly message: string };
