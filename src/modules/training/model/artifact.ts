import { BERT_LAYER_PARAMS, BertLayerParam, BertLayerWeights } from '../../../common/bert-layer';
import { DEFAULT_ARCHITECTURE, ModelArchitecture } from './architecture';
import type { CombinerSpec } from './combiner';

/** One named weight tensor, row-major. */
export interface WeightTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type WeightName =
  | 'tokens.w'
  | 'tokens.b'
  | 'tokens.q'
  | 'adapter.w1'
  | 'adapter.b1'
  | 'adapter.w2'
  | 'adapter.b2'
  | 'id.table'
  | 'attention.v'
  | 'attention.b'
  | 'attention.q'
  | 'attention.position'
  | 'attention.age'
  | 'score.logScale'
  | 'score.popularity'
  | TopLayerWeightName;

/** A fine-tuned encoder layer's parameter: layer `i` of the model's top k, bottom first. */
export type TopLayerWeightName = `top.${number}.${BertLayerParam}`;

export function topLayerWeightName(layer: number, param: BertLayerParam): TopLayerWeightName {
  return `top.${layer}.${param}`;
}

export type ModelWeights = Readonly<Partial<Record<WeightName, WeightTensor>>>;

/** The model's own top encoder layers (architecture.encoderTopLayers of them), bottom first. */
export function artifactTopLayers(artifact: ModelArtifact): BertLayerWeights[] {
  return Array.from(
    { length: artifact.manifest.architecture.encoderTopLayers },
    (_, layer) =>
      Object.fromEntries(
        BERT_LAYER_PARAMS.map((param) => {
          const tensor = artifact.weights[topLayerWeightName(layer, param)];
          if (tensor === undefined) {
            throw new Error(`model artifact lacks tensor ${topLayerWeightName(layer, param)}`);
          }
          return [param, tensor];
        }),
      ) as BertLayerWeights,
  );
}

/** Everything serving needs besides the weights; JSON in the artifact. */
export interface ModelManifest {
  readonly format: typeof ARTIFACT_FORMAT;
  readonly formatVersion: 1;
  readonly architecture: ModelArchitecture;
  readonly encoderId: string;
  /** The tfjs backend that trained it (serving needs none). */
  readonly backend: string;
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  readonly metrics: Readonly<Record<string, number>>;
  /** Items with training clicks and their counts: the popularity feature and the warm set. */
  readonly itemClicks: Readonly<Record<string, number>>;
  /** Row order of `id.table`: the items that own a learned ID embedding. */
  readonly warmItems: readonly string[];
  readonly createdAt: string;
  /** The learned combiner fitted with this model (absent: hand-weighted profiles merge). */
  readonly combiner?: CombinerSpec;
  readonly tensors: readonly { name: WeightName; shape: number[]; offset: number }[];
}

export interface ModelArtifact {
  readonly manifest: ModelManifest;
  readonly weights: ModelWeights;
}

export const ARTIFACT_FORMAT = 'recsys-interest-model';
const MAGIC = 0x4d495352; // 'RSIM' little-endian

/**
 * One self-contained Buffer: magic, manifest length, manifest JSON (padded to 4 bytes), then every
 * tensor as little-endian float32 at the offsets the manifest lists. No training state.
 */
export function serializeModel(
  manifest: Omit<ModelManifest, 'tensors' | 'format' | 'formatVersion'>,
  weights: ModelWeights,
): Buffer {
  const tensors: { name: WeightName; shape: number[]; offset: number }[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(weights) as [WeightName, WeightTensor][]) {
    const size = tensor.shape.reduce((a, b) => a * b, 1);
    if (size !== tensor.data.length) {
      throw new Error(`${name}: shape ${tensor.shape.join('x')} but ${tensor.data.length} values`);
    }
    tensors.push({ name, shape: [...tensor.shape], offset });
    offset += size;
  }
  const full: ModelManifest = {
    ...manifest,
    format: ARTIFACT_FORMAT,
    formatVersion: 1,
    tensors,
  };
  const json = Buffer.from(JSON.stringify(full), 'utf8');
  const padded = Math.ceil(json.length / 4) * 4;
  const out = Buffer.alloc(8 + padded + offset * 4);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(json.length, 4);
  json.copy(out, 8);
  const base = 8 + padded;
  for (const entry of tensors) {
    const data = weights[entry.name]?.data ?? new Float32Array(0);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    // Float32Array is host-endian; every supported host is little-endian, checked on load.
    bytes.copy(out, base + entry.offset * 4);
  }
  return out;
}

const ENCODER_POOLING: Pick<
  ModelArchitecture,
  | 'tokenAttention'
  | 'tokenAttentionDim'
  | 'maxTokens'
  | 'encoderTopLayers'
  | 'encoderHeads'
  | 'encoderLayerNormEps'
> = {
  tokenAttention: false,
  tokenAttentionDim: DEFAULT_ARCHITECTURE.tokenAttentionDim,
  maxTokens: DEFAULT_ARCHITECTURE.maxTokens,
  encoderTopLayers: 0,
  encoderHeads: DEFAULT_ARCHITECTURE.encoderHeads,
  encoderLayerNormEps: DEFAULT_ARCHITECTURE.encoderLayerNormEps,
};

/** Parses an artifact; throws on anything that is not one (wrong magic, truncated, bad JSON). */
export function loadModel(buffer: Uint8Array): ModelArtifact {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error('model artifacts need a little-endian host');
  }
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (bytes.length < 8 || bytes.readUInt32LE(0) !== MAGIC) {
    throw new Error('not a model artifact (bad magic)');
  }
  const length = bytes.readUInt32LE(4);
  if (8 + length > bytes.length) throw new Error('model artifact truncated (manifest)');
  const parsed = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as {
    format?: unknown;
    formatVersion?: unknown;
  };
  if (parsed.format !== ARTIFACT_FORMAT || parsed.formatVersion !== 1) {
    throw new Error(`unsupported artifact format ${JSON.stringify(parsed.format)}`);
  }
  const stored = parsed as ModelManifest;
  // Artifacts written before the token options existed pool the frozen encoder's vector.
  const manifest: ModelManifest = {
    ...stored,
    architecture: { ...ENCODER_POOLING, ...stored.architecture },
  };
  const base = 8 + Math.ceil(length / 4) * 4;
  const weights: Partial<Record<WeightName, WeightTensor>> = {};
  for (const entry of manifest.tensors) {
    const size = entry.shape.reduce((a, b) => a * b, 1);
    const start = base + entry.offset * 4;
    if (start + size * 4 > bytes.length)
      throw new Error(`model artifact truncated (${entry.name})`);
    // Copy: the caller's buffer may be reused, and Float32Array needs 4-byte alignment.
    const data = new Float32Array(size);
    new Uint8Array(data.buffer).set(bytes.subarray(start, start + size * 4));
    weights[entry.name] = { shape: entry.shape, data };
  }
  return { manifest, weights };
}
