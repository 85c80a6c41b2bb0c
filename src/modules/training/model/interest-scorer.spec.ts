import * as tf from '@tensorflow/tfjs';
import { Random } from '../../../synthetic/prng';
import { ageFeature, DEFAULT_ARCHITECTURE, ModelArchitecture } from './architecture';
import { loadModel, ModelWeights, serializeModel, WeightName, WeightTensor } from './artifact';
import { initialWeights } from './init-weights';
import { InterestScorer } from './interest-scorer';
import type { TokenStates } from '../../../common/token-states';
import { EncodedBatch, groupTokens, TfInterestModel } from './tf-model';

const D = 16;
const ITEMS = 12;

function randomWeights(arch: ModelArchitecture, warm: number, seed: string): ModelWeights {
  // Fresh weights have zero layers (identity adapter); perturb every tensor so each path counts.
  const random = new Random(seed);
  const base = initialWeights(arch, warm, seed);
  const out: Partial<Record<WeightName, WeightTensor>> = {};
  for (const [name, tensor] of Object.entries(base) as [WeightName, WeightTensor][]) {
    out[name] = {
      shape: tensor.shape,
      data: tensor.data.map((x) => x + (random.next() - 0.5) * 0.6),
    };
  }
  return out;
}

function textMatrix(seed: string): Float32Array {
  const random = new Random(seed);
  const m = new Float32Array(ITEMS * D);
  for (let r = 0; r < ITEMS; r++) {
    let norm = 0;
    for (let c = 0; c < D; c++) norm += (m[r * D + c] = random.next() - 0.5) ** 2;
    for (let c = 0; c < D; c++) m[r * D + c] /= Math.sqrt(norm);
  }
  return m;
}

const variants: [string, Partial<ModelArchitecture>][] = [
  ['default', {}],
  ['with popularity feature', { popularity: true }],
  ['no adapter', { adapterHidden: 0 }],
  ['no attention', { attention: false }],
  ['no recency', { recency: false }],
  ['no ID embedding', { idEmbedding: false }],
  ['token attention', { tokenAttention: true, tokenAttentionDim: 5, maxTokens: 20 }],
];

/**
 * Per item 1..26 token states, unnormalised like BERT's: some are truncated at maxTokens 20, and
 * lengths fall in more than one of the trainer's length groups.
 */
function tokenStates(seed: string): TokenStates[] {
  const random = new Random(seed);
  return Array.from({ length: ITEMS }, (_, i) => {
    const count = 1 + ((i * 7) % 26);
    return { count, data: Float32Array.from({ length: count * D }, () => random.next() * 4 - 2) };
  });
}

describe('InterestScorer matches the tfjs training graph', () => {
  beforeAll(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
  });

  it.each(variants)('%s: |tfjs - scorer| < 1e-4 after an artifact round trip', (_, change) => {
    const arch: ModelArchitecture = {
      ...DEFAULT_ARCHITECTURE,
      dimension: D,
      adapterHidden: 8,
      attentionDim: 6,
      maxHistory: 5,
      ...change,
    };
    const warmItems = ['i0', 'i2', 'i5', 'i7'];
    const itemIds = Array.from({ length: ITEMS }, (_, i) => `i${i}`);
    const clicks: Record<string, number> = { i0: 5, i2: 3, i5: 2, i7: 9, i9: 1 };
    const weights = randomWeights(arch, warmItems.length, 'parity');
    const text = textMatrix('text');
    const tokens = tokenStates('tokens');
    // Two users: one with 4 history clicks (ages known), one with none; 3 candidates each.
    const histories = [[3, 5, 0, 9], []];
    const ages = [[3_600_000, 86_400_000, Number.NaN, 7 * 86_400_000], []];
    const candidates = [
      [2, 7, 11],
      [5, 1, 0],
    ];
    const h = arch.maxHistory;
    const batch: EncodedBatch = {
      size: 2,
      historyLength: h,
      candidateCount: 3,
      uniqueItems: Int32Array.from(itemIds.map((_, i) => i)),
      warmRows: Int32Array.from(itemIds, (id) => warmItems.indexOf(id)),
      history: Int32Array.from(
        { length: 2 * h },
        (_, k) => histories[Math.floor(k / h)][k % h] ?? 0,
      ),
      historyMask: Float32Array.from({ length: 2 * h }, (_, k) =>
        (histories[Math.floor(k / h)][k % h] ?? -1) >= 0 ? 1 : 0,
      ),
      historyAge: Float32Array.from({ length: 2 * h }, (_, k) =>
        ageFeature(ages[Math.floor(k / h)][k % h] ?? Number.NaN),
      ),
      candidates: Int32Array.from(candidates.flat()),
      candidatePopularity: Float32Array.from(candidates.flat(), (i) =>
        Math.log1p(clicks[`i${i}`] ?? 0),
      ),
      ...(arch.tokenAttention ? { tokens: groupTokens(tokens, arch.maxTokens, D) } : {}),
    };
    const model = new TfInterestModel(arch, weights, text);
    const expected = tf.tidy(() => model.logits(batch).arraySync());
    model.dispose();

    const artifact = serializeModel(
      {
        architecture: arch,
        encoderId: 'fake:16',
        backend: 'cpu',
        hyperparameters: {},
        metrics: {},
        itemClicks: clicks,
        warmItems,
        createdAt: new Date(0).toISOString(),
      },
      weights,
    );
    const scorer = InterestScorer.fromArtifact(loadModel(artifact));
    const row = (i: number) =>
      arch.tokenAttention ? scorer.tokenPooledText(tokens[i]) : text.subarray(i * D, (i + 1) * D);
    histories.forEach((history, u) => {
      const user = scorer.userVector(
        history.map((i) => scorer.itemVector(row(i), `i${i}`)),
        ages[u],
      );
      candidates[u].forEach((i, c) => {
        const actual = scorer.score(user, scorer.itemVector(row(i), `i${i}`), `i${i}`);
        expect(Math.abs(actual - expected[u][c])).toBeLessThan(1e-4);
      });
    });
    // The check has teeth: the scores are not all equal.
    expect(new Set(expected.flat().map((x) => x.toFixed(3))).size).toBeGreaterThan(3);
  });

  it('an untrained model scores like the frozen encoder (scaled mean-pool dot product)', () => {
    const arch: ModelArchitecture = {
      ...DEFAULT_ARCHITECTURE,
      dimension: D,
      attention: false,
      adapterHidden: 8,
    };
    const artifact = serializeModel(
      {
        architecture: arch,
        encoderId: 'fake:16',
        backend: 'cpu',
        hyperparameters: {},
        metrics: {},
        itemClicks: {},
        warmItems: [],
        createdAt: new Date(0).toISOString(),
      },
      initialWeights(arch, 0, 1),
    );
    const scorer = InterestScorer.fromArtifact(artifact);
    const text = textMatrix('t2');
    const a = text.subarray(0, D);
    const b = text.subarray(D, 2 * D);
    const user = scorer.userVector([scorer.itemVector(a), scorer.itemVector(b)]);
    const c = text.subarray(2 * D, 3 * D);
    let dot = 0;
    for (let i = 0; i < D; i++) dot += ((a[i] + b[i]) / 2) * c[i];
    expect(scorer.score(user, scorer.itemVector(c))).toBeCloseTo(10 * dot, 5);
  });
});

describe('model artifact', () => {
  it('round-trips manifest and weights, and rejects foreign bytes', () => {
    const arch = { ...DEFAULT_ARCHITECTURE, dimension: 4, adapterHidden: 2, attentionDim: 2 };
    const weights = initialWeights(arch, 3, 7);
    const bytes = serializeModel(
      {
        architecture: arch,
        encoderId: 'e',
        backend: 'cpu',
        hyperparameters: { lr: 1 },
        metrics: { auc: 0.8 },
        itemClicks: { a: 2 },
        warmItems: ['a', 'b', 'c'],
        createdAt: 'now',
      },
      weights,
    );
    const loaded = loadModel(bytes);
    expect(loaded.manifest.metrics).toEqual({ auc: 0.8 });
    expect(loaded.manifest.warmItems).toEqual(['a', 'b', 'c']);
    for (const [name, tensor] of Object.entries(weights) as [WeightName, WeightTensor][]) {
      expect(Array.from(loaded.weights[name]?.data ?? [])).toEqual(Array.from(tensor.data));
    }
    expect(() => loadModel(Buffer.from('not a model'))).toThrow(/bad magic/);
    expect(() => loadModel(bytes.subarray(0, bytes.length - 4))).toThrow(/truncated/);
  });
});
