import { BERT_LAYER_PARAMS, BertLayerParam, BertLayerWeights } from '../../../common/bert-layer';
import { Random } from '../../../synthetic/prng';
import { ModelArchitecture } from './architecture';
import {
  ModelArtifact,
  ModelWeights,
  topLayerWeightName,
  WeightName,
  WeightTensor,
} from './artifact';

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
 * training can only move away from that baseline where the clicks say so. Fine-tuned encoder
 * layers start as the pretrained ones (`encoderLayers`, the encoder's top k, bottom first).
 */
export function initialWeights(
  arch: ModelArchitecture,
  warmItems: number,
  seed: number | string,
  options: {
    readonly initialScale?: number;
    readonly encoderLayers?: readonly BertLayerWeights[];
  } = {},
): ModelWeights {
  const initialScale = options.initialScale ?? 10;
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
  if (arch.encoderTopLayers > 0) {
    const layers = options.encoderLayers ?? [];
    if (!arch.tokenAttention) throw new Error('encoderTopLayers > 0 needs tokenAttention');
    if (layers.length !== arch.encoderTopLayers) {
      throw new Error(
        `the architecture fine-tunes ${arch.encoderTopLayers} encoder layers; ${layers.length} pretrained given`,
      );
    }
    layers.forEach((layer, i) => {
      for (const param of BERT_LAYER_PARAMS) {
        const { shape, data } = layer[param];
        out[topLayerWeightName(i, param)] = tensor([...shape], Float32Array.from(data));
      }
    });
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
  encoderLayers?: readonly BertLayerWeights[],
): ModelWeights {
  // Without the pretrained layers, fine-tuned layers can only come from the parent.
  const layersFromParent = encoderLayers === undefined && arch.encoderTopLayers > 0;
  const fresh = initialWeights(
    layersFromParent ? { ...arch, encoderTopLayers: 0 } : arch,
    warmItems.length,
    seed,
    encoderLayers === undefined ? {} : { encoderLayers },
  );
  // `top.<i>` counts from the bottom of the fine-tuned stack: the same encoder layer sits at another
  // index in a parent that fine-tuned another number of layers.
  const shift = arch.encoderTopLayers - parent.manifest.architecture.encoderTopLayers;
  const parentName = (name: WeightName): WeightName => {
    const top = /^top\.(\d+)\.(.+)$/.exec(name);
    if (top === null || shift === 0) return name;
    return topLayerWeightName(Number(top[1]) - shift, top[2] as BertLayerParam);
  };
  const out: Partial<Record<WeightName, WeightTensor>> = {};
  for (const [name, value] of Object.entries(fresh) as [WeightName, WeightTensor][]) {
    const old = parent.weights[parentName(name)];
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
  if (layersFromParent) {
    for (let layer = 0; layer < arch.encoderTopLayers; layer++) {
      for (const param of BERT_LAYER_PARAMS) {
        const name = topLayerWeightName(layer, param);
        const old = parent.weights[parentName(name)];
        if (old === undefined) {
          throw new Error(
            `the parent fine-tunes ${String(arch.encoderTopLayers - shift)} encoder layers, not ${String(arch.encoderTopLayers)}: the pretrained layers are needed`,
          );
        }
        out[name] = { shape: [...old.shape], data: Float32Array.from(old.data) };
      }
    }
  }
  return out;
}
