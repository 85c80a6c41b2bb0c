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
  /**
   * The encoder's top k transformer layers, trained with the towers (0 = the frozen encoder's
   * final token states). With k > 0 the token states are those after layer L − k, and the item
   * tower runs the version's own copy of the top k layers (weights `top.<i>.<param>`) before
   * the token attention. Needs `tokenAttention`.
   */
  readonly encoderTopLayers: number;
  /** Attention heads and LayerNorm epsilon of those layers (the encoder's own). */
  readonly encoderHeads: number;
  readonly encoderLayerNormEps: number;
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
  // Off (TRAIN_TOKEN_ATTENTION): on MovieLens its gain is near issue #19's target, not clear of it,
  // and serving re-encodes the catalog per version (docs/model-lifecycle.md#measured).
  tokenAttention: false,
  tokenAttentionDim: 32,
  maxTokens: 64,
  encoderTopLayers: 0,
  // all-MiniLM-L6-v2's; read from the encoder's config.json when layers are fine-tuned.
  encoderHeads: 12,
  encoderLayerNormEps: 1e-12,
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
