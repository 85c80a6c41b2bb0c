import * as tf from '@tensorflow/tfjs';
import type { BertLayerWeights } from '../../common/bert-layer';
import { Random } from '../../synthetic/prng';
import { countClicks, Impression, ItemVectors, sampleOf, shuffle } from './dataset/dataset';
import { MetricsAccumulator, RankingMetrics } from './eval/metrics';
import { ageFeature, ModelArchitecture } from './model/architecture';
import { loadModel, ModelArtifact, serializeModel } from './model/artifact';
import { initialWeights, warmStartWeights } from './model/init-weights';
import { historyUserVector, InterestScorer, memoizedItemVectors } from './model/interest-scorer';
import { BatchTokens, EncodedBatch, groupTokens, TfInterestModel } from './model/tf-model';
import { pooledTokenTexts } from './model/token-tower';

export interface TrainingHyperparameters {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** Of the fine-tuned encoder layers (architecture.encoderTopLayers): they start pretrained. */
  readonly encoderLearningRate: number;
  /**
   * Samples per step when encoder layers are fine-tuned: a step holds those layers' activations
   * for every candidate (about 1.3 MB an item at 26 tokens) until its backward pass, and the wasm
   * heap ends at 4 GiB.
   */
  readonly encoderBatchSize: number;
  /** Non-clicked candidates per clicked one (K in NRMS's 1 + K softmax). */
  readonly negatives: number;
  /** L2 penalty on the ID embeddings used in a batch. */
  readonly idL2: number;
  /** Epochs without a better validation AUC before stopping. */
  readonly patience: number;
  readonly seed: number;
  /** Validation impressions scored per epoch (a seeded sample beyond this). */
  readonly maxValidation: number;
}

export const DEFAULT_HYPERPARAMETERS: TrainingHyperparameters = {
  epochs: 4,
  batchSize: 256,
  learningRate: 0.003,
  encoderLearningRate: 0.0001,
  encoderBatchSize: 64,
  negatives: 4,
  idL2: 1e-4,
  patience: 0,
  seed: 42,
  maxValidation: 2000,
};

export interface TrainingInput {
  readonly train: readonly Impression[];
  /** Later in time than `train`; scored each epoch with the serving scorer. */
  readonly validation: readonly Impression[];
  readonly vectors: ItemVectors;
  readonly architecture: ModelArchitecture;
  readonly hyperparameters: TrainingHyperparameters;
  /** The tfjs backend already selected (recorded in the manifest). */
  readonly backend: string;
  /** Warm start (incremental fine-tuning); absent = from scratch. */
  readonly parent?: ModelArtifact;
  /**
   * The encoder's pretrained top k layers (architecture.encoderTopLayers), bottom first: where a
   * model that fine-tunes them starts. Not needed when `parent` has its own.
   */
  readonly encoderLayers?: readonly BertLayerWeights[];
  /** Click counts for the popularity feature and warm set; default: counted from `train`. */
  readonly clickCounts?: ReadonlyMap<string, number>;
  /** Extra manifest fields (data window, mode). */
  readonly notes?: Readonly<Record<string, unknown>>;
}

export interface EpochReport {
  readonly epoch: number;
  readonly loss: number;
  readonly validation?: RankingMetrics;
  readonly seconds: number;
  readonly samplesPerSecond: number;
}

export interface TrainingCallbacks {
  onEpoch?(report: EpochReport): void;
  /** Fraction of all planned batches done. */
  onProgress?(fraction: number, loss: number): void;
  readonly signal?: AbortSignal;
}

export interface TrainingOutcome {
  readonly artifact: Buffer;
  readonly scorer: InterestScorer;
  readonly epochs: readonly EpochReport[];
  readonly bestEpoch: number;
  readonly validation?: RankingMetrics;
  readonly trainSamples: number;
  readonly validSamples: number;
  readonly samplesPerSecond: number;
}

interface Sample {
  readonly history: Int32Array;
  readonly ages: Float32Array;
  readonly clicked: number;
  /** Non-clicked items of the impression; empty means sample from the catalog. */
  readonly pool: Int32Array;
}

/** Items the training data references, as rows of one text matrix. */
class Vocabulary {
  readonly ids: string[] = [];
  readonly index = new Map<string, number>();
  constructor(
    private readonly vectors: ItemVectors,
    /** Admit only items with token states too (models with token attention). */
    private readonly needsTokens: boolean,
  ) {}

  /** Whether the item has what the model reads (text vector, token states). */
  admits(itemId: string): boolean {
    if (this.vectors.get(itemId) === undefined) return false;
    return !this.needsTokens || this.vectors.tokens?.get(itemId) !== undefined;
  }

  row(itemId: string): number | undefined {
    const known = this.index.get(itemId);
    if (known !== undefined) return known;
    if (!this.admits(itemId)) return undefined;
    this.index.set(itemId, this.ids.length);
    this.ids.push(itemId);
    return this.ids.length - 1;
  }

  /** Token states of `rows`, grouped by length (at most `maxTokens` each). */
  tokens(rows: Int32Array, maxTokens: number): BatchTokens {
    return groupTokens(
      Array.from(rows, (row) => this.vectors.tokens?.get(this.ids[row])),
      maxTokens,
      this.vectors.dimension,
    );
  }

  matrix(): Float32Array {
    const d = this.vectors.dimension;
    const out = new Float32Array(this.ids.length * d);
    this.ids.forEach((id, row) => {
      const vector = this.vectors.get(id);
      if (vector !== undefined) out.set(vector, row * d);
    });
    return out;
  }
}

function buildSamples(
  impressions: readonly Impression[],
  vocabulary: Vocabulary,
  maxHistory: number,
): Sample[] {
  const samples: Sample[] = [];
  for (const impression of impressions) {
    const history: number[] = [];
    const ages: number[] = [];
    for (const click of impression.history) {
      if (history.length >= maxHistory) break;
      const row = vocabulary.row(click.itemId);
      if (row === undefined) continue;
      history.push(row);
      ages.push(ageFeature(impression.time - click.time));
    }
    const pool = impression.notClicked
      .map((id) => vocabulary.row(id))
      .filter((row): row is number => row !== undefined);
    for (const itemId of impression.clicked) {
      const clicked = vocabulary.row(itemId);
      if (clicked === undefined) continue;
      samples.push({
        history: Int32Array.from(history),
        ages: Float32Array.from(ages),
        clicked,
        pool: Int32Array.from(pool),
      });
    }
  }
  return samples;
}

/** Draws catalog negatives proportionally to clicks^0.75 (word2vec's unigram smoothing). */
class NegativeSampler {
  private readonly cumulative: Float64Array;
  constructor(
    private readonly rows: Int32Array,
    weights: Float64Array,
  ) {
    this.cumulative = new Float64Array(weights.length);
    let sum = 0;
    weights.forEach((w, i) => (this.cumulative[i] = sum += w));
  }

  draw(random: Random, exclude: number): number {
    const total = this.cumulative[this.cumulative.length - 1];
    for (let attempt = 0; attempt < 20; attempt++) {
      const target = random.next() * total;
      let lo = 0;
      let hi = this.cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.cumulative[mid] > target) hi = mid;
        else lo = mid + 1;
      }
      if (this.rows[lo] !== exclude) return this.rows[lo];
    }
    return this.rows[0];
  }
}

function negativesFor(
  sample: Sample,
  k: number,
  random: Random,
  sampler: NegativeSampler,
): number[] {
  if (sample.pool.length === 0)
    return Array.from({ length: k }, () => sampler.draw(random, sample.clicked));
  if (sample.pool.length >= k) return sampleOf(random, Array.from(sample.pool), k);
  // Too few shown items: repeat them, as NRMS pads short impressions.
  return Array.from(
    { length: k },
    () => sample.pool[Math.floor(random.next() * sample.pool.length)],
  );
}

function encodeBatch(
  samples: readonly Sample[],
  negatives: readonly number[][],
  arch: ModelArchitecture,
  warmRowOf: Int32Array,
  popularityOf: Float32Array,
  vocabulary: Vocabulary,
): EncodedBatch {
  const size = samples.length;
  const h = Math.max(
    1,
    Math.min(arch.maxHistory, Math.max(...samples.map((s) => s.history.length))),
  );
  const c = 1 + (negatives[0]?.length ?? 0);
  const local = new Map<number, number>();
  const unique: number[] = [];
  const localOf = (row: number) => {
    let index = local.get(row);
    if (index === undefined) {
      index = unique.length;
      local.set(row, index);
      unique.push(row);
    }
    return index;
  };
  const history = new Int32Array(size * h);
  const historyMask = new Float32Array(size * h);
  const historyAge = new Float32Array(size * h);
  const candidates = new Int32Array(size * c);
  const candidatePopularity = new Float32Array(size * c);
  samples.forEach((sample, s) => {
    const n = Math.min(h, sample.history.length);
    for (let j = 0; j < n; j++) {
      history[s * h + j] = localOf(sample.history[j]);
      historyMask[s * h + j] = 1;
      historyAge[s * h + j] = sample.ages[j];
    }
    const rows = [sample.clicked, ...negatives[s]];
    rows.forEach((row, j) => {
      candidates[s * c + j] = localOf(row);
      candidatePopularity[s * c + j] = popularityOf[row];
    });
  });
  const uniqueItems = Int32Array.from(unique);
  return {
    size,
    historyLength: h,
    candidateCount: c,
    uniqueItems,
    warmRows: uniqueItems.map((row) => warmRowOf[row]),
    history,
    historyMask,
    historyAge,
    candidates,
    candidatePopularity,
    ...(arch.tokenAttention
      ? { tokens: batchTokens(uniqueItems, candidates, arch, vocabulary) }
      : {}),
  };
}

/**
 * The batch items the token tower runs on: all of them, or, for a model that fine-tunes encoder
 * layers, only the candidates (history-only items read the per-epoch text matrix). Group positions
 * index `uniqueItems`.
 */
function batchTokens(
  uniqueItems: Int32Array,
  candidates: Int32Array,
  arch: ModelArchitecture,
  vocabulary: Vocabulary,
): BatchTokens {
  if (arch.encoderTopLayers === 0) return vocabulary.tokens(uniqueItems, arch.maxTokens);
  const positions = Int32Array.from(new Set(candidates)).sort();
  const { groups } = vocabulary.tokens(
    positions.map((position) => uniqueItems[position]),
    arch.maxTokens,
  );
  return {
    groups: groups.map((group) => ({
      ...group,
      positions: group.positions.map((i) => positions[i]),
    })),
  };
}

/** Scores impressions with the serving scorer; impressions without non-clicks get sampled ones. */
export function evaluateImpressions(
  scorer: InterestScorer,
  impressions: readonly Impression[],
  vectors: ItemVectors,
  fallbackNegatives?: (impression: Impression) => string[],
): { metrics: RankingMetrics; count: number } {
  const itemVector = memoizedItemVectors(scorer, vectors);
  const accumulator = new MetricsAccumulator();
  for (const impression of impressions) {
    const user = historyUserVector(scorer, itemVector, impression);
    const shown =
      impression.notClicked.length > 0
        ? impression.notClicked
        : (fallbackNegatives?.(impression) ?? []);
    const labels: number[] = [];
    const scores: number[] = [];
    for (const [ids, label] of [
      [impression.clicked, 1],
      [shown, 0],
    ] as const) {
      for (const id of ids) {
        const vector = itemVector(id);
        if (vector === null) continue;
        labels.push(label);
        scores.push(scorer.score(user, vector, id));
      }
    }
    accumulator.add(labels, scores);
  }
  return { metrics: accumulator.mean(), count: accumulator.count };
}

/**
 * The production training loop: NRMS-style 1 + K softmax over impressions, Adam, per-epoch
 * validation with the serving scorer, best epoch kept (early stopping). Seeded: same data, seed
 * and backend give the same weights.
 */
export async function trainInterestModel(
  input: TrainingInput,
  callbacks: TrainingCallbacks = {},
): Promise<TrainingOutcome> {
  const arch = input.architecture;
  const hp = input.hyperparameters;
  if (input.vectors.dimension !== arch.dimension) {
    throw new Error(`encoder dimension ${input.vectors.dimension} != model ${arch.dimension}`);
  }
  if (arch.tokenAttention && input.vectors.tokens === undefined) {
    throw new Error('the architecture pools token states, and the input has none');
  }
  const vocabulary = new Vocabulary(input.vectors, arch.tokenAttention);
  const samples = buildSamples(input.train, vocabulary, arch.maxHistory);
  if (samples.length === 0)
    throw new Error('no training samples (no clicks on items with vectors)');

  const clickCounts = input.clickCounts ?? countClicks(input.train);
  const warmItems = arch.idEmbedding
    ? [...clickCounts]
        .filter(([id, n]) => n >= arch.idMinInteractions && vocabulary.admits(id))
        .map(([id]) => id)
        .sort()
    : [];
  const warmIndex = new Map(warmItems.map((id, row) => [id, row]));
  for (const id of warmItems) vocabulary.row(id);
  const warmRowOf = Int32Array.from(vocabulary.ids, (id) => warmIndex.get(id) ?? -1);
  const popularityOf = Float32Array.from(vocabulary.ids, (id) =>
    Math.log1p(clickCounts.get(id) ?? 0),
  );
  const samplerRows = Int32Array.from(vocabulary.ids.map((_, row) => row));
  const sampler = new NegativeSampler(
    samplerRows,
    Float64Array.from(vocabulary.ids, (id) => (clickCounts.get(id) ?? 0) ** 0.75 + 0.1),
  );

  const weights =
    input.parent === undefined
      ? initialWeights(arch, warmItems.length, hp.seed, {
          ...(input.encoderLayers === undefined ? {} : { encoderLayers: input.encoderLayers }),
        })
      : warmStartWeights(input.parent, arch, warmItems, hp.seed, input.encoderLayers);
  const model = new TfInterestModel(arch, weights, vocabulary.matrix(), hp.idL2);
  const optimizer = tf.train.adam(hp.learningRate);
  const encoderOptimizer =
    arch.encoderTopLayers > 0 ? tf.train.adam(hp.encoderLearningRate) : undefined;
  const random = new Random(`train:${String(hp.seed)}`);
  const validationRandom = new Random(`validation:${String(hp.seed)}`);
  const validation = sampleOf(validationRandom, input.validation, hp.maxValidation);
  const fallbackRandom = new Random(`fallback:${String(hp.seed)}`);
  const fallbackNegatives = new Map<string, string[]>();
  const negativesForValidation = (impression: Impression) => {
    let drawn = fallbackNegatives.get(impression.id);
    if (drawn === undefined) {
      const clicked = vocabulary.row(impression.clicked[0] ?? '') ?? -1;
      drawn = Array.from(
        { length: 9 },
        () => vocabulary.ids[sampler.draw(fallbackRandom, clicked)],
      );
      fallbackNegatives.set(impression.id, drawn);
    }
    return drawn;
  };

  const manifestBase = (metrics: Readonly<Record<string, number>>) => ({
    architecture: arch,
    encoderId: input.vectors.encoderId,
    backend: input.backend,
    hyperparameters: { ...hp, ...(input.notes ?? {}), parent: input.parent !== undefined },
    metrics,
    itemClicks: Object.fromEntries(clickCounts),
    warmItems,
    createdAt: new Date().toISOString(),
  });

  // A model with fine-tuned encoder layers pools its items' token states in tfjs, per epoch.
  const validationItems = validation.flatMap((impression) => [
    ...impression.history.map((click) => click.itemId),
    ...impression.clicked,
    ...impression.notClicked,
  ]);
  const validationVectors = async (artifact: Buffer): Promise<ItemVectors> => {
    const tokens = input.vectors.tokens;
    if (arch.encoderTopLayers === 0 || tokens === undefined) return input.vectors;
    // Impressions without shown items are scored against negatives drawn from the vocabulary.
    const needsVocabulary = validation.some((impression) => impression.notClicked.length === 0);
    const pooled = await pooledTokenTexts(loadModel(artifact), tokens, [
      ...validationItems,
      ...(needsVocabulary ? vocabulary.ids : []),
    ]);
    return { ...input.vectors, pooledTexts: pooled };
  };

  const batchSize =
    arch.encoderTopLayers > 0 ? Math.min(hp.batchSize, hp.encoderBatchSize) : hp.batchSize;
  const batchesPerEpoch = Math.ceil(samples.length / batchSize);
  const totalBatches = batchesPerEpoch * hp.epochs;
  const epochs: EpochReport[] = [];
  let best: { artifact: Buffer; epoch: number; validation?: RankingMetrics } | undefined;
  let sinceBest = 0;
  let done = 0;
  let trainedSamples = 0;
  let trainSeconds = 0;
  try {
    for (let epoch = 1; epoch <= hp.epochs; epoch++) {
      const started = performance.now();
      if (arch.encoderTopLayers > 0) {
        model.refreshTokenTexts(vocabulary.ids.length, (rows) =>
          vocabulary.tokens(rows, arch.maxTokens),
        );
      }
      const order = shuffle(
        random,
        samples.map((_, i) => i),
      );
      let lossSum = 0;
      for (let start = 0; start < order.length; start += batchSize) {
        if (callbacks.signal?.aborted === true) throw new Error('training aborted');
        const batchSamples = order.slice(start, start + batchSize).map((i) => samples[i]);
        const negatives = batchSamples.map((s) => negativesFor(s, hp.negatives, random, sampler));
        const batch = encodeBatch(
          batchSamples,
          negatives,
          arch,
          warmRowOf,
          popularityOf,
          vocabulary,
        );
        const loss = model.trainStep(batch, optimizer, encoderOptimizer);
        if (!Number.isFinite(loss))
          throw new Error(`training diverged: loss ${loss} at epoch ${epoch}`);
        lossSum += loss * batch.size;
        done++;
        callbacks.onProgress?.(done / totalBatches, loss);
        // Let timers, signals and progress output through between batches.
        if (done % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      const seconds = (performance.now() - started) / 1000;
      trainedSamples += samples.length;
      trainSeconds += seconds;
      const exported = model.exportWeights();
      const artifact = serializeModel(manifestBase({}), exported);
      const scorer = InterestScorer.fromArtifact(loadModel(artifact));
      const scored =
        validation.length > 0
          ? evaluateImpressions(
              scorer,
              validation,
              await validationVectors(artifact),
              negativesForValidation,
            ).metrics
          : undefined;
      const report: EpochReport = {
        epoch,
        loss: lossSum / samples.length,
        ...(scored === undefined ? {} : { validation: scored }),
        seconds,
        samplesPerSecond: samples.length / seconds,
      };
      epochs.push(report);
      callbacks.onEpoch?.(report);
      const improved =
        best === undefined ||
        scored === undefined ||
        best.validation === undefined ||
        scored.auc > best.validation.auc;
      if (improved) {
        best = { artifact, epoch, ...(scored === undefined ? {} : { validation: scored }) };
        sinceBest = 0;
      } else if (++sinceBest > hp.patience) {
        break;
      }
    }
  } finally {
    optimizer.dispose();
    encoderOptimizer?.dispose();
    model.dispose();
  }
  if (best === undefined) throw new Error('training produced no epoch');
  const metrics: Record<string, number> = {
    ...(best.validation ?? {}),
    bestEpoch: best.epoch,
    trainSamples: samples.length,
    validSamples: validation.length,
  };
  const final = loadModel(best.artifact);
  const artifact = serializeModel({ ...final.manifest, metrics }, final.weights);
  return {
    artifact,
    scorer: InterestScorer.fromArtifact(artifact),
    epochs,
    bestEpoch: best.epoch,
    ...(best.validation === undefined ? {} : { validation: best.validation }),
    trainSamples: samples.length,
    validSamples: validation.length,
    samplesPerSecond: trainedSamples / Math.max(trainSeconds, 1e-9),
  };
}
