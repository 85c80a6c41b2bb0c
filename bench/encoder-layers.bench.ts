import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/config';
import {
  EncoderOnnx,
  readEncoderOnnx,
  topLayerWeights,
} from '../src/modules/embedding/encoder-onnx';
import type { TokenStates } from '../src/common/token-states';
import { EncoderStates } from '../src/modules/embedding/encoder-states';
import { EncoderTopLayers, padTokenStates } from '../src/modules/training/model/bert-layers';
import { decodeHalf, encodeHalf } from '../src/modules/embedding/token-codec';
import { itemText } from '../src/modules/embedding/item-text';
import { selectBackend } from '../src/modules/training/model/backend';
import { generateCatalog } from '../src/synthetic';
import { Benchmark, integerFlag, progress } from './lib/harness';

const ROUNDS = 4;
const BATCH = 32;
const STEP_TOKENS = 32;
const TOP_KS = [1, 2] as const;

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** Batches of `BATCH` texts of similar length (as the service batches), as padded tensors. */
function batchesOf(items: readonly TokenStates[]): { states: tf.Tensor3D; mask: tf.Tensor2D }[] {
  const order = items.map((_, i) => i).sort((a, b) => items[a].count - items[b].count);
  const batches = [];
  for (let start = 0; start < order.length; start += BATCH) {
    batches.push(
      padTokenStates(
        order.slice(start, start + BATCH).map((i) => items[i]),
        384,
      ),
    );
  }
  return batches;
}

/** Largest absolute difference over real tokens between tfjs output rows and ONNX states. */
async function maxAbsError(
  top: EncoderTopLayers,
  input: readonly TokenStates[],
  expected: readonly TokenStates[],
): Promise<{ hidden: number; pooled: number }> {
  const { states, mask } = padTokenStates(input, 384);
  const reference = padTokenStates(expected, 384);
  const [hidden, pooled] = tf.tidy(() => {
    const output = top.apply(states, mask);
    const hiddenError = output.sub(reference.states).abs().mul(mask.expandDims(2)).max();
    const pooledError = EncoderTopLayers.pool(output, mask)
      .sub(EncoderTopLayers.pool(reference.states, reference.mask))
      .abs()
      .max();
    return [hiddenError, pooledError];
  });
  const result = { hidden: (await hidden.data())[0], pooled: (await pooled.data())[0] };
  tf.dispose([states, mask, reference.states, reference.mask, hidden, pooled]);
  return result;
}

function roundTripFloat16(items: readonly TokenStates[]): TokenStates[] {
  return items.map((item) => ({ count: item.count, data: decodeHalf(encodeHalf(item.data)) }));
}

/** Milliseconds per item of ONNX Runtime computing the states after `layer`, in timed rounds. */
async function onnxStatesTimes(
  onnx: EncoderOnnx,
  texts: readonly string[],
  threads: number,
): Promise<Map<number, number>> {
  const layers = [6, ...TOP_KS.map((k) => 6 - k)];
  const sessions = await Promise.all(
    layers.map((layer) => EncoderStates.create(onnx, { layers: [layer], threads })),
  );
  for (const session of sessions) await session.encode(texts.slice(0, 8));
  const totals = layers.map(() => 0);
  const per = Math.ceil(texts.length / ROUNDS);
  // Alternating rounds, so competing load on the shared machine hits every session alike.
  for (let round = 0; round < ROUNDS; round++) {
    const slice = texts.slice(round * per, (round + 1) * per);
    for (const [i, session] of sessions.entries()) {
      totals[i] += await timed(async () => {
        await session.encode(slice);
      });
    }
  }
  await Promise.all(sessions.map((session) => session.dispose()));
  return new Map(layers.map((layer, i) => [layer, totals[i] / texts.length]));
}

const benchmark: Benchmark = {
  description:
    'encoder top layers (issue #19): ONNX Runtime states after layer 6−k vs the full encoder; tfjs ' +
    'forward of the top k layers (wasm, cpu); forward+backward of k=1,2 on 32 items × 32 tokens; ' +
    'cached-state bytes per item at fp32/fp16 and the fp16 parity error',
  async run(args) {
    const textCount = integerFlag(args, 'texts', 256, BATCH);
    const cpuTexts = integerFlag(args, 'cpu-texts', 64, 1);
    const config = loadConfig(process.env);
    const folder = path.join(path.resolve(config.embedding.modelDir), config.embedding.model);
    if (!existsSync(path.join(folder, 'onnx', 'model.onnx'))) {
      throw new Error(`${folder} is missing: run scripts/fetch-model.sh`);
    }
    const threads = config.embedding.threads;
    const onnx = readEncoderOnnx(folder);
    const catalog = generateCatalog({ items: textCount, seed: 'encoder-layers-bench' });
    const texts = catalog.items.map((item) => itemText(item));
    progress(
      `load average ${loadavg()
        .map((v) => v.toFixed(1))
        .join(' ')} before the run`,
    );

    progress('ONNX Runtime: states after layers 6, 5, 4');
    const onnxMs = await onnxStatesTimes(onnx, texts, threads);
    const fullMs = onnxMs.get(6) ?? Number.NaN;
    const all = await EncoderStates.create(onnx, { layers: [4, 5, 6], threads });
    const encoded = await all.encode(texts);
    await all.dispose();
    const byLayer = new Map(all.layers.map((layer, i) => [layer, encoded[i]]));
    const last = byLayer.get(6) ?? [];
    const tokens = last.map((item) => item.count);
    const meanTokens = tokens.reduce((a, b) => a + b, 0) / tokens.length;

    const rows: Record<string, string | number>[] = [
      {
        step: 'ONNX Runtime, full encoder (last hidden state; the reference)',
        'ms/item': fullMs,
        'vs full encoder': 1,
      },
      ...TOP_KS.map((k) => ({
        step: `ONNX Runtime, states after layer ${6 - k} (k=${k})`,
        'ms/item': onnxMs.get(6 - k) ?? Number.NaN,
        'vs full encoder': (onnxMs.get(6 - k) ?? Number.NaN) / fullMs,
      })),
    ];
    const figures: Record<string, unknown> = {
      threads,
      texts: texts.length,
      meanTokens,
      onnxMsPerItem: Object.fromEntries(onnxMs),
    };
    const parity: Record<string, string | number>[] = [];
    const training: Record<string, string | number>[] = [];

    for (const backend of ['wasm', 'cpu'] as const) {
      const choice = await selectBackend(backend);
      const sample = backend === 'cpu' ? Math.min(cpuTexts, texts.length) : texts.length;
      for (const k of TOP_KS) {
        progress(`${choice.label}: forward k=${k} over ${sample} items`);
        const top = EncoderTopLayers.fromWeights(onnx.shape, topLayerWeights(onnx, k), {
          trainable: false,
        });
        const input = (byLayer.get(6 - k) ?? []).slice(0, sample);
        const batches = batchesOf(input);
        const forward = async () => {
          for (const batch of batches) {
            const output = top.apply(batch.states, batch.mask);
            await output.data();
            output.dispose();
          }
        };
        await forward();
        const ms = (await timed(forward)) / sample;
        tf.dispose(batches.flatMap((batch) => [batch.states, batch.mask]));
        rows.push({
          step: `tfjs ${choice.label}, top ${k} layer(s) forward (batches of ${BATCH})`,
          'ms/item': ms,
          'vs full encoder': ms / fullMs,
        });
        figures[`forwardMsPerItem.${backend}.k${k}`] = ms;

        const fp32 = await maxAbsError(top, input, last.slice(0, sample));
        const fp16 = await maxAbsError(top, roundTripFloat16(input), last.slice(0, sample));
        parity.push({
          backend: choice.label,
          k,
          'fp32 states: max |Δ| hidden': fp32.hidden,
          'fp32: max |Δ| pooled': fp32.pooled,
          'fp16 states: max |Δ| hidden': fp16.hidden,
          'fp16: max |Δ| pooled': fp16.pooled,
        });
        figures[`parity.${backend}.k${k}`] = { fp32, fp16 };
        top.dispose();

        progress(
          `${choice.label}: forward+backward k=${k}, ${BATCH} items × ${STEP_TOKENS} tokens`,
        );
        const trainable = EncoderTopLayers.fromWeights(onnx.shape, topLayerWeights(onnx, k));
        const step = padTokenStates((byLayer.get(6 - k) ?? []).slice(0, BATCH), 384, STEP_TOKENS);
        const optimizer = tf.train.adam(1e-5);
        const target = tf.randomNormal([BATCH, 384]);
        const loss = (): tf.Scalar =>
          tf.tidy(() =>
            EncoderTopLayers.pool(trainable.apply(step.states, step.mask), step.mask)
              .mul(target)
              .sum<tf.Scalar>()
              .neg(),
          );
        const train = async () => {
          const value = optimizer.minimize(loss, true, trainable.variables);
          await value?.data();
          value?.dispose();
        };
        await train();
        const steps = backend === 'cpu' ? 1 : 3;
        const stepMs =
          (await timed(async () => {
            for (let s = 0; s < steps; s++) await train();
          })) / steps;
        training.push({
          backend: choice.label,
          k,
          'ms/step (32 × 32)': stepMs,
          'ms/item': stepMs / BATCH,
          'vs full encoder forward': stepMs / BATCH / fullMs,
        });
        figures[`trainStepMs.${backend}.k${k}`] = stepMs;
        tf.dispose([step.states, step.mask, target]);
        optimizer.dispose();
        trainable.dispose();
      }
    }

    const bytes = [
      { precision: 'fp32', 'bytes/token': 384 * 4 },
      { precision: 'fp16', 'bytes/token': 384 * 2 },
    ].map((row) => ({
      ...row,
      [`bytes/item (mean ${meanTokens.toFixed(1)} tokens)`]: Math.round(
        row['bytes/token'] * meanTokens,
      ),
      'bytes/item at 256 tokens': row['bytes/token'] * 256,
      'MiB per 100k items': (row['bytes/token'] * meanTokens * 100_000) / 2 ** 20,
    }));
    figures.cachedBytesPerItem = { fp32: 384 * 4 * meanTokens, fp16: 384 * 2 * meanTokens };
    return {
      title: `Encoder top layers: ${texts.length} synthetic item texts, ${threads} ONNX thread(s), mean ${meanTokens.toFixed(1)} tokens`,
      rows,
      tables: [
        { title: 'Forward + backward (Adam step), 32 items × 32 tokens', rows: training },
        {
          title: 'Parity with ONNX Runtime (tfjs top k on cached states of layer 6−k)',
          rows: parity,
        },
        { title: 'Cached states (one layer’s token states; the same for every k)', rows: bytes },
      ],
      figures,
      notes: [
        `load average after the run ${loadavg()
          .map((v) => v.toFixed(1))
          .join(' ')} (the machine is shared)`,
        'max |Δ| hidden: over every real token and dimension of the last hidden state; pooled: the L2-normalised sentence vector',
        `cpu rows use the first ${Math.min(cpuTexts, texts.length)} texts and one timed training step`,
      ],
    };
  },
};

export default benchmark;
