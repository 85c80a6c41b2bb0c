import type { TokenStates } from '../../../common/token-states';
import { VectorMemory } from '../../../common/vector-memory';
import { ageFeature, ModelArchitecture } from './architecture';
import { loadModel, ModelArtifact, ModelManifest, WeightName, WeightTensor } from './artifact';

/** Adapted item vectors of a catalog, one contiguous row-major matrix, and their score biases. */
export interface ScoredCatalog {
  readonly ids: readonly string[];
  readonly dimension: number;
  readonly matrix: Float32Array;
  /** The popularity term of each item (0 when the model has none). */
  readonly bias: Float32Array;
}

/**
 * The interest model's forward pass in TypeScript (the attentions' key projections in the SIMD
 * kernel of common/vector-memory.ts): serving scores with this, and so does the trainer's
 * validation and the offline evaluation. A unit test pins it to the tfjs graph that
 * trains the weights (|difference| < 1e-4), so training and serving compute the same function.
 */
export class InterestScorer {
  readonly architecture: ModelArchitecture;
  readonly dimension: number;
  /** Multiplies the dot product of user and item vectors. */
  readonly scale: number;
  private readonly popularityWeight: number;
  private readonly warmRow: ReadonlyMap<string, number>;
  private readonly clicks: ReadonlyMap<string, number>;
  /** The attentions' key projections, built on first use. */
  private readonly projections = new Map<WeightName, KeyProjection>();

  private constructor(
    readonly manifest: ModelManifest,
    private readonly weights: Readonly<Partial<Record<WeightName, WeightTensor>>>,
  ) {
    this.architecture = manifest.architecture;
    this.dimension = manifest.architecture.dimension;
    this.scale = Math.exp(this.tensor('score.logScale').data[0]);
    this.popularityWeight = manifest.architecture.popularity
      ? this.tensor('score.popularity').data[0]
      : 0;
    this.warmRow = new Map(manifest.warmItems.map((id, row) => [id, row]));
    this.clicks = new Map(Object.entries(manifest.itemClicks));
  }

  static fromArtifact(artifact: ModelArtifact | Uint8Array): InterestScorer {
    const parsed = artifact instanceof Uint8Array ? loadModel(artifact) : artifact;
    return new InterestScorer(parsed.manifest, parsed.weights);
  }

  get encoderId(): string {
    return this.manifest.encoderId;
  }

  /**
   * The text vector of a model with token attention: the learned additive attention over the
   * item's first `maxTokens` final token states, L2-normalised (then `itemVector` as for any text
   * vector). A model that fine-tunes encoder layers needs the states through its own layers
   * (serving: the encoder with them written in; training: pooledTokenTexts).
   */
  tokenPooledText(tokens: TokenStates): Float32Array {
    const d = this.dimension;
    const a = this.architecture.tokenAttentionDim;
    const n = Math.min(tokens.count, this.architecture.maxTokens);
    if (tokens.data.length < n * d) {
      throw new Error(`token states have ${tokens.data.length} values, not ${n} x ${d}`);
    }
    const keys = this.keyProjection('tokens.w', a);
    const b = this.tensor('tokens.b').data;
    const q = this.tensor('tokens.q').data;
    const logits = new Float64Array(n);
    const projected = new Float32Array(a);
    let max = -Infinity;
    for (let t = 0; t < n; t++) {
      keys.project(tokens.data.subarray(t * d, (t + 1) * d), projected);
      let logit = 0;
      for (let k = 0; k < a; k++) logit += Math.tanh(b[k] + projected[k]) * q[k];
      logits[t] = logit;
      if (logit > max) max = logit;
    }
    let sum = 0;
    for (let t = 0; t < n; t++) sum += logits[t] = Math.exp(logits[t] - max);
    const acc = new Float64Array(d);
    for (let t = 0; t < n; t++) {
      const weight = logits[t] / sum;
      for (let i = 0; i < d; i++) acc[i] += weight * tokens.data[t * d + i];
    }
    const norm = Math.max(Math.sqrt(acc.reduce((total, x) => total + x * x, 0)), 1e-12);
    return Float32Array.from(acc, (x) => x / norm);
  }

  /** The item tower: text vector through the residual adapter, plus the item's ID embedding. */
  itemVector(textVector: ArrayLike<number>, itemId?: string): Float32Array {
    const d = this.dimension;
    if (textVector.length !== d) {
      throw new Error(`text vector has ${textVector.length} values, the model expects ${d}`);
    }
    const out = Float32Array.from(textVector);
    const h = this.architecture.adapterHidden;
    if (h > 0) {
      const w1 = this.tensor('adapter.w1').data;
      const b1 = this.tensor('adapter.b1').data;
      const w2 = this.tensor('adapter.w2').data;
      const b2 = this.tensor('adapter.b2').data;
      const hidden = new Float64Array(h);
      for (let j = 0; j < h; j++) hidden[j] = b1[j];
      for (let i = 0; i < d; i++) {
        const x = textVector[i];
        if (x === 0) continue;
        const row = i * h;
        for (let j = 0; j < h; j++) hidden[j] += x * w1[row + j];
      }
      const acc = new Float64Array(d);
      for (let i = 0; i < d; i++) acc[i] = textVector[i] + b2[i];
      for (let j = 0; j < h; j++) {
        const r = hidden[j] > 0 ? hidden[j] : 0;
        if (r === 0) continue;
        const row = j * d;
        for (let i = 0; i < d; i++) acc[i] += r * w2[row + i];
      }
      for (let i = 0; i < d; i++) out[i] = acc[i];
    }
    const row = itemId === undefined ? undefined : this.warmRow.get(itemId);
    if (this.architecture.idEmbedding && row !== undefined) {
      const table = this.tensor('id.table').data;
      for (let i = 0; i < d; i++) out[i] += table[row * d + i];
    }
    return out;
  }

  /** The candidate-only part of the score (popularity feature); 0 for unknown items. */
  itemBias(itemId?: string): number {
    if (this.popularityWeight === 0 || itemId === undefined) return 0;
    return this.popularityWeight * Math.log1p(this.clicks.get(itemId) ?? 0);
  }

  /**
   * The user tower: attention pooling over the adapted vectors of the user's clicks, MOST RECENT
   * FIRST (only the first `maxHistory` are read); `agesMs[j]` is how long before the request click
   * j happened (NaN or absent when unknown). No history gives the zero vector.
   */
  userVector(history: readonly ArrayLike<number>[], agesMs?: readonly number[]): Float32Array {
    const d = this.dimension;
    const n = Math.min(history.length, this.architecture.maxHistory);
    const out = new Float32Array(d);
    if (n === 0) return out;
    const weights = new Float64Array(n);
    if (this.architecture.attention) {
      const a = this.architecture.attentionDim;
      const keys = this.keyProjection('attention.v', a);
      const b = this.tensor('attention.b').data;
      const q = this.tensor('attention.q').data;
      const position = this.architecture.recency ? this.tensor('attention.position').data : null;
      const ageW = this.architecture.recency ? this.tensor('attention.age').data : null;
      const projected = new Float32Array(a);
      const key = new Float64Array(a);
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const x = history[j];
        keys.project(x, projected);
        for (let k = 0; k < a; k++) key[k] = b[k] + projected[k];
        if (position !== null && ageW !== null) {
          const age = ageFeature(agesMs?.[j] ?? Number.NaN);
          for (let k = 0; k < a; k++) key[k] += position[j * a + k] + age * ageW[k];
        }
        let logit = 0;
        for (let k = 0; k < a; k++) logit += Math.tanh(key[k]) * q[k];
        weights[j] = logit;
        if (logit > max) max = logit;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += weights[j] = Math.exp(weights[j] - max);
      for (let j = 0; j < n; j++) weights[j] /= sum;
    } else {
      weights.fill(1 / n);
    }
    const acc = new Float64Array(d);
    for (let j = 0; j < n; j++) {
      const x = history[j];
      const w = weights[j];
      for (let i = 0; i < d; i++) acc[i] += w * x[i];
    }
    for (let i = 0; i < d; i++) out[i] = acc[i];
    return out;
  }

  /** The key projection of an attention whose weight `name` is d × `width`. */
  private keyProjection(name: WeightName, width: number): KeyProjection {
    let projection = this.projections.get(name);
    if (projection === undefined) {
      projection = new KeyProjection(this.tensor(name).data, this.dimension, width);
      this.projections.set(name, projection);
    }
    return projection;
  }

  /** scale * (user . item) + the item's popularity term. */
  score(user: ArrayLike<number>, item: ArrayLike<number>, itemId?: string): number {
    let dot = 0;
    for (let i = 0; i < this.dimension; i++) dot += user[i] * item[i];
    return this.scale * dot + this.itemBias(itemId);
  }

  /** Adapted vectors for a whole catalog, computed once per model load. */
  catalog(ids: readonly string[], textVectors: readonly ArrayLike<number>[]): ScoredCatalog {
    const d = this.dimension;
    const matrix = new Float32Array(ids.length * d);
    const bias = new Float32Array(ids.length);
    ids.forEach((id, row) => {
      matrix.set(this.itemVector(textVectors[row], id), row * d);
      bias[row] = this.itemBias(id);
    });
    return { ids, dimension: d, matrix, bias };
  }

  private tensor(name: WeightName): WeightTensor {
    const tensor = this.weights[name];
    if (tensor === undefined) throw new Error(`model artifact lacks tensor ${name}`);
    return tensor;
  }
}

/**
 * Adapted item vectors looked up by id, each computed once; null for items without a text vector
 * (token states, for a model with token attention).
 */
export function memoizedItemVectors(
  scorer: InterestScorer,
  vectors: {
    get(itemId: string): Float32Array | undefined;
    readonly tokens?: { get(itemId: string): TokenStates | undefined };
    /** Text vectors the model's own token tower pooled (pooledTokenTexts, token-tower.ts). */
    readonly pooledTexts?: { get(itemId: string): Float32Array | undefined };
  },
): (itemId: string) => Float32Array | null {
  const arch = scorer.architecture;
  const { tokens, pooledTexts } = vectors;
  if (arch.tokenAttention && pooledTexts === undefined) {
    if (arch.encoderTopLayers > 0) {
      throw new Error(
        'the model fine-tunes encoder layers: pool its token states with pooledTokenTexts',
      );
    }
    if (tokens === undefined) throw new Error('the model pools token states, and none were given');
  }
  const textOf = (id: string): Float32Array | undefined => {
    if (!arch.tokenAttention) return vectors.get(id);
    if (pooledTexts !== undefined) return pooledTexts.get(id);
    const states = tokens?.get(id);
    return states === undefined ? undefined : scorer.tokenPooledText(states);
  };
  const adapted = new Map<string, Float32Array | null>();
  return (id) => {
    let vector = adapted.get(id);
    if (vector === undefined) {
      const text = textOf(id);
      vector = text === undefined ? null : scorer.itemVector(text, id);
      adapted.set(id, vector);
    }
    return vector;
  };
}

/** The user vector at an impression's time from its click history (items without a vector skipped). */
export function historyUserVector(
  scorer: InterestScorer,
  itemVector: (itemId: string) => Float32Array | null,
  impression: { time: number; history: readonly { itemId: string; time: number }[] },
): Float32Array {
  const history: Float32Array[] = [];
  const ages: number[] = [];
  for (const click of impression.history) {
    const vector = itemVector(click.itemId);
    if (vector === null) continue;
    history.push(vector);
    ages.push(impression.time - click.time);
  }
  return scorer.userVector(history, ages);
}

/**
 * `x · W` for a d × a weight of an additive attention, a dot product per column of W: W stored
 * transposed in WebAssembly memory so that the SIMD kernel scores its a rows against x. About 5
 * times the scalar loop (`npm run bench -- scoring-kernel`, user tower).
 */
class KeyProjection {
  private readonly columns: VectorMemory;
  private readonly rows: Int32Array;

  constructor(weight: Float32Array, dimension: number, width: number) {
    this.columns = new VectorMemory(dimension, width, { growable: false });
    const transposed = this.columns.matrix;
    for (let i = 0; i < dimension; i++) {
      for (let k = 0; k < width; k++) transposed[k * dimension + i] = weight[i * width + k];
    }
    this.rows = Int32Array.from({ length: width }, (_, k) => k);
  }

  /** `out[k] = x · W[:, k]`, summed in float32. */
  project(x: ArrayLike<number>, out: Float32Array): void {
    this.columns.dotRows(this.rows, this.rows.length, x, out);
  }
}
