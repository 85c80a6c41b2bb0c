import type { BertLayerWeights } from '../../../common/bert-layer';
import type { TokenStates } from '../../../common/token-states';
import { readEncoderOnnx, topLayerWeights } from '../../embedding/encoder-onnx';
import { EncoderStates } from '../../embedding/encoder-states';
import type { ItemVectors } from '../dataset/dataset';
import type { ModelArchitecture } from '../model/architecture';
import type { ModelArtifact } from '../model/artifact';
import { pooledTokenTexts } from '../model/token-tower';
import type { TextBlock } from './worker-protocol';

/** Texts per encoder call: one progress report each. */
const CHUNK = 256;

/** What a model with token attention trains on besides the text vectors. */
export interface TokenInputs {
  readonly vectors: ItemVectors;
  /** The architecture with the encoder's own heads and LayerNorm epsilon. */
  readonly architecture: ModelArchitecture;
  /** The pretrained top k layers, where the model fine-tunes them (its starting point). */
  readonly encoderLayers?: readonly BertLayerWeights[];
}

/**
 * The items' token states after layer L − k of the fp32 encoder (k = the layers the model
 * fine-tunes), each text cut at the model's token limit before encoding: exactly what serving
 * feeds the version's own top layers (embedding/token-encoders.ts).
 */
export async function tokenInputs(
  vectors: ItemVectors,
  architecture: ModelArchitecture,
  block: TextBlock,
  onEncoded: (done: number, total: number) => void,
): Promise<TokenInputs> {
  const onnx = readEncoderOnnx(block.folder);
  const k = architecture.encoderTopLayers;
  const states = await EncoderStates.create(onnx, {
    layers: [onnx.shape.layers - k],
    threads: block.threads,
    maxTokens: architecture.maxTokens,
  });
  const tokens = new Map<string, TokenStates>();
  try {
    for (let start = 0; start < block.texts.length; start += CHUNK) {
      const chunk = block.texts.slice(start, start + CHUNK);
      const [encoded] = await states.encode(chunk.map(([, text]) => text));
      chunk.forEach(([itemId], i) => tokens.set(itemId, encoded[i]));
      onEncoded(start + chunk.length, block.texts.length);
    }
  } finally {
    await states.dispose();
  }
  return {
    vectors: { ...vectors, tokens },
    architecture: {
      ...architecture,
      encoderHeads: onnx.shape.heads,
      encoderLayerNormEps: onnx.shape.layerNormEps,
    },
    ...(k > 0 ? { encoderLayers: topLayerWeights(onnx, k) } : {}),
  };
}

/**
 * The vectors a trained model is scored with: a model that fine-tunes encoder layers pools its
 * items' token states through its own layers first (the scorer cannot run them).
 */
export async function scoringVectors(
  artifact: ModelArtifact,
  vectors: ItemVectors,
  itemIds: readonly string[],
): Promise<ItemVectors> {
  const { tokens } = vectors;
  if (artifact.manifest.architecture.encoderTopLayers === 0 || tokens === undefined) return vectors;
  return { ...vectors, pooledTexts: await pooledTokenTexts(artifact, tokens, itemIds) };
}
