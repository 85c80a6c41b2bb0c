import { Random } from '../../../synthetic/prng';
import { ModelArchitecture } from './architecture';
import { ModelArtifact, ModelWeights, WeightName, WeightTensor } from './artifact';

function normal(random: Random, count: number, std: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    // Box-Muller: two normals per pair of uniforms.
    const u = Math.max(random.next(), 1e-12);
    const v = random.next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

const tensor = (shape: number[], data?: Float32Array): WeightTensor => ({
  shape,
  data: data ?? new Float32Array(shape.reduce((a, b) => a * b, 1)),
});

/**
 * Fresh, seeded weights. The adapter's output layer starts at zero and the ID embeddings at zero,
 * so an untrained model scores exactly like the frozen encoder (mean-pooled history, dot product):
 * training can only move away from that baseline where the clicks say so.
 */
export function initialWeights(
  arch: ModelArchitecture,
  warmItems: number,
  seed: number | string,
  initialScale = 10,
): ModelWeights {
  const random = new Random(`init:${String(seed)}`);
  const d = arch.dimension;
  const out: Partial<Record<WeightName, WeightTensor>> = {
    'score.logScale': tensor([1], Float32Array.of(Math.log(initialScale))),
  };
  if (arch.popularity) out['score.popularity'] = tensor([1]);
  if (arch.adapterHidden > 0) {
    const h = arch.adapterHidden;
    out['adapter.w1'] = tensor([d, h], normal(random, d * h, Math.sqrt(2 / d)));
    out['adapter.b1'] = tensor([h]);
    out['adapter.w2'] = tensor([h, d]);
    out['adapter.b2'] = tensor([d]);
  }
  if (arch.idEmbedding) out['id.table'] = tensor([warmItems, d]);
  if (arch.attention) {
    const a = arch.attentionDim;
    out['attention.v'] = tensor([d, a], normal(random, d * a, Math.sqrt(1 / d)));
    out['attention.b'] = tensor([a]);
    out['attention.q'] = tensor([a], normal(random, a, Math.sqrt(1 / a)));
    if (arch.recency) {
      out['attention.position'] = tensor([arch.maxHistory, a]);
      out['attention.age'] = tensor([a]);
    }
  }
  if (arch.tokenAttention) {
    // q = 0: equal weight on every token, i.e. the encoder's own mean pooling, to start from.
    const a = arch.tokenAttentionDim;
    out['tokens.w'] = tensor([d, a], normal(random, d * a, Math.sqrt(1 / d)));
    out['tokens.b'] = tensor([a]);
    out['tokens.q'] = tensor([a]);
  }
  return out;
}

/**
 * Warm start: the parent's weights where the architecture matches, its ID embedding rows for items
 * it knew, zero rows for newly warm items, fresh values for anything the parent lacks.
 */
export function warmStartWeights(
  parent: ModelArtifact,
  arch: ModelArchitecture,
  warmItems: readonly string[],
  seed: number | string,
): ModelWeights {
  const fresh = initialWeights(arch, warmItems.length, seed);
  const out: Partial<Record<WeightName, WeightTensor>> = {};
  for (const [name, value] of Object.entries(fresh) as [WeightName, WeightTensor][]) {
    const old = parent.weights[name];
    if (name === 'id.table') {
      const d = arch.dimension;
      const data = new Float32Array(warmItems.length * d);
      const oldRows = new Map(parent.manifest.warmItems.map((id, row) => [id, row]));
      if (old?.shape[1] === d) {
        warmItems.forEach((id, row) => {
          const from = oldRows.get(id);
          if (from !== undefined) data.set(old.data.subarray(from * d, (from + 1) * d), row * d);
        });
      }
      out[name] = { shape: value.shape, data };
    } else if (old?.shape.join('x') === value.shape.join('x')) {
      out[name] = { shape: value.shape, data: Float32Array.from(old.data) };
    } else {
      out[name] = value;
    }
  }
  return out;
}
