/**
 * The interest model's shape: which parts are on (each one ablatable) and their sizes. Stored in
 * every artifact's manifest, so serving rebuilds exactly the function that was trained.
 */
export interface ModelArchitecture {
  /** Dimension of the frozen encoder's text vectors, and of every vector the model produces. */
  readonly dimension: number;
  /**
   * The item tower's text input: learned additive attention over the encoder's final token states
   * (NRMS's news encoder), L2-normalised, instead of the encoder's mean-pooled vector.
   */
  readonly tokenAttention: boolean;
  readonly tokenAttentionDim: number;
  /** Token states read per item ([CLS] and [SEP] included): the token cache's truncation. */
  readonly maxTokens: number;
  /** Residual bottleneck adapter over the text vector (0 hidden units = no adapter). */
  readonly adapterHidden: number;
  /** Learned residual ID embedding for items with at least `idMinInteractions` training clicks. */
  readonly idEmbedding: boolean;
  readonly idMinInteractions: number;
  /** Additive attention pooling of the history (false = mean of the history vectors). */
  readonly attention: boolean;
  readonly attentionDim: number;
  /** Position-from-newest embedding and an age feature inside the attention. */
  readonly recency: boolean;
  /** Most recent clicks the user tower reads. */
  readonly maxHistory: number;
  /** Adds `w * log1p(training clicks)` of the candidate to its score. */
  readonly popularity: boolean;
}

export const DEFAULT_ARCHITECTURE: ModelArchitecture = {
  dimension: 384,
  // Off: short of issue #19's targets on MovieLens, 4x the training time, and serving cannot run it
  // (docs/model-lifecycle.md#token-attention).
  tokenAttention: false,
  tokenAttentionDim: 32,
  maxTokens: 64,
  adapterHidden: 32,
  idEmbedding: true,
  idMinInteractions: 2,
  attention: true,
  attentionDim: 32,
  recency: true,
  maxHistory: 20,
  // Off: on MovieLens it added ~0.002 AUC overall and cost ~0.04 on cold items (which have no clicks).
  popularity: false,
};

/** Age features are log-hours, so a day and a year differ by a few units, not by thousands. */
export function ageFeature(ageMs: number): number {
  return Number.isFinite(ageMs) && ageMs > 0 ? Math.log1p(ageMs / 3_600_000) / 4 : 0;
}
