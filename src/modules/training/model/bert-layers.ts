import * as tf from '@tensorflow/tfjs';
import {
  BERT_LAYER_PARAMS,
  BertLayerParam,
  BertLayerWeights,
  BertShape,
  BertTensor,
} from '../../../common/bert-layer';
import type { TokenStates } from '../../../common/token-states';
import { matMul2d } from './tf-ops';

/** Added to attention scores of padding keys: their softmax weight underflows to exactly 0. */
const MASKED_SCORE = -1e9;

type LayerVariables = Readonly<Record<BertLayerParam, tf.Variable>>;

/** One BERT layer's parameters as tensors (variables when trained). */
export type BertLayerTensors = Readonly<Record<BertLayerParam, tf.Tensor>>;

/**
 * The top k BERT layers of the sentence encoder in tfjs, initialised from the ONNX weights
 * (embedding/encoder-onnx.ts): post-LayerNorm self-attention and exact-GELU feed-forward, exactly as the
 * PyTorch export computes them, on the hidden states ONNX Runtime gives after layer L − k
 * (encoder-states.ts). Trainable: every parameter is a tf.Variable. No dropout: fine-tuning at a
 * small learning rate from pretrained weights, and serving must compute what training saw.
 */
export class EncoderTopLayers {
  private constructor(
    readonly shape: BertShape,
    private readonly layers: readonly LayerVariables[],
  ) {}

  static fromWeights(
    shape: BertShape,
    weights: readonly BertLayerWeights[],
    options: { readonly trainable?: boolean } = {},
  ): EncoderTopLayers {
    if (shape.hidden % shape.heads !== 0) {
      throw new Error(`hidden ${shape.hidden} is not a multiple of ${shape.heads} heads`);
    }
    const trainable = options.trainable ?? true;
    const layers = weights.map(
      (layer) =>
        Object.fromEntries(
          BERT_LAYER_PARAMS.map((param) => [
            param,
            tf.variable(tf.tensor(layer[param].data, [...layer[param].shape]), trainable),
          ]),
        ) as LayerVariables,
    );
    return new EncoderTopLayers(shape, layers);
  }

  get k(): number {
    return this.layers.length;
  }

  /** Every trainable parameter, for an optimizer's var list. */
  get variables(): tf.Variable[] {
    return this.layers.flatMap((layer) => BERT_LAYER_PARAMS.map((param) => layer[param]));
  }

  /**
   * `states` [batch, tokens, hidden] after layer L − k, `mask` [batch, tokens] (1 real, 0 padding)
   * → the last hidden state [batch, tokens, hidden].
   */
  apply(states: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => applyBertLayers(this.layers, states, mask, this.shape));
  }

  /** Masked mean over tokens, L2-normalised: the sentence vector the service stores. */
  static pool(hidden: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const weights = mask.toFloat().expandDims(2);
      const sum = hidden.mul(weights).sum(1);
      const mean = sum.div(weights.sum(1).maximum(1e-9));
      return mean.div<tf.Tensor2D>(mean.norm('euclidean', 1, true).maximum(1e-12));
    });
  }

  /** The current parameters, per layer (for a model artifact). */
  exportWeights(): BertLayerWeights[] {
    return this.layers.map(
      (layer) =>
        Object.fromEntries(
          BERT_LAYER_PARAMS.map((param): [BertLayerParam, BertTensor] => [
            param,
            { shape: [...layer[param].shape], data: layer[param].dataSync() as Float32Array },
          ]),
        ) as BertLayerWeights,
    );
  }

  dispose(): void {
    for (const variable of this.variables) variable.dispose();
  }
}

/**
 * `states` [batch, tokens, hidden] through `layers`, bottom first; `mask` [batch, tokens] (1 real,
 * 0 padding). Padding keys get zero attention weight; padding rows are computed but never read.
 */
export function applyBertLayers(
  layers: readonly BertLayerTensors[],
  states: tf.Tensor3D,
  mask: tf.Tensor2D,
  shape: Pick<BertShape, 'heads' | 'layerNormEps'>,
): tf.Tensor3D {
  const [batch, tokens] = states.shape;
  // [batch, 1, 1, tokens]: broadcast over heads and query positions.
  const scoreBias = tf.sub(1, mask.toFloat()).mul(MASKED_SCORE).reshape([batch, 1, 1, tokens]);
  let hidden = states;
  for (const layer of layers) hidden = bertLayer(layer, hidden, scoreBias, shape);
  return hidden;
}

function bertLayer(
  w: BertLayerTensors,
  input: tf.Tensor3D,
  scoreBias: tf.Tensor,
  { heads, layerNormEps }: Pick<BertShape, 'heads' | 'layerNormEps'>,
): tf.Tensor3D {
  const [batch, tokens, hidden] = input.shape;
  const size = hidden / heads;
  const rows = input.reshape<tf.Tensor2D>([batch * tokens, hidden]);
  const dense = (x: tf.Tensor2D, kernel: tf.Tensor, bias: tf.Tensor) =>
    matMul2d(x, kernel as tf.Tensor2D).add<tf.Tensor2D>(bias);
  // [batch, heads, tokens, size]
  const split = (x: tf.Tensor2D) => x.reshape([batch, tokens, heads, size]).transpose([0, 2, 1, 3]);
  const query = split(dense(rows, w['query.kernel'], w['query.bias']));
  const key = split(dense(rows, w['key.kernel'], w['key.bias']));
  const value = split(dense(rows, w['value.kernel'], w['value.bias']));
  const scores = tf.matMul(query, key, false, true).div(Math.sqrt(size)).add(scoreBias);
  const context = tf
    .matMul(tf.softmax(scores), value)
    .transpose([0, 2, 1, 3])
    .reshape<tf.Tensor2D>([batch * tokens, hidden]);
  const attended = layerNorm(
    dense(context, w['attentionOutput.kernel'], w['attentionOutput.bias']).add(rows),
    w['attentionNorm.gamma'],
    w['attentionNorm.beta'],
    layerNormEps,
  );
  const inner = gelu(dense(attended, w['intermediate.kernel'], w['intermediate.bias']));
  const output = layerNorm(
    dense(inner, w['output.kernel'], w['output.bias']).add(attended),
    w['outputNorm.gamma'],
    w['outputNorm.beta'],
    layerNormEps,
  );
  return output.reshape([batch, tokens, hidden]);
}

function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor2D {
  const mean = x.mean(-1, true);
  const centered = x.sub(mean);
  const variance = centered.square().mean(-1, true);
  return centered.div(variance.add(eps).sqrt()).mul(gamma).add(beta);
}

/** Exact GELU, x·½(1 + erf(x/√2)), the `Erf` form of the export (not the tanh approximation). */
function gelu(x: tf.Tensor2D): tf.Tensor2D {
  return x.mul(tf.erf(x.div(Math.SQRT2)).add(1)).mul(0.5);
}

/**
 * Token states of several texts as one padded batch: `states` [n, width, hidden] (zeros after each
 * text's tokens) and `mask` [n, width]. `width` defaults to the longest text.
 */
export function padTokenStates(
  items: readonly TokenStates[],
  hidden: number,
  width = Math.max(1, ...items.map((item) => item.count)),
): { states: tf.Tensor3D; mask: tf.Tensor2D } {
  const states = new Float32Array(items.length * width * hidden);
  const mask = new Float32Array(items.length * width);
  items.forEach((item, r) => {
    const count = Math.min(item.count, width);
    states.set(item.data.subarray(0, count * hidden), r * width * hidden);
    mask.fill(1, r * width, r * width + count);
  });
  return {
    states: tf.tensor3d(states, [items.length, width, hidden]),
    mask: tf.tensor2d(mask, [items.length, width]),
  };
}
