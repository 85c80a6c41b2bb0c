import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { itemText } from '../../embedding/item-text';
import type { TextEncoder, TokenEncoder } from '../../embedding/text-encoder';
import type { BertLayerWeights } from '../../../common/bert-layer';
import type { TokenStates } from '../../../common/token-states';
import { decodeHalf, encodeHalf } from '../../embedding/token-codec';
import {
  Impression,
  ItemVectors,
  splitByTime,
  subsample,
  vectorsFromMap,
} from '../dataset/dataset';
import { readMind } from '../dataset/mind';
import { DEFAULT_ARCHITECTURE, ModelArchitecture } from '../model/architecture';
import { loadModel } from '../model/artifact';
import { pooledTokenTexts } from '../model/token-tower';
import { selectBackend, TrainBackendPreference } from '../model/backend';
import {
  DEFAULT_HYPERPARAMETERS,
  EpochReport,
  trainInterestModel,
  TrainingHyperparameters,
} from '../trainer';
import { DEFAULT_PROFILE } from '../../ranking/profile';
import { COMBINER_INPUTS, CombinerSpec, runnableCombiner } from '../model/combiner';
import {
  CombinerFitOptions,
  CombinerSlate,
  DEFAULT_COMBINER_FIT,
  fitCombiner,
} from '../model/combiner-fit';
import { MetricsAccumulator, RankingMetrics } from './metrics';
import { combinerSlates } from '../combiner-stage';
import { servedFactsAt, servedScorer, withServedInputs } from './served-ranking';
import {
  frozenEncoderScorer,
  ImpressionScorer,
  interestModelScorer,
  popularityScorer,
  randomScorer,
} from './scorers';
import { DiskTokenCache } from './token-cache';
import { DiskVectorCache } from './vector-cache';

/** One trained variant: the default model, or it with one part switched off (or on). */
export interface Variant {
  readonly name: string;
  readonly change: Partial<ModelArchitecture>;
}

export const ABLATIONS: readonly Variant[] = [
  { name: 'no ID embedding', change: { idEmbedding: false } },
  { name: 'no attention (mean pool)', change: { attention: false } },
  { name: 'no recency', change: { recency: false } },
  { name: 'no adapter', change: { adapterHidden: 0 } },
  { name: '+ popularity feature', change: { popularity: true } },
];

export interface EvalOptions {
  readonly dataDir: string;
  readonly encoder: TextEncoder;
  /** Adds the token-attention row: the same encoder's token states (cached beside the vectors). */
  readonly tokenEncoder?: TokenEncoder;
  /** Adds a row per k: token attention over the encoder's top k layers, fine-tuned. */
  readonly fineTune?: {
    readonly ks: readonly number[];
    readonly source: (k: number) => Promise<FineTuneSource>;
  };
  /** After each trained token row and the default model: time a warm-started one-epoch run on
   * the latest n train impressions (the periodic incremental run). */
  readonly incrementalImpressions?: number;
  readonly cacheDir: string;
  readonly backend: TrainBackendPreference;
  readonly architecture?: Partial<ModelArchitecture>;
  readonly hyperparameters?: Partial<TrainingHyperparameters>;
  /** Train impressions used (seeded sample beyond this); undefined = all. */
  readonly maxTrainImpressions?: number;
  /** Share of train impressions (the latest) held out for early stopping. */
  readonly validationFraction: number;
  readonly ablations: boolean;
  /** The popularity half-life serving decays counts with (ONLINE_POPULARITY_HALF_LIFE_HOURS). */
  readonly popularityHalfLifeMs: number;
  readonly log: (message: string) => void;
  readonly onEncode?: (done: number, total: number) => void;
  readonly onTrainStart?: (variant: string) => void;
  readonly onTrainProgress?: (fraction: number, loss: number) => void;
  readonly onEpoch?: (variant: string, report: EpochReport) => void;
}

/** What a fine-tuned-layers row reads: states under the top k layers, and those layers. */
export interface FineTuneSource {
  /** The encoder's hidden states after layer L − k (its modelId names the layer). */
  readonly states: TokenEncoder;
  readonly layers: readonly BertLayerWeights[];
  readonly heads: number;
  readonly layerNormEps: number;
}

export interface EvalRow {
  readonly name: string;
  readonly all: RankingMetrics;
  readonly cold: RankingMetrics;
  /** Every dev impression served as to a new user (no history), where the row can serve one. */
  readonly coldUsers?: RankingMetrics;
  readonly trainSeconds?: number;
  /** The warm-started one-epoch run on the latest train impressions (incrementalImpressions). */
  readonly incrementalSeconds?: number;
  /** The process's peak resident set after training this row (a running maximum). */
  readonly peakRssMb?: number;
  /** Quoted from the dataset's README, not measured by this run. */
  readonly quoted?: boolean;
}

export interface EvalResult {
  readonly dataDir: string;
  readonly encoderId: string;
  readonly backend: string;
  readonly rows: readonly EvalRow[];
  readonly curves: Readonly<Record<string, readonly EpochReport[]>>;
  /** Per variant: [fraction of training done, batch loss] for every optimiser step. */
  readonly lossCurves: Readonly<Record<string, readonly (readonly [number, number])[]>>;
  /** The learned combiner's shapes, for the report's plot. */
  readonly combiner?: CombinerSpec;
  readonly counts: {
    readonly items: number;
    readonly trainImpressions: number;
    readonly validationImpressions: number;
    readonly devImpressions: number;
    readonly coldImpressions: number;
    /** Validation impressions the combiner was fitted on. */
    readonly combinerImpressions: number;
    readonly skippedImpressions: number;
  };
  readonly architecture: ModelArchitecture;
  readonly hyperparameters: TrainingHyperparameters;
  readonly tokens?: TokenCost;
}

/** What token states cost per item, next to the pooled vector. */
export interface TokenCost {
  readonly maxTokens: number;
  readonly meanTokens: number;
  /** Stored binary16 bytes per item (count + states), and the float32 vector's for comparison. */
  readonly bytesPerItem: number;
  readonly pooledBytesPerItem: number;
  /** Encoding one new item alone (no batching): pooled vector vs token states, median ms. */
  readonly pooledMsPerItem: number;
  readonly tokensMsPerItem: number;
  /** Largest |mean-pooled normalised states, binary16 vs float32| over the timed items. */
  readonly fp16MaxError: number;
  readonly timedItems: number;
}

function score(
  scorer: ImpressionScorer,
  dev: readonly Impression[],
  cold: ReadonlySet<string>,
): { all: RankingMetrics; cold: RankingMetrics; skipped: number } {
  const all = new MetricsAccumulator();
  const coldOnly = new MetricsAccumulator();
  for (const impression of dev) {
    const candidates = [...impression.clicked, ...impression.notClicked];
    const labels = candidates.map((_, i) => (i < impression.clicked.length ? 1 : 0));
    const scores = scorer(impression, candidates);
    all.add(labels, scores);
    if (cold.has(impression.id)) coldOnly.add(labels, scores);
  }
  return { all: all.mean(), cold: coldOnly.mean(), skipped: all.skipped };
}

/**
 * Dev impressions whose clicked item has no click in the training data (in no train history and
 * clicked in no train impression): the model knows it from its text alone.
 */
function coldImpressions(train: readonly Impression[], dev: readonly Impression[]): Set<string> {
  const seen = new Set<string>();
  for (const impression of train) {
    for (const click of impression.history) seen.add(click.itemId);
    for (const id of impression.clicked) seen.add(id);
  }
  return new Set(
    dev.filter((i) => i.clicked.some((id) => !seen.has(id))).map((impression) => impression.id),
  );
}

/**
 * Offline evaluation on a MIND-format folder: encode every item with the service's encoder
 * (cached by text hash), train with the production trainer on train/, score every dev impression
 * with the production scorer, next to the baselines and the ablations.
 */
export async function runEval(options: EvalOptions): Promise<EvalResult> {
  const started = Date.now();
  const data = await readMind(options.dataDir);
  options.log(
    `read ${data.items.length} items, ${data.train.length} train and ${data.dev.length} dev impressions`,
  );
  const cache = new DiskVectorCache(options.cacheDir, options.encoder);
  const texts = data.items.map((item) => itemText(item));
  const encoded = await cache.encode(texts, options.onEncode);
  const vectors: ItemVectors = vectorsFromMap(
    options.encoder.modelId,
    options.encoder.dimension,
    new Map(data.items.map((item, i) => [item.itemId, encoded[i]])),
  );
  options.log(`item vectors ready (${options.encoder.modelId}, ${(Date.now() - started) / 1000}s)`);
  const textOf = new Map(data.items.map((item, i) => [item.itemId, texts[i]]));
  // Read when the token row trains, so the rows before it do not carry the states in their memory.
  let tokenSetup: Awaited<ReturnType<typeof tokenStates>> | undefined;

  const trainAll =
    options.maxTrainImpressions === undefined
      ? data.train
      : subsample(data.train, options.maxTrainImpressions, 'eval');
  const { train, validation } = splitByTime(trainAll, options.validationFraction);
  const cold = coldImpressions(data.train, data.dev);
  const backend = await selectBackend(options.backend);
  options.log(
    `tfjs backend ${backend.name}` +
      (backend.skipped.length > 0 ? ` (skipped ${backend.skipped.join('; ')})` : ''),
  );

  const rows: EvalRow[] = [];
  let skipped = 0;
  const add = (
    name: string,
    scorer: ImpressionScorer,
    extra: {
      trainSeconds?: number;
      incrementalSeconds?: number;
      peakRssMb?: number;
      coldUsers?: ImpressionScorer;
    } = {},
  ) => {
    const result = score(scorer, data.dev, cold);
    skipped = result.skipped;
    rows.push({
      name,
      all: result.all,
      cold: result.cold,
      ...(extra.coldUsers === undefined
        ? {}
        : { coldUsers: score(extra.coldUsers, data.dev, cold).all }),
      ...(extra.trainSeconds === undefined ? {} : { trainSeconds: extra.trainSeconds }),
      ...(extra.incrementalSeconds === undefined
        ? {}
        : { incrementalSeconds: extra.incrementalSeconds }),
      ...(extra.peakRssMb === undefined ? {} : { peakRssMb: extra.peakRssMb }),
    });
  };
  add('random', randomScorer(1));
  const popularity = popularityScorer(data.train);
  add('popularity', popularity, { coldUsers: popularity });
  add('frozen encoder (mean history, cosine)', frozenEncoderScorer(vectors));

  const architecture: ModelArchitecture = {
    ...DEFAULT_ARCHITECTURE,
    dimension: options.encoder.dimension,
    ...options.architecture,
  };
  const hyperparameters: TrainingHyperparameters = {
    ...DEFAULT_HYPERPARAMETERS,
    ...options.hyperparameters,
  };
  const variants: Variant[] = [
    { name: 'trained model', change: {} },
    ...(options.ablations ? ABLATIONS : []),
    ...(options.tokenEncoder === undefined ? [] : [TOKEN_ATTENTION]),
    ...(options.fineTune?.ks ?? []).map(fineTunedVariant),
  ];
  const incremental = options.incrementalImpressions ?? 0;
  const recent =
    incremental > 0 ? [...data.train].sort((a, b) => a.time - b.time).slice(-incremental) : [];
  let modelScorer: ImpressionScorer | undefined;
  const curves: Record<string, EpochReport[]> = {};
  const lossCurves: Record<string, [number, number][]> = {};
  for (const variant of variants) {
    options.onTrainStart?.(variant.name);
    const k = variant.change.encoderTopLayers ?? 0;
    let variantVectors: ItemVectors = vectors;
    let fineTune: FineTuneSource | undefined;
    if (variant.change.tokenAttention === true && k === 0 && options.tokenEncoder !== undefined) {
      tokenSetup ??= await tokenStates(options.tokenEncoder, options, texts, textOf);
      variantVectors = { ...vectors, tokens: tokenSetup.tokens };
    } else if (k > 0 && options.fineTune !== undefined) {
      fineTune = await options.fineTune.source(k);
      const cache = await cachedTokens(fineTune.states, options, texts, textOf);
      variantVectors = { ...vectors, tokens: cache };
    }
    const variantArchitecture: ModelArchitecture = {
      ...architecture,
      ...variant.change,
      ...(fineTune === undefined
        ? {}
        : { encoderHeads: fineTune.heads, encoderLayerNormEps: fineTune.layerNormEps }),
    };
    const trainStarted = Date.now();
    curves[variant.name] = [];
    const losses: [number, number][] = (lossCurves[variant.name] = []);
    const outcome = await trainInterestModel(
      {
        train,
        validation,
        vectors: variantVectors,
        architecture: variantArchitecture,
        hyperparameters,
        backend: backend.name,
        ...(fineTune === undefined ? {} : { encoderLayers: fineTune.layers }),
      },
      {
        onProgress: (fraction, loss) => {
          losses.push([fraction, loss]);
          options.onTrainProgress?.(fraction, loss);
        },
        onEpoch: (report) => {
          curves[variant.name].push(report);
          options.onEpoch?.(variant.name, report);
        },
      },
    );
    const seconds = (Date.now() - trainStarted) / 1000;
    const artifact = loadModel(outcome.artifact);
    const tokens = variantVectors.tokens;
    const scorerVectors: ItemVectors =
      k > 0 && tokens !== undefined
        ? {
            ...variantVectors,
            pooledTexts: await pooledTokenTexts(
              artifact,
              tokens,
              data.items.map((item) => item.itemId),
            ),
          }
        : variantVectors;
    let incrementalSeconds: number | undefined;
    if (recent.length > 0 && !ABLATIONS.includes(variant)) {
      options.onTrainStart?.(`${variant.name}: incremental run`);
      const incrementalStarted = Date.now();
      await trainInterestModel({
        train: recent,
        validation: [],
        vectors: variantVectors,
        architecture: variantArchitecture,
        hyperparameters: { ...hyperparameters, epochs: 1 },
        backend: backend.name,
        parent: artifact,
      });
      incrementalSeconds = (Date.now() - incrementalStarted) / 1000;
      options.log(
        `${variant.name}: incremental run on ${recent.length} impressions, ${incrementalSeconds.toFixed(0)} s`,
      );
    }
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    const scorer = interestModelScorer(outcome.scorer, scorerVectors);
    modelScorer ??= scorer;
    add(variant.name, scorer, {
      trainSeconds: seconds,
      peakRssMb,
      ...(incrementalSeconds === undefined ? {} : { incrementalSeconds }),
    });
  }
  if (modelScorer === undefined) throw new Error('no model trained');
  const served = await servedRows(modelScorer, trainAll, validation, data.dev, options);
  for (const row of served.rows) add(row.name, row.scorer, { coldUsers: row.coldUsers });
  const reference = quotedReference(options.dataDir);
  if (reference !== undefined) rows.push(reference);
  return {
    dataDir: options.dataDir,
    encoderId: options.encoder.modelId,
    backend: backend.name,
    rows,
    curves,
    lossCurves,
    combiner: served.combiner,
    counts: {
      items: data.items.length,
      trainImpressions: train.length,
      validationImpressions: validation.length,
      devImpressions: data.dev.length,
      coldImpressions: cold.size,
      combinerImpressions: validation.length,
      skippedImpressions: skipped,
    },
    architecture,
    hyperparameters,
    ...(tokenSetup === undefined ? {} : { tokens: tokenSetup.cost }),
  };
}

export const TOKEN_ATTENTION: Variant = {
  name: 'token attention pooling (k=0)',
  change: { tokenAttention: true },
};

export function fineTunedVariant(k: number): Variant {
  return {
    name: `token attention, top ${k} encoder layer${k === 1 ? '' : 's'} fine-tuned (k=${k})`,
    change: { tokenAttention: true, encoderTopLayers: k },
  };
}

/** Token states of every text from `encoder` (cached on disk by text hash), looked up by item. */
async function cachedTokens(
  encoder: TokenEncoder,
  options: EvalOptions,
  texts: readonly string[],
  textOf: ReadonlyMap<string, string>,
): Promise<{ get(itemId: string): TokenStates | undefined; cache: DiskTokenCache }> {
  const maxTokens = options.architecture?.maxTokens ?? DEFAULT_ARCHITECTURE.maxTokens;
  const cache = new DiskTokenCache(options.cacheDir, encoder, maxTokens);
  await cache.fill(texts, options.onEncode);
  return {
    get: (itemId) => {
      const text = textOf.get(itemId);
      return text === undefined ? undefined : cache.get(text);
    },
    cache,
  };
}

/** Items timed alone for the per-item encode cost. */
const TIMED_ITEMS = 48;

/**
 * Every item's token states (cached on disk like the vectors), and what they cost: bytes per
 * item, and the time to encode one new item alone, pooled vector vs token states.
 */
async function tokenStates(
  encoder: TokenEncoder,
  options: EvalOptions,
  texts: readonly string[],
  textOf: ReadonlyMap<string, string>,
): Promise<{ tokens: { get(itemId: string): TokenStates | undefined }; cost: TokenCost }> {
  const maxTokens = options.architecture?.maxTokens ?? DEFAULT_ARCHITECTURE.maxTokens;
  const tokens = await cachedTokens(encoder, options, texts, textOf);
  const cache = tokens.cache;
  const d = encoder.dimension;
  const timed = Array.from(
    { length: Math.min(TIMED_ITEMS, texts.length) },
    (_, i) => texts[Math.floor((i * texts.length) / TIMED_ITEMS)],
  );
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1] ?? NaN;
  const pooledMs: number[] = [];
  const tokensMs: number[] = [];
  let fp16MaxError = 0;
  // The first runs warm ONNX Runtime up; they are not timed.
  await options.encoder.encode(timed.slice(0, 2));
  await encoder.encodeTokens(timed.slice(0, 2), maxTokens);
  for (const text of timed) {
    let start = performance.now();
    await options.encoder.encode([text]);
    pooledMs.push(performance.now() - start);
    start = performance.now();
    const [states] = await encoder.encodeTokens([text], maxTokens);
    tokensMs.push(performance.now() - start);
    const exact = meanPooled(states.data, states.count, d);
    const rounded = meanPooled(decodeHalf(encodeHalf(states.data)), states.count, d);
    for (let i = 0; i < d; i++) {
      fp16MaxError = Math.max(fp16MaxError, Math.abs(exact[i] - rounded[i]));
    }
  }
  const stored = cache.bytesOf(texts);
  const bytesPerItem = stored.bytes / stored.texts;
  const meanTokens = (bytesPerItem - 2) / (2 * d);
  const cost: TokenCost = {
    maxTokens,
    meanTokens,
    bytesPerItem,
    pooledBytesPerItem: d * 4,
    pooledMsPerItem: median(pooledMs),
    tokensMsPerItem: median(tokensMs),
    fp16MaxError,
    timedItems: timed.length,
  };
  options.log(
    `token states ready: ${stored.texts} texts, ${meanTokens.toFixed(1)} tokens and ` +
      `${(cost.bytesPerItem / 1024).toFixed(1)} KiB per item (binary16, at most ${maxTokens} tokens)`,
  );
  return { tokens, cost };
}

function meanPooled(data: Float32Array, count: number, d: number): Float64Array {
  const out = new Float64Array(d);
  for (let t = 0; t < count; t++) for (let i = 0; i < d; i++) out[i] += data[t * d + i];
  const norm = Math.sqrt(out.reduce((sum, x) => sum + x * x, 0)) || 1;
  return out.map((x) => x / norm);
}

/**
 * The served ranking's rows: the model's scores merged with the serving features by ranking's
 * own merge, under the default profile's hand weights and under learned combiners fitted on the
 * validation window (impressions the model did not train on), with the additive shapes and, for
 * comparison, straight lines.
 */
async function servedRows(
  model: ImpressionScorer,
  train: readonly Impression[],
  validation: readonly Impression[],
  dev: readonly Impression[],
  options: EvalOptions,
) {
  const facts = servedFactsAt(train, [...validation, ...dev], options.popularityHalfLifeMs);
  const hand = { ...DEFAULT_PROFILE, scoring: 'hand' as const };
  const learned = { ...DEFAULT_PROFILE, scoring: 'learned' as const };
  const slates = combinerSlates(withServedInputs(validation, facts), model);
  const fit = async (on: readonly CombinerSlate[], fitOptions: CombinerFitOptions) => {
    const fitted = await fitCombiner(on, fitOptions);
    options.log(
      `combiner (${fitOptions.knots} knots) fitted on ${on.length} slates, loss ${fitted.loss.toFixed(4)}`,
    );
    return fitted.spec;
  };
  const additive = await fit(slates, DEFAULT_COMBINER_FIT);
  const linear = await fit(slates, { ...DEFAULT_COMBINER_FIT, knots: 2 });
  // Each input left out in turn (held at 0, so its shape is flat): where the gain comes from.
  const without: { input: string; spec: CombinerSpec }[] = [];
  for (const [f, input] of COMBINER_INPUTS.entries()) {
    if (f === 0) continue;
    const held = slates.map((slate) => {
      const inputs = slate.inputs.slice();
      for (let i = f; i < inputs.length; i += COMBINER_INPUTS.length) inputs[i] = 0;
      return { ...slate, inputs };
    });
    without.push({ input, spec: await fit(held, DEFAULT_COMBINER_FIT) });
  }
  const row = (name: string, combiner?: CombinerSpec) => {
    const profile = combiner === undefined ? hand : learned;
    const runnable = combiner === undefined ? undefined : runnableCombiner(combiner);
    return {
      name,
      scorer: servedScorer(model, facts, profile, runnable),
      coldUsers: servedScorer(model, facts, profile, runnable, true),
    };
  };
  return {
    combiner: additive,
    rows: [
      row('served: default profile, hand weights'),
      row('served: learned combiner (additive shapes)', additive),
      row('served: learned combiner (linear)', linear),
      ...without.map(({ input, spec }) => row(`served: learned combiner without ${input}`, spec)),
    ],
  };
}

/** The dataset README's learned-features reference row, when the README is there. */
function quotedReference(dataDir: string): EvalRow | undefined {
  const readme = path.join(dataDir, '..', '..', 'README.md');
  if (!existsSync(readme)) return undefined;
  const line = readFileSync(readme, 'utf8')
    .split('\n')
    .find((text) => text.startsWith('| learned features'));
  const cells = line?.split('|').map((cell) => cell.trim());
  const numbers = cells?.slice(2, 6).map(Number);
  if (numbers === undefined || numbers.length < 4 || numbers.some((n) => !Number.isFinite(n))) {
    return undefined;
  }
  const [auc, mrr, ndcg5, ndcg10] = numbers;
  const none = { auc: Number.NaN, mrr: Number.NaN, ndcg5: Number.NaN, ndcg10: Number.NaN };
  return {
    name: 'learned-features reference (quoted from the datasets README)',
    all: { auc, mrr, ndcg5, ndcg10 },
    cold: none,
    quoted: true,
  };
}
