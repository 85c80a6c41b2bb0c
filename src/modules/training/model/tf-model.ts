import * as tf from '@tensorflow/tfjs';
import { BERT_LAYER_PARAMS } from '../../../common/bert-layer';
import type { TokenStates } from '../../../common/token-states';
import { ModelArchitecture } from './architecture';
import { ModelWeights, topLayerWeightName, WeightName, WeightTensor } from './artifact';
import { applyBertLayers, BertLayerTensors } from './bert-layers';
import { matMul2d } from './tf-ops';

/**
 * One training batch in index form. Items are referenced through `uniqueItems` (rows of the text
 * matrix), so the item tower runs once per distinct item in the batch, not once per reference.
 */
export interface EncodedBatch {
  readonly size: number;
  readonly historyLength: number;
  readonly candidateCount: number;
  /** Rows of the text matrix, one per distinct item in the batch. */
  readonly uniqueItems: Int32Array;
  /** Per distinct item: its row in `id.table`, or -1 for items without an ID embedding. */
  readonly warmRows: Int32Array;
  /** [size * historyLength] positions into `uniqueItems`, most recent first, 0 where padded. */
  readonly history: Int32Array;
  readonly historyMask: Float32Array;
  /** ageFeature() of each history click (0 when unknown). */
  readonly historyAge: Float32Array;
  /** [size * candidateCount] positions into `uniqueItems`; candidate 0 is the clicked one. */
  readonly candidates: Int32Array;
  /** log1p(training clicks) per candidate. */
  readonly candidatePopularity: Float32Array;
  /** Token states of `uniqueItems` (models with token attention only). */
  readonly tokens?: BatchTokens;
}

/**
 * Token states of a batch's items in groups of similar length, each padded to its longest, so
 * a few long texts do not pad every item to `maxTokens`.
 */
export interface BatchTokens {
  readonly groups: readonly TokenGroup[];
}

export interface TokenGroup {
  /** Positions in `uniqueItems` of the group's items. */
  readonly positions: Int32Array;
  readonly length: number;
  /** [items x length x dimension]. */
  readonly states: Float32Array;
  /** [items x length]: 1 for a real token, 0 for padding. */
  readonly mask: Float32Array;
}

/** Group bounds in tokens; items longer than the last share one group padded to its longest. */
const TOKEN_GROUP_BOUNDS = [16, 24, 32, 48];

/** Groups the items' token states (first `maxTokens` of each) by length; missing items: no tokens. */
export function groupTokens(
  items: readonly (TokenStates | undefined)[],
  maxTokens: number,
  d: number,
): BatchTokens {
  const members = new Map<number, number[]>();
  items.forEach((item, position) => {
    const count = Math.min(item?.count ?? 0, maxTokens);
    const bound = TOKEN_GROUP_BOUNDS.find((b) => count <= b) ?? maxTokens;
    const group = members.get(bound);
    if (group === undefined) members.set(bound, [position]);
    else group.push(position);
  });
  const groups = [...members.values()].map((positions) => {
    const length = Math.max(1, ...positions.map((p) => Math.min(items[p]?.count ?? 0, maxTokens)));
    const states = new Float32Array(positions.length * length * d);
    const mask = new Float32Array(positions.length * length);
    positions.forEach((position, i) => {
      const item = items[position];
      if (item === undefined) return;
      const n = Math.min(item.count, length);
      states.set(item.data.subarray(0, n * d), i * length * d);
      mask.fill(1, i * length, i * length + n);
    });
    return { positions: Int32Array.from(positions), length, states, mask };
  });
  return { groups };
}

/**
 * NRMS's additive attention over token states, L2-normalised: a_t = softmax_t(q . tanh(W h_t + b))
 * over the real tokens, item = sum_t a_t h_t / |.|. With q = 0 it is the encoder's own
 * (normalised mean) pooling. Returns the pooled [items x d] and the weights [items x tokens].
 */
export function tokenAttentionPool(
  states: tf.Tensor3D,
  mask: tf.Tensor2D,
  w: tf.Tensor,
  b: tf.Tensor,
  q: tf.Tensor,
): { pooled: tf.Tensor2D; weights: tf.Tensor2D } {
  const [items, length, d] = states.shape;
  const a = w.shape[1] ?? 0;
  const keys = tf.tanh(
    tf.add<tf.Tensor2D>(matMul2d(tf.reshape(states, [items * length, d]), w as tf.Tensor2D), b),
  );
  const scores = tf.reshape(matMul2d(keys, tf.reshape(q, [a, 1])), [items, length]);
  // Padding gets a large negative logit, and is zeroed again after the softmax.
  const weights = tf.mul(tf.softmax(tf.add(scores, tf.mul(tf.sub(1, mask), -1e9))), mask);
  const summed = tf.sum(tf.mul(states, tf.expandDims(weights, 2)), 1);
  const norm = tf.maximum(tf.norm(summed, 'euclidean', 1, true), 1e-12);
  return { pooled: tf.div(summed, norm), weights: weights as tf.Tensor2D };
}

/**
 * The item tower's text vectors for one token group: the states through the fine-tuned encoder
 * layers (if any), then the token attention [w, b, q]. [items x d].
 */
export function poolTokenGroup(
  group: TokenGroup,
  arch: ModelArchitecture,
  layers: readonly BertLayerTensors[],
  attention: readonly [tf.Tensor, tf.Tensor, tf.Tensor],
): tf.Tensor2D {
  const d = arch.dimension;
  const mask = tf.tensor2d(group.mask, [group.positions.length, group.length]);
  let states = tf.tensor3d(group.states, [group.positions.length, group.length, d]);
  if (layers.length > 0) {
    states = applyBertLayers(layers, states, mask, {
      heads: arch.encoderHeads,
      layerNormEps: arch.encoderLayerNormEps,
    });
  }
  return tokenAttentionPool(states, mask, ...attention).pooled;
}

/**
 * Row gather whose gradient is a plain scatter-add in JavaScript. tfjs's own gather gradient goes
 * through UnsortedSegmentSum, which the wasm backend lacks and the cpu backend runs in
 * O(rows x segments).
 */
function gatherRows(table: tf.Tensor2D, indices: Int32Array): tf.Tensor2D {
  const rows = table.shape[0];
  const width = table.shape[1];
  const op = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const value = tf.gather(inputs[0] as tf.Tensor2D, tf.tensor1d(indices, 'int32'));
    const gradFunc = (dy: tf.Tensor) => {
      const upstream = dy.dataSync();
      const grad = new Float32Array(rows * width);
      for (let r = 0; r < indices.length; r++) {
        const target = indices[r] * width;
        const source = r * width;
        for (let c = 0; c < width; c++) grad[target + c] += upstream[source + c];
      }
      return tf.tensor2d(grad, [rows, width]);
    };
    return { value, gradFunc };
  });
  return op(table);
}

/**
 * The interest model as a tfjs graph, for training. The same function as InterestScorer (which
 * serving uses); the parity test holds the two together.
 */
export class TfInterestModel {
  private readonly variables = new Map<WeightName, tf.Variable>();
  /** Text vectors by vocabulary row: the frozen encoder's, or the token tower's (refreshTokenTexts). */
  private text: tf.Tensor2D;

  constructor(
    readonly architecture: ModelArchitecture,
    weights: ModelWeights,
    /** Frozen text vectors, row-major [rows x dimension]. */
    textMatrix: Float32Array,
    /** L2 penalty on the ID embedding rows a batch uses. */
    private readonly idL2 = 0,
  ) {
    const d = architecture.dimension;
    this.text = tf.tensor2d(textMatrix, [textMatrix.length / d, d]);
    for (const [name, tensor] of Object.entries(weights) as [WeightName, WeightTensor][]) {
      this.variables.set(name, tf.variable(tf.tensor(tensor.data, [...tensor.shape]), true, name));
    }
  }

  get trainableVariables(): tf.Variable[] {
    return [...this.variables.values()];
  }

  /** The fine-tuned encoder layers' parameters, bottom layer first. */
  private get encoderLayers(): BertLayerTensors[] {
    return Array.from(
      { length: this.architecture.encoderTopLayers },
      (_, layer) =>
        Object.fromEntries(
          BERT_LAYER_PARAMS.map((param) => [param, this.v(topLayerWeightName(layer, param))]),
        ) as BertLayerTensors,
    );
  }

  /** Scores [size x candidateCount]. */
  logits(batch: EncodedBatch): tf.Tensor2D {
    return this.forward(batch).logits;
  }

  private forward(batch: EncodedBatch): { logits: tf.Tensor2D; penalty: tf.Tensor | null } {
    let penalty: tf.Tensor | null = null;
    const arch = this.architecture;
    const d = arch.dimension;
    const { size: b, historyLength: h, candidateCount: c } = batch;
    const x = arch.tokenAttention
      ? this.pooledTokens(batch)
      : tf.gather(this.text, tf.tensor1d(batch.uniqueItems, 'int32'));
    let items: tf.Tensor2D = x;
    if (arch.adapterHidden > 0) {
      const hidden = tf.relu(
        tf.add<tf.Tensor2D>(matMul2d(x, this.v2('adapter.w1')), this.v('adapter.b1')),
      );
      items = tf.add(x, tf.add(matMul2d(hidden, this.v2('adapter.w2')), this.v('adapter.b2')));
    }
    // A table with no rows (no item has enough clicks yet) has nothing to add.
    if (arch.idEmbedding && (this.variables.get('id.table')?.shape[0] ?? 0) > 0) {
      const rows = batch.warmRows.map((row) => Math.max(row, 0));
      const mask = Float32Array.from(batch.warmRows, (row) => (row >= 0 ? 1 : 0));
      const embedded = tf.mul(
        gatherRows(this.v('id.table') as tf.Tensor2D, rows),
        tf.tensor2d(mask, [mask.length, 1]),
      );
      if (this.idL2 > 0) penalty = tf.mul(tf.sum(tf.square(embedded)), this.idL2 / batch.size);
      items = tf.add<tf.Tensor2D>(items, embedded);
    }
    const mask = tf.tensor2d(batch.historyMask, [b, h]);
    const historyVectors = tf.reshape(gatherRows(items, batch.history), [b, h, d]);
    let weights: tf.Tensor;
    if (arch.attention) {
      const a = arch.attentionDim;
      const keysPerItem = matMul2d(items, this.v2('attention.v'));
      let keys: tf.Tensor = tf.add(
        tf.reshape(gatherRows(keysPerItem, batch.history), [b, h, a]),
        this.v('attention.b'),
      );
      if (arch.recency) {
        const position = tf.reshape(tf.slice(this.v('attention.position'), [0, 0], [h, a]), [
          1,
          h,
          a,
        ]);
        const age = tf.mul(
          tf.tensor3d(batch.historyAge, [b, h, 1]),
          tf.reshape(this.v('attention.age'), [1, 1, a]),
        );
        keys = tf.add(tf.add(keys, position), age);
      }
      const scores = tf.sum(tf.mul(tf.tanh(keys), this.v('attention.q')), 2);
      // Padded slots get a large negative logit, and are zeroed again after the softmax so a user
      // with no history pools to the zero vector.
      const masked = tf.add(scores, tf.mul(tf.sub(1, mask), -1e9));
      weights = tf.mul(tf.softmax(masked), mask);
    } else {
      const count = tf.maximum(tf.sum(mask, 1, true), 1);
      weights = tf.div(mask, count);
    }
    const user = tf.sum(tf.mul(historyVectors, tf.expandDims(weights, 2)), 1);
    const candidates = tf.reshape(gatherRows(items, batch.candidates), [b, c, d]);
    const dots = tf.sum(tf.mul(candidates, tf.expandDims(user, 1)), 2);
    let logits = tf.mul(dots, tf.exp(this.v('score.logScale')));
    if (arch.popularity) {
      logits = tf.add(
        logits,
        tf.mul(tf.tensor2d(batch.candidatePopularity, [b, c]), this.v('score.popularity')),
      );
    }
    return { logits: logits as tf.Tensor2D, penalty };
  }

  /** Mean softmax cross-entropy with the clicked candidate (column 0) as the label. */
  loss(batch: EncodedBatch): tf.Scalar {
    const { logits, penalty } = this.forward(batch);
    const loss = tf.neg(tf.mean(tf.slice(tf.logSoftmax(logits), [0, 0], [batch.size, 1])));
    return penalty === null ? (loss as tf.Scalar) : tf.add<tf.Scalar>(loss, penalty);
  }

  /**
   * One optimiser step; returns the batch loss. Fine-tuned encoder layers step with
   * `encoderOptimizer` (a much smaller learning rate: they start pretrained), the rest with
   * `optimizer`.
   */
  trainStep(batch: EncodedBatch, optimizer: tf.Optimizer, encoderOptimizer?: tf.Optimizer): number {
    return tf.tidy(() => {
      if (this.architecture.encoderTopLayers === 0) {
        const cost = optimizer.minimize(() => this.loss(batch), true, this.trainableVariables);
        if (cost === null) throw new Error('optimizer returned no loss');
        return cost.dataSync()[0];
      }
      if (encoderOptimizer === undefined) {
        throw new Error('the model fine-tunes encoder layers: give their optimizer');
      }
      const { value, grads } = tf.variableGrads(() => this.loss(batch), this.trainableVariables);
      const towers: tf.NamedTensorMap = {};
      const encoder: tf.NamedTensorMap = {};
      for (const [name, grad] of Object.entries(grads)) {
        (name.startsWith('top.') ? encoder : towers)[name] = grad;
      }
      optimizer.applyGradients(towers);
      encoderOptimizer.applyGradients(encoder);
      return value.dataSync()[0];
    });
  }

  exportWeights(): ModelWeights {
    const out: Partial<Record<WeightName, WeightTensor>> = {};
    for (const [name, variable] of this.variables) {
      out[name] = { shape: [...variable.shape], data: Float32Array.from(variable.dataSync()) };
    }
    return out;
  }

  dispose(): void {
    for (const variable of this.variables.values()) variable.dispose();
    this.text.dispose();
  }

  /**
   * Text vectors of the batch's items. Items in `batch.tokens` go through the token tower (with
   * gradients); the rest (history-only items of a model that fine-tunes encoder layers) read the
   * text matrix, which refreshTokenTexts fills with the same tower's output once per epoch: running
   * encoder layers with gradients over every history item would cost ~5x the step.
   */
  private pooledTokens(batch: EncodedBatch): tf.Tensor2D {
    const tokens = batch.tokens;
    if (tokens === undefined) throw new Error('the model pools token states; the batch has none');
    const parts = tokens.groups.map((group) => this.poolGroup(group));
    const unique = batch.uniqueItems.length;
    const covered = tokens.groups.reduce((sum, group) => sum + group.positions.length, 0);
    // Rows of [text rows of every item; tower rows in group order], back in `uniqueItems` order.
    const base = covered === unique ? 0 : unique;
    const rowOf = Int32Array.from({ length: unique }, (_, i) => i);
    let row = base;
    for (const group of tokens.groups)
      for (const position of group.positions) rowOf[position] = row++;
    const pooled = tf.concat(parts, 0);
    const rows =
      base === 0
        ? pooled
        : tf.concat([tf.gather(this.text, tf.tensor1d(batch.uniqueItems, 'int32')), pooled], 0);
    return gatherRows(rows, rowOf);
  }

  /**
   * Replaces the text matrix with the current token tower's output for every vocabulary row
   * (`groupsOf(rows)` gives their token states), without gradients, `chunk` rows at a time.
   */
  refreshTokenTexts(
    rowCount: number,
    groupsOf: (rows: Int32Array) => BatchTokens,
    chunk = 256,
  ): void {
    const d = this.architecture.dimension;
    const matrix = new Float32Array(rowCount * d);
    for (let start = 0; start < rowCount; start += chunk) {
      const rows = Int32Array.from(
        { length: Math.min(chunk, rowCount - start) },
        (_, i) => start + i,
      );
      for (const group of groupsOf(rows).groups) {
        const values = tf.tidy(() => this.poolGroup(group).dataSync());
        group.positions.forEach((position, i) => {
          matrix.set(values.subarray(i * d, (i + 1) * d), rows[position] * d);
        });
      }
    }
    this.text.dispose();
    this.text = tf.tensor2d(matrix, [rowCount, d]);
  }

  private poolGroup(group: TokenGroup): tf.Tensor2D {
    return poolTokenGroup(group, this.architecture, this.encoderLayers, [
      this.v('tokens.w'),
      this.v('tokens.b'),
      this.v('tokens.q'),
    ]);
  }

  private v2(name: WeightName): tf.Tensor2D {
    return this.v(name) as tf.Tensor2D;
  }

  private v(name: WeightName): tf.Tensor {
    const variable = this.variables.get(name);
    if (variable === undefined) throw new Error(`model has no weight ${name}`);
    return variable;
  }
}
