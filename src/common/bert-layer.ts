/**
 * A BERT encoder layer's shape and parameters as plain arrays: what the encoder's ONNX file holds
 * (embedding/encoder-onnx.ts reads them) and what a model that fine-tunes the top layers trains
 * and stores (training/model/bert-layers.ts).
 */

/** The BERT hyper-parameters the top layers need (from the model folder's config.json). */
export interface BertShape {
  readonly layers: number;
  readonly hidden: number;
  readonly heads: number;
  readonly intermediate: number;
  readonly layerNormEps: number;
}

/** A float32 tensor, row-major. */
export interface BertTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** The parameters of one BERT layer; kernels are [in, out] (they multiply from the right). */
export const BERT_LAYER_PARAMS = [
  'query.kernel',
  'query.bias',
  'key.kernel',
  'key.bias',
  'value.kernel',
  'value.bias',
  'attentionOutput.kernel',
  'attentionOutput.bias',
  'attentionNorm.gamma',
  'attentionNorm.beta',
  'intermediate.kernel',
  'intermediate.bias',
  'output.kernel',
  'output.bias',
  'outputNorm.gamma',
  'outputNorm.beta',
] as const;
export type BertLayerParam = (typeof BERT_LAYER_PARAMS)[number];
export type BertLayerWeights = Readonly<Record<BertLayerParam, BertTensor>>;
