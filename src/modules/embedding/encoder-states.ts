import path from 'node:path';
import type * as HF from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import * as ort from 'onnxruntime-node';
import type { TokenStates } from '../../common/token-states';
import { EncoderOnnx, hiddenStateTensor } from './encoder-onnx';
import { withGraphOutputs } from './onnx-model';
import { loadTokenizer } from './transformers-encoder';

export interface EncoderStatesOptions {
  /** Hidden states wanted, by the number of encoder layers below them (0 … layers). */
  readonly layers: readonly number[];
  /** ONNX Runtime intra-op threads. */
  readonly threads: number;
  /** Token limit per text (default 256, as the service encoder). */
  readonly maxTokens?: number;
  /** Most texts per ONNX run (default 8); similar lengths share a run. */
  readonly batchSize?: number;
}

const DEFAULT_MAX_TOKENS = 256;
const DEFAULT_BATCH_SIZE = 8;

/**
 * Per-token hidden states after chosen encoder layers, from ONNX Runtime: the input of the top
 * layers trained in tfjs (training/model/bert-layers.ts). The session runs a copy of the fp32 graph cut
 * down to those intermediate tensors, made in memory (nothing is written): states after layer 4
 * cost about two thirds of the full encoder. Tokenisation is the service encoder's (transformers.js).
 */
export class EncoderStates {
  private constructor(
    readonly layers: readonly number[],
    readonly hidden: number,
    private readonly outputs: readonly string[],
    private readonly tokenizer: HF.PreTrainedTokenizer,
    private readonly session: ort.InferenceSession,
    private readonly maxTokens: number,
    private readonly batchSize: number,
  ) {}

  static async create(onnx: EncoderOnnx, options: EncoderStatesOptions): Promise<EncoderStates> {
    if (options.layers.length === 0) throw new Error('encoder states: no layer asked for');
    const outputs = options.layers.map((layer) => hiddenStateTensor(onnx, layer));
    const tokenizer = await loadTokenizer({
      model: path.basename(onnx.folder),
      modelDir: path.dirname(onnx.folder),
    });
    const side = (tokenizer as unknown as { padding_side?: unknown }).padding_side;
    // encode() cuts each text's rows out of the padded batch from the front.
    if (side !== 'right')
      throw new Error(`encoder states: tokenizer pads ${String(side)}, not right`);
    const session = await ort.InferenceSession.create(withGraphOutputs(onnx.bytes, outputs), {
      intraOpNumThreads: options.threads,
      interOpNumThreads: 1,
    });
    const tokenizerMax = Number(tokenizer.model_max_length as unknown);
    return new EncoderStates(
      [...options.layers],
      onnx.shape.hidden,
      outputs,
      tokenizer,
      session,
      Math.min(options.maxTokens ?? DEFAULT_MAX_TOKENS, tokenizerMax > 0 ? tokenizerMax : Infinity),
      Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE),
    );
  }

  /** For each requested layer (in `layers` order), each text's token states. */
  async encode(texts: readonly string[]): Promise<TokenStates[][]> {
    const out = this.layers.map(() => new Array<TokenStates>(texts.length));
    const order = texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length);
    for (let start = 0; start < order.length; start += this.batchSize) {
      const indices = order.slice(start, start + this.batchSize);
      const perLayer = await this.run(indices.map((i) => texts[i]));
      perLayer.forEach((states, l) => {
        indices.forEach((index, k) => (out[l][index] = states[k]));
      });
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }

  private async run(texts: string[]): Promise<TokenStates[][]> {
    const inputs = this.tokenizer(texts, {
      padding: true,
      truncation: true,
      max_length: this.maxTokens,
    }) as Record<'input_ids' | 'attention_mask' | 'token_type_ids', HF.Tensor>;
    const [rows, width] = inputs.input_ids.dims;
    const feed: Record<string, ort.Tensor> = {};
    for (const name of this.session.inputNames) {
      const tensor = inputs[name as keyof typeof inputs] as HF.Tensor | undefined;
      if (tensor === undefined) throw new Error(`encoder states: the tokenizer gives no ${name}`);
      feed[name] = new ort.Tensor('int64', BigInt64Array.from(tensor.data as BigInt64Array), [
        rows,
        width,
      ]);
    }
    const result = await this.session.run(feed);
    const mask = inputs.attention_mask.data as BigInt64Array;
    const tokens = Array.from({ length: rows }, (_, r) => {
      let count = 0;
      for (let t = 0; t < width; t++) if (mask[r * width + t] !== 0n) count++;
      return count;
    });
    const d = this.hidden;
    return this.outputs.map((name) => {
      const data = result[name].data as Float32Array;
      // Padding comes after the real tokens (right padding), so each text's rows are contiguous.
      return tokens.map((count, r) => ({
        count,
        data: data.slice(r * width * d, (r * width + count) * d),
      }));
    });
  }
}
