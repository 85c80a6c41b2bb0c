import type { TokenStates } from '../../common/token-states';

/**
 * Turns texts into L2-normalised sentence vectors. The one swappable seam between the service and
 * a sentence encoder: the ONNX/transformers.js implementation in production, fakes in unit tests.
 */
export interface TextEncoder {
  /** Identifies model and precision, e.g. `all-MiniLM-L6-v2:fp32`; stored beside every vector. */
  readonly modelId: string;
  readonly dimension: number;
  encode(texts: readonly string[]): Promise<Float32Array[]>;
}

/**
 * The encoder's final token states, before pooling: what a model that pools tokens itself reads.
 * The same model and weights as the TextEncoder with the same `modelId`.
 */
export interface TokenEncoder {
  readonly modelId: string;
  readonly dimension: number;
  /** At most `maxTokens` states per text ([CLS] and [SEP] included), same order as `texts`. */
  encodeTokens(texts: readonly string[], maxTokens: number): Promise<TokenStates[]>;
}
