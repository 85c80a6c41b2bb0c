import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import path from 'node:path';
import type * as HF from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import * as ort from 'onnxruntime-node';
import { loadConfig } from '../src/config/config';
import { itemText } from '../src/modules/embedding/item-text';
import { MicroBatcher } from '../src/modules/embedding/micro-batcher';
import { TransformersTextEncoder } from '../src/modules/embedding/transformers-encoder';
import { cosine } from '../src/modules/embedding/vector-codec';
import { generateCatalog } from '../src/synthetic';
import { Benchmark, progress, integerFlag } from './lib/harness';

const BATCH_SIZES = [1, 8, 32, 64];
const CONCURRENT_CALLERS = 32;
const ROUNDS = 4;

interface Settings {
  readonly texts: number;
  readonly fp32Texts: number;
  readonly batcherTexts: number;
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 1);
  return {
    texts: value('texts', 2000),
    fp32Texts: value('fp32-texts', 500),
    batcherTexts: value('batcher-texts', 640),
  };
}

/** Bare reference: pre-tokenised ids, padded per batch, one session run, masked mean, L2 norm. */
async function bareEncode(
  session: ort.InferenceSession,
  batch: readonly (readonly number[])[],
): Promise<Float32Array[]> {
  const rows = batch.length;
  const width = Math.max(...batch.map((ids) => ids.length));
  const ids = new BigInt64Array(rows * width);
  const mask = new BigInt64Array(rows * width);
  batch.forEach((tokens, r) => {
    tokens.forEach((token, t) => {
      ids[r * width + t] = BigInt(token);
      mask[r * width + t] = 1n;
    });
  });
  const output = await session.run({
    input_ids: new ort.Tensor('int64', ids, [rows, width]),
    attention_mask: new ort.Tensor('int64', mask, [rows, width]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(rows * width), [rows, width]),
  });
  const hidden = output.last_hidden_state;
  const dim = hidden.dims[2];
  const data = hidden.data as Float32Array;
  return batch.map((tokens, r) => {
    const vector = new Float32Array(dim);
    for (let t = 0; t < tokens.length; t++) {
      const offset = (r * width + t) * dim;
      for (let d = 0; d < dim; d++) vector[d] += data[offset + d];
    }
    const norm = Math.hypot(...vector);
    return vector.map((value) => value / norm);
  });
}

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

const benchmark: Benchmark = {
  description:
    'all-MiniLM-L6-v2: service encoder (transformers.js) vs a bare onnxruntime-node session, fp32 and q8, batch 1/8/32/64; micro-batcher under 32 callers',
  async run(args) {
    const settings = parseSettings(args);
    const config = loadConfig(process.env);
    const modelDir = path.resolve(config.embedding.modelDir);
    const folder = path.join(modelDir, config.embedding.model);
    if (!existsSync(path.join(folder, 'onnx', 'model.onnx'))) {
      throw new Error(`${folder} is missing: run scripts/fetch-model.sh`);
    }
    const threads = config.embedding.threads;
    const catalog = generateCatalog({ items: settings.texts, seed: 'embedding-bench' });
    const texts = catalog.items.map((item) => itemText(item));

    // Tokenisation for the bare session, done beforehand and not timed.
    const T = createRequire(__filename)('@huggingface/transformers') as typeof HF;
    T.env.allowRemoteModels = false;
    T.env.localModelPath = `${modelDir}${path.sep}`;
    const tokenizer = await T.AutoTokenizer.from_pretrained(config.embedding.model);
    const tokenIds = (text: string) =>
      Array.from(
        (tokenizer(text, { truncation: true, max_length: 256 }) as { input_ids: HF.Tensor })
          .input_ids.data as BigInt64Array,
        Number,
      );
    const lengths = texts.map((text) => tokenIds(text).length);
    progress(
      `${texts.length} synthetic item texts, tokens/text mean ${(lengths.reduce((a, b) => a + b, 0) / lengths.length).toFixed(1)}, max ${Math.max(...lengths)}; ${threads} intra-op thread(s)`,
    );

    const rows: Record<string, string | number>[] = [];
    const figures: Record<string, unknown> = { threads, texts: texts.length };
    for (const quantized of [false, true]) {
      const precision = quantized ? 'q8' : 'fp32';
      const n = quantized ? settings.texts : Math.min(settings.fp32Texts, settings.texts);
      // The service sorts each call's texts by length before batching; the bare session gets the
      // very same batches (same order, same padding), so the ratio is pure overhead.
      const sample = texts.slice(0, n);
      const order = sample.map((_, i) => i).sort((a, b) => sample[a].length - sample[b].length);
      const sortedIds = order.map((i) => tokenIds(sample[i]));
      const session = await ort.InferenceSession.create(
        path.join(folder, 'onnx', quantized ? 'model_quantized.onnx' : 'model.onnx'),
        { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' },
      );
      for (const batchSize of BATCH_SIZES) {
        const encoder = await TransformersTextEncoder.create({
          model: config.embedding.model,
          modelDir,
          quantized,
          threads,
          batchSize,
        });
        // Warm-up, and a check that both paths compute the same vectors.
        const [serviceVector] = await encoder.encode([sample[order[0]]]);
        const [bareVector] = await bareEncode(session, [sortedIds[0]]);
        const agreement = cosine(serviceVector, bareVector);
        const load = loadavg()[0];
        // Alternating rounds, so competing load on the shared machine hits both paths alike.
        let serviceSeconds = 0;
        let bareSeconds = 0;
        const per = Math.ceil(n / ROUNDS);
        for (let round = 0; round < ROUNDS; round++) {
          const slice = order.slice(round * per, (round + 1) * per);
          const runService = async () => {
            serviceSeconds += await timed(async () => {
              await encoder.encode(slice.map((i) => sample[i]));
            });
          };
          const runBare = async () => {
            bareSeconds += await timed(async () => {
              const ids = sortedIds.slice(round * per, (round + 1) * per);
              for (let i = 0; i < ids.length; i += batchSize) {
                await bareEncode(session, ids.slice(i, i + batchSize));
              }
            });
          };
          if (round % 2 === 0) {
            await runService();
            await runBare();
          } else {
            await runBare();
            await runService();
          }
        }
        await encoder.dispose();
        const service = n / serviceSeconds;
        const bare = n / bareSeconds;
        rows.push({
          precision,
          batch: batchSize,
          texts: n,
          'service texts/s': Number(service.toFixed(1)),
          'bare ORT texts/s': Number(bare.toFixed(1)),
          'service/bare': `${((100 * service) / bare).toFixed(0)}%`,
          'cos(service,bare)': agreement.toFixed(6),
          load1: Number(load.toFixed(2)),
        });
        figures[`${precision}_b${batchSize}`] = {
          service: Number(service.toFixed(1)),
          bare: Number(bare.toFixed(1)),
          ratio: Number((service / bare).toFixed(3)),
        };
        progress(
          `${precision} batch ${batchSize}: service ${service.toFixed(1)}/s, bare ${bare.toFixed(1)}/s`,
        );
      }
      await session.release();

      // On-demand path: 32 callers, one text at a time each, through the micro-batcher.
      const encoder = await TransformersTextEncoder.create({
        model: config.embedding.model,
        modelDir,
        quantized,
        threads,
        batchSize: config.embedding.batchSize,
      });
      const runs: number[] = [];
      const batcher = new MicroBatcher(
        (batch) => {
          runs.push(batch.length);
          return encoder.encode(batch);
        },
        {
          maxBatch: config.embedding.onDemandMaxBatch,
          maxQueued: Number.MAX_SAFE_INTEGER,
          maxWaitMs: config.embedding.onDemandMaxWaitMs,
        },
      );
      const onDemand = texts.slice(
        0,
        quantized ? settings.batcherTexts : settings.batcherTexts / 2,
      );
      await encoder.encode(onDemand.slice(0, 1));
      let next = 0;
      const seconds = await timed(async () => {
        await Promise.all(
          Array.from({ length: CONCURRENT_CALLERS }, async () => {
            while (next < onDemand.length) await batcher.submit(onDemand[next++]);
          }),
        );
      });
      await encoder.dispose();
      const rate = onDemand.length / seconds;
      const meanBatch = runs.reduce((a, b) => a + b, 0) / runs.length;
      rows.push({
        precision,
        batch: `micro-batcher, ${CONCURRENT_CALLERS} callers`,
        texts: onDemand.length,
        'service texts/s': Number(rate.toFixed(1)),
        'bare ORT texts/s': '',
        'service/bare': '',
        'cos(service,bare)': `mean run ${meanBatch.toFixed(1)} texts`,
        load1: Number(loadavg()[0].toFixed(2)),
      });
      figures[`${precision}_microbatcher`] = {
        textsPerSecond: Number(rate.toFixed(1)),
        meanRun: Number(meanBatch.toFixed(1)),
        callers: CONCURRENT_CALLERS,
      };
      progress(
        `${precision} micro-batcher: ${rate.toFixed(1)}/s, mean run ${meanBatch.toFixed(1)}`,
      );
    }
    const ratios = Object.values(figures)
      .filter(
        (value): value is { ratio: number } =>
          typeof value === 'object' && value !== null && 'ratio' in value,
      )
      .map((value) => value.ratio);
    figures.minRatio = Math.min(...ratios);
    figures.target = 0.9;
    return {
      title: `Embedding throughput, ${threads} intra-op thread(s) (texts/s, higher is better)`,
      rows,
      figures,
      notes: [
        `Texts: synthetic catalog items through the item-text template; q8 rows use ${settings.texts} texts, fp32 rows ${Math.min(settings.fp32Texts, settings.texts)} (fp32 is ~3x slower; --texts / --fp32-texts change this).`,
        'Both paths run identical batches (texts sorted by length, then chunked); the bare session gets token ids tokenised beforehand and pools with hand-written code. Target: service >= 90% of bare.',
        'Micro-batcher: each of 32 callers submits one text at a time; EMBEDDING_ONDEMAND_MAX_BATCH / _MAX_WAIT_MS as configured.',
        'The machine is shared (2 cores); load1 shows competing load at the start of each row.',
      ],
    };
  },
};

export default benchmark;
