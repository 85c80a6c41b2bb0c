import * as tf from '@tensorflow/tfjs';
import {
  BERT_LAYER_PARAMS,
  BertLayerParam,
  BertLayerWeights,
  BertTensor,
} from '../../common/bert-layer';
import type { TokenStates } from '../../common/token-states';
import { Random } from '../../synthetic/prng';
import { Impression, vectorsFromMap } from './dataset/dataset';
import { DEFAULT_ARCHITECTURE, ModelArchitecture } from './model/architecture';
import { loadModel, topLayerWeightName } from './model/artifact';
import { InterestScorer, memoizedItemVectors } from './model/interest-scorer';
import { pooledTokenTexts } from './model/token-tower';
import { DEFAULT_HYPERPARAMETERS, trainInterestModel, TrainingHyperparameters } from './trainer';

const D = 16;
const ITEMS = 60;

/** Two taste groups: users click items of their group (even or odd ids) among mixed slates. */
function world(seed: string): { impressions: Impression[]; vectors: Map<string, Float32Array> } {
  const random = new Random(seed);
  const vectors = new Map<string, Float32Array>();
  for (let i = 0; i < ITEMS; i++) {
    const v = Float32Array.from({ length: D }, () => random.next() - 0.5);
    v[0] += i % 2 === 0 ? 0.4 : -0.4;
    vectors.set(`i${i}`, v);
  }
  const impressions: Impression[] = [];
  for (let n = 0; n < 300; n++) {
    const group = n % 2;
    const pick = (g: number) => `i${2 * Math.floor(random.next() * (ITEMS / 2)) + g}`;
    impressions.push({
      id: `r${n}`,
      userId: `u${n % 20}`,
      time: n * 1000,
      history: [0, 1, 2].map((k) => ({ itemId: pick(group), time: n * 1000 - (k + 1) * 60_000 })),
      clicked: [pick(group)],
      notClicked: [pick(1 - group), pick(1 - group), pick(1 - group)],
    });
  }
  return { impressions, vectors };
}

const arch: ModelArchitecture = {
  ...DEFAULT_ARCHITECTURE,
  dimension: D,
  adapterHidden: 8,
  attentionDim: 4,
  maxHistory: 5,
};
const hp: TrainingHyperparameters = {
  ...DEFAULT_HYPERPARAMETERS,
  epochs: 2,
  batchSize: 32,
  learningRate: 0.01,
  patience: 5,
};

/** Each item: its text vector's direction as one token among 1-3 noise tokens. */
function tokenStatesOf(vectors: ReadonlyMap<string, Float32Array>): Map<string, TokenStates> {
  const random = new Random('tokens');
  return new Map(
    [...vectors].map(([id, vector], i) => {
      const count = 2 + (i % 3);
      const data = Float32Array.from({ length: count * D }, () => random.next() - 0.5);
      data.set(vector, (i % count) * D);
      return [id, { count, data }] as const;
    }),
  );
}

/** A small random "pretrained" BERT layer: D hidden, 2 heads, 2·D intermediate. */
function bertLayer(seed: string): BertLayerWeights {
  const random = new Random(seed);
  const shapes: Record<string, number[]> = {
    kernel: [D, D],
    'intermediate.kernel': [D, 2 * D],
    'intermediate.bias': [2 * D],
    'output.kernel': [2 * D, D],
  };
  const layer: Partial<Record<BertLayerParam, BertTensor>> = {};
  for (const param of BERT_LAYER_PARAMS) {
    const shape = shapes[param] ?? (param.endsWith('kernel') ? shapes.kernel : [D]);
    const size = shape.reduce((a, b) => a * b, 1);
    const data = param.endsWith('gamma')
      ? new Float32Array(size).fill(1)
      : Float32Array.from({ length: size }, () => (random.next() - 0.5) * 0.3);
    layer[param] = { shape, data };
  }
  return layer as BertLayerWeights;
}

describe('trainInterestModel', () => {
  beforeAll(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
  });

  const { impressions, vectors } = world('w');
  const input = {
    train: impressions.slice(0, 250),
    validation: impressions.slice(250),
    vectors: vectorsFromMap('fake:16', D, vectors),
    architecture: arch,
    hyperparameters: hp,
    backend: 'cpu',
  };

  it('learns the taste groups, reports per-epoch loss and validation, and is reproducible', async () => {
    const epochs: number[] = [];
    const a = await trainInterestModel(input, { onEpoch: (r) => epochs.push(r.loss) });
    const b = await trainInterestModel(input);
    expect(epochs).toHaveLength(2);
    expect(epochs[1]).toBeLessThan(epochs[0]);
    expect(a.validation?.auc).toBeGreaterThan(0.8);
    const wa = loadModel(a.artifact).weights;
    const wb = loadModel(b.artifact).weights;
    expect(Array.from(wa['adapter.w2']?.data ?? [])).toEqual(
      Array.from(wb['adapter.w2']?.data ?? []),
    );
    const manifest = loadModel(a.artifact).manifest;
    expect(manifest.encoderId).toBe('fake:16');
    expect(manifest.metrics.auc).toBeCloseTo(a.validation?.auc ?? 0, 10);
    expect(manifest.warmItems.length).toBeGreaterThan(0);
  }, 60_000);

  it('trains the token-attention item tower from token states, and the artifact serves from them', async () => {
    const tokens = tokenStatesOf(vectors);
    const tokenInput = {
      ...input,
      vectors: { ...input.vectors, tokens: { get: (id: string) => tokens.get(id) } },
      architecture: { ...arch, tokenAttention: true, tokenAttentionDim: 4, maxTokens: 3 },
    };
    const outcome = await trainInterestModel(tokenInput);
    expect(outcome.validation?.auc).toBeGreaterThan(0.7);
    const artifact = loadModel(outcome.artifact);
    expect(artifact.manifest.architecture.tokenAttention).toBe(true);
    expect(artifact.weights['tokens.q']?.data.some((x) => x !== 0)).toBe(true);
    const scorer = InterestScorer.fromArtifact(artifact);
    expect(() => memoizedItemVectors(scorer, input.vectors)).toThrow(/token states/);
    const itemVector = memoizedItemVectors(scorer, tokenInput.vectors);
    expect(itemVector('i0')).toHaveLength(D);
    await expect(trainInterestModel({ ...tokenInput, vectors: input.vectors })).rejects.toThrow(
      /token states/,
    );
  }, 60_000);

  it('fine-tunes the top encoder layer with the towers, and warm-starts from its own copy', async () => {
    const tokens = tokenStatesOf(vectors);
    const pretrained = bertLayer('layer');
    const tokenInput = {
      ...input,
      vectors: { ...input.vectors, tokens: { get: (id: string) => tokens.get(id) } },
      architecture: {
        ...arch,
        tokenAttention: true,
        tokenAttentionDim: 4,
        maxTokens: 3,
        encoderTopLayers: 1,
        encoderHeads: 2,
      },
      hyperparameters: { ...hp, encoderLearningRate: 0.003 },
    };
    await expect(trainInterestModel(tokenInput)).rejects.toThrow(/0 pretrained given/);
    const outcome = await trainInterestModel({ ...tokenInput, encoderLayers: [pretrained] });
    expect(outcome.validation?.auc).toBeGreaterThan(0.7);
    const artifact = loadModel(outcome.artifact);
    const kernel = artifact.weights[topLayerWeightName(0, 'query.kernel')];
    expect(kernel?.shape).toEqual([D, D]);
    // Trained: the layer moved away from the pretrained weights.
    const moved = kernel?.data.some(
      (x, i) => Math.abs(x - pretrained['query.kernel'].data[i]) > 1e-4,
    );
    expect(moved).toBe(true);
    const scorer = InterestScorer.fromArtifact(artifact);
    expect(() => memoizedItemVectors(scorer, tokenInput.vectors)).toThrow(/pooledTokenTexts/);
    const pooled = await pooledTokenTexts(artifact, tokenInput.vectors.tokens, vectors.keys());
    expect(pooled.size).toBe(ITEMS);
    expect(Math.hypot(...(pooled.get('i0') ?? []))).toBeCloseTo(1, 5);
    const itemVector = memoizedItemVectors(scorer, { ...tokenInput.vectors, pooledTexts: pooled });
    expect(itemVector('i0')).toHaveLength(D);
    // The periodic run: warm-started from the version's own layers, no pretrained ones needed.
    const child = await trainInterestModel({
      ...tokenInput,
      parent: artifact,
      hyperparameters: {
        ...tokenInput.hyperparameters,
        epochs: 1,
        learningRate: 1e-9,
        encoderLearningRate: 1e-9,
      },
    });
    const childKernel = loadModel(child.artifact).weights[topLayerWeightName(0, 'query.kernel')];
    childKernel?.data.forEach((x, i) => {
      expect(x).toBeCloseTo(kernel?.data[i] ?? NaN, 4);
    });
  }, 120_000);

  it('warm-starts from a parent: its ID embedding rows carry over before any new step', async () => {
    const parent = await trainInterestModel(input);
    const parentArtifact = loadModel(parent.artifact);
    const child = await trainInterestModel({
      ...input,
      parent: parentArtifact,
      hyperparameters: { ...hp, epochs: 1, learningRate: 1e-9 },
    });
    const childArtifact = loadModel(child.artifact);
    const row = (artifact: typeof childArtifact, id: string) => {
      const index = artifact.manifest.warmItems.indexOf(id);
      return Array.from(
        artifact.weights['id.table']?.data.subarray(index * D, (index + 1) * D) ?? [],
      );
    };
    const id = parentArtifact.manifest.warmItems[0];
    const before = row(parentArtifact, id);
    const after = row(childArtifact, id);
    expect(before.some((x) => x !== 0)).toBe(true);
    after.forEach((x, i) => {
      expect(x).toBeCloseTo(before[i], 4);
    });
  }, 60_000);
});
