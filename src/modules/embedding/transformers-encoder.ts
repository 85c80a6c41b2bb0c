import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
// The package's .d.ts sits in a "type": "module" package, so this CommonJS build may only import
// its types; the code comes from its CommonJS build (exports.node.require) through require().
import type * as HF from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import type { TextEncoder, TokenEncoder } from './text-encoder';
import type { TokenStates } from '../../common/token-states';

export interface TransformersEncoderOptions {
  /** A folder name under `modelDir` (offline), or a Hugging Face hub id such as `Xenova/all-MiniLM-L6-v2`. */
  readonly model: string;
  /** Folder holding local models; also where hub downloads are cached. Default `models`. */
  readonly modelDir?: string;
  /** int8 `onnx/model_quantized.onnx` instead of fp32 `onnx/model.onnx`. */
  readonly quantized: boolean;
  /** ONNX Runtime intra-op threads. */
  readonly threads: number;
  /** Most texts per model run inside one `encode` call (default 8). */
  readonly batchSize?: number;
  /** Allow downloading `model` from the hub when no local folder has it (default false). */
  readonly allowRemote?: boolean;
  /** Token limit per text (default 256, the sentence-transformers max_seq_length of MiniLM). */
  readonly maxTokens?: number;
}

const DEFAULT_BATCH_SIZE = 8;
const DEFAULT_MAX_TOKENS = 256;

let library: typeof HF | undefined;
function transformers(): typeof HF {
  // Loaded on first use: the library and ONNX Runtime are heavy, and most importers never encode.
  library ??= createRequire(__filename)('@huggingface/transformers') as typeof HF;
  return library;
}

/** The id stored beside every vector: model and precision, e.g. `all-MiniLM-L6-v2:fp32`. */
export function encoderIdFor(
  options: Pick<TransformersEncoderOptions, 'model' | 'quantized'>,
): string {
  return `${options.model}:${options.quantized ? 'q8' : 'fp32'}`;
}

/** `env` is process-global in transformers.js: loads are serialised so each sees its own settings. */
let loading: Promise<unknown> = Promise.resolve();

/** Where `model` loads from: a complete local folder, else the hub (if allowed). */
export function resolveModelSource(
  options: Pick<TransformersEncoderOptions, 'model' | 'modelDir' | 'allowRemote'>,
): {
  readonly modelDir: string;
  readonly local: boolean;
} {
  const modelDir = path.resolve(options.modelDir ?? 'models');
  const local = existsSync(path.join(modelDir, options.model, 'config.json'));
  if (!local && options.allowRemote !== true) {
    throw new Error(
      `embedding model "${options.model}" not found in ${modelDir} and remote models are not allowed: ` +
        'run scripts/fetch-model.sh, or set EMBEDDING_ALLOW_REMOTE=true to download a hub id',
    );
  }
  return { modelDir, local };
}

/** Points transformers.js at `model`'s source; call only inside a serialised load. */
function useModelSource(
  options: Pick<TransformersEncoderOptions, 'model' | 'modelDir' | 'allowRemote'>,
): typeof HF {
  const { modelDir, local } = resolveModelSource(options);
  const T = transformers();
  T.env.allowLocalModels = true;
  T.env.localModelPath = `${modelDir}${path.sep}`;
  // Hub downloads land in the same folder layout, so the next start finds them locally.
  T.env.cacheDir = modelDir;
  T.env.allowRemoteModels = !local && options.allowRemote === true;
  return T;
}

/** The model's tokenizer alone, for code that runs the ONNX graph itself (encoder-states.ts). */
export async function loadTokenizer(
  options: Pick<TransformersEncoderOptions, 'model' | 'modelDir' | 'allowRemote'>,
): Promise<HF.PreTrainedTokenizer> {
  const load = loading.then(() =>
    useModelSource(options).AutoTokenizer.from_pretrained(options.model),
  );
  loading = load.catch(() => undefined);
  return load;
}

/**
 * Sentence encoder on transformers.js (ONNX Runtime): tokenise, run the BERT encoder, mean-pool the
 * last hidden state over the attention mask and L2-normalise: the sentence-transformers recipe of
 * all-MiniLM-L6-v2. Usable with or without Nest (`await TransformersTextEncoder.create(...)`).
 */
export class TransformersTextEncoder implements TextEncoder, TokenEncoder {
  private constructor(
    readonly modelId: string,
    readonly dimension: number,
    private readonly tokenizer: HF.PreTrainedTokenizer,
    private readonly model: HF.PreTrainedModel,
    private readonly batchSize: number,
    private readonly maxTokens: number,
  ) {}

  static async create(options: TransformersEncoderOptions): Promise<TransformersTextEncoder> {
    const load = loading.then(() => TransformersTextEncoder.load(options));
    loading = load.catch(() => undefined);
    return load;
  }

  private static async load(options: TransformersEncoderOptions): Promise<TransformersTextEncoder> {
    const T = useModelSource(options);
    const tokenizer = await T.AutoTokenizer.from_pretrained(options.model);
    const model = await T.AutoModel.from_pretrained(options.model, {
      dtype: options.quantized ? 'q8' : 'fp32',
      device: 'cpu',
      session_options: { intraOpNumThreads: options.threads, interOpNumThreads: 1 },
    });
    const hidden = (model.config as unknown as { hidden_size?: unknown }).hidden_size;
    if (typeof hidden !== 'number') throw new Error(`${options.model}: config has no hidden_size`);
    const tokenizerMax = Number(tokenizer.model_max_length as unknown);
    return new TransformersTextEncoder(
      encoderIdFor(options),
      hidden,
      tokenizer,
      model,
      Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE),
      Math.min(options.maxTokens ?? DEFAULT_MAX_TOKENS, tokenizerMax > 0 ? tokenizerMax : Infinity),
    );
  }

  async encode(texts: readonly string[]): Promise<Float32Array[]> {
    const T = transformers();
    const d = this.dimension;
    return this.batched(texts, async (batch) => {
      const { states, mask } = await this.run(batch, this.maxTokens);
      const data = T.mean_pooling(states, mask).normalize(2, -1).data as Float32Array;
      return batch.map((_, i) => data.slice(i * d, (i + 1) * d));
    });
  }

  async encodeTokens(texts: readonly string[], maxTokens: number): Promise<TokenStates[]> {
    const d = this.dimension;
    return this.batched(texts, async (batch) => {
      const { states, mask } = await this.run(batch, Math.min(maxTokens, this.maxTokens));
      const length = states.dims[1];
      const data = states.data as Float32Array;
      const flags = mask.data as BigInt64Array;
      return batch.map((_, i) => {
        // Right padding: the real tokens are the first `count` of the row.
        let count = 0;
        while (count < length && flags[i * length + count] !== 0n) count++;
        const start = i * length * d;
        return { count, data: data.slice(start, start + count * d) };
      });
    });
  }

  /** Runs `work` over runs of at most `batchSize` texts of similar length; results in `texts` order. */
  private async batched<R>(
    texts: readonly string[],
    work: (batch: string[]) => Promise<R[]>,
  ): Promise<R[]> {
    const out = new Array<R>(texts.length);
    // Similar lengths share a run, so little of each run is padding (character count stands in
    // for token count, which would cost a second tokenisation).
    const order = texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length);
    for (let start = 0; start < order.length; start += this.batchSize) {
      const indices = order.slice(start, start + this.batchSize);
      const results = await work(indices.map((i) => texts[i]));
      indices.forEach((index, k) => (out[index] = results[k]));
    }
    return out;
  }

  /** Releases the ONNX session. */
  async dispose(): Promise<void> {
    await this.model.dispose();
  }

  /** The last hidden state [texts x tokens x dimension] and its attention mask. */
  private async run(
    texts: string[],
    maxTokens: number,
  ): Promise<{ states: HF.Tensor; mask: HF.Tensor }> {
    const inputs = this.tokenizer(texts, {
      padding: true,
      truncation: true,
      max_length: maxTokens,
    }) as { attention_mask: HF.Tensor } & Record<string, HF.Tensor>;
    const output = (await this.model(inputs)) as { last_hidden_state: HF.Tensor };
    return { states: output.last_hidden_state, mask: inputs.attention_mask };
  }
}
