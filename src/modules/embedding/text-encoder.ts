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
 * `encoder.encode(texts)`, refused unless it returned one vector of its dimension per text: callers
 * pair vectors with texts by position, so a short answer would file vectors under other texts.
 */
export async function encodeEach(
  encoder: TextEncoder,
  texts: readonly string[],
): Promise<Float32Array[]> {
  const vectors = await encoder.encode(texts);
  if (vectors.length !== texts.length) {
    throw new Error(
      `encoder ${encoder.modelId} returned ${vectors.length} vectors for ${texts.length} texts`,
    );
  }
  const wrong = vectors.find((vector) => vector.length !== encoder.dimension);
  if (wrong !== undefined) {
    throw new Error(
      `encoder ${encoder.modelId} returned a vector of ${wrong.length} values, not ${encoder.dimension}`,
    );
  }
  return vectors;
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
