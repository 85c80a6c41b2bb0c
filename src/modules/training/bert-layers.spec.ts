/**
 * @jest-environment ./test/support/shared-realm-environment.ts
 */
// onnxruntime-node hands back typed arrays of the main realm (see that file).
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { TokenStates } from '../../common/token-states';
import {
  EncoderOnnx,
  readEncoderOnnx,
  topLayerWeights,
  withTopLayerWeights,
} from '../embedding/encoder-onnx';
import { EncoderStates } from '../embedding/encoder-states';
import { TransformersTextEncoder } from '../embedding/transformers-encoder';
import { nudgedLayers } from '../../../test/support/nudged-layers';
import { EncoderTopLayers, padTokenStates } from './model/bert-layers';

/**
 * Parity of the tfjs top layers with ONNX Runtime on the real model: the states ONNX Runtime
 * computes after layer 6 − k, through the tfjs copy of the top k layers, must give ONNX Runtime's
 * own last hidden state. Needs the model folder (`scripts/fetch-model.sh`, which CI runs); skipped
 * with a message only when it is absent.
 */
const MODEL_DIR = path.resolve(__dirname, '..', '..', '..', 'models');
const FOLDER = path.join(MODEL_DIR, 'all-MiniLM-L6-v2');
const present = existsSync(path.join(FOLDER, 'onnx', 'model.onnx'));
if (!present) {
  process.stderr.write(
    `SKIPPED encoder top-layer parity tests: ${FOLDER} is missing; run scripts/fetch-model.sh\n`,
  );
}
const describeModel = present ? describe : describe.skip;

/** Different lengths, so every batch has padding; punctuation and a word split into pieces. */
const TEXTS = [
  'A lightweight trail running shoe with a grippy outsole.',
  'Stainless steel chef knife, 20 cm blade, dishwasher safe!',
  'How do I reset my password?',
  'Noise-cancelling wireless headphones: 30 hours of battery life. Category: audio. Tags: bluetooth, travel',
  'mug',
];
const TOLERANCE = 1e-4;

type Backend = 'cpu' | 'wasm';
async function selectBackend(name: Backend): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} failed to initialise`);
  await tf.ready();
}

/** Largest absolute difference over each text's real tokens. */
function maxAbsDifference(
  hidden: number[][][],
  expected: readonly TokenStates[],
  d: number,
): number {
  let max = 0;
  expected.forEach((item, r) => {
    for (let t = 0; t < item.count; t++) {
      for (let i = 0; i < d; i++) {
        max = Math.max(max, Math.abs(hidden[r][t][i] - item.data[t * d + i]));
      }
    }
  });
  return max;
}

describeModel('encoder top layers (all-MiniLM-L6-v2)', () => {
  let onnx: EncoderOnnx;
  let states: EncoderStates;
  /** Hidden states after layers 4, 5 and 6 (the last hidden state), per text. */
  let byLayer: Map<number, TokenStates[]>;

  beforeAll(async () => {
    onnx = readEncoderOnnx(FOLDER);
    states = await EncoderStates.create(onnx, { layers: [4, 5, 6], threads: 1 });
    const encoded = await states.encode(TEXTS);
    byLayer = new Map(states.layers.map((layer, i) => [layer, encoded[i]]));
  });

  afterAll(async () => {
    await states.dispose();
    await selectBackend('cpu');
  });

  it('finds each layer’s weights by walking its nodes', () => {
    const [layer4, layer5] = topLayerWeights(onnx, 2);
    expect(layer4['intermediate.kernel'].shape).toEqual([384, 1536]);
    expect(layer5['output.kernel'].shape).toEqual([1536, 384]);
    // Biases keep their PyTorch names: the node walk must land on the same layer.
    const named = (name: string) => onnx.graph.initializers.get(name)?.floatValues();
    expect(layer5['query.bias'].data).toEqual(named('encoder.layer.5.attention.self.query.bias'));
    expect(layer4['outputNorm.gamma'].data).toEqual(
      named('encoder.layer.4.output.LayerNorm.weight'),
    );
    // The linear weights are anonymous transposed copies: distinct per layer and parameter.
    expect(layer4['query.kernel'].data).not.toEqual(layer5['query.kernel'].data);
    expect(layer5['query.kernel'].data).not.toEqual(layer5['key.kernel'].data);
  });

  it('rejects a k outside 0..6', () => {
    expect(() => topLayerWeights(onnx, 7)).toThrow(/outside 0\.\.6/);
    expect(topLayerWeights(onnx, 0)).toEqual([]);
  });

  it.each<[Backend, number]>([
    ['cpu', 1],
    ['cpu', 2],
    ['wasm', 1],
    ['wasm', 2],
  ])(
    'on %s, layers 6−k..5 (k=%i) in tfjs reproduce ONNX Runtime within 1e-4',
    async (backend, k) => {
      await selectBackend(backend);
      const top = EncoderTopLayers.fromWeights(onnx.shape, topLayerWeights(onnx, k), {
        trainable: false,
      });
      const input = byLayer.get(6 - k) ?? [];
      const { states: batch, mask } = padTokenStates(input, 384);
      const hidden = top.apply(batch, mask);
      const error = maxAbsDifference(hidden.arraySync(), byLayer.get(6) ?? [], 384);
      process.stderr.write(`parity ${backend} k=${k}: max abs ${error.toExponential(2)}\n`);
      expect(error).toBeLessThan(TOLERANCE);
      tf.dispose([hidden, batch, mask]);
      top.dispose();
    },
  );

  it.each([1, 2])(
    'a version’s own top %i layers written into the ONNX graph give what tfjs computes with them',
    async (k) => {
      await selectBackend('wasm');
      const nudged = nudgedLayers(topLayerWeights(onnx, k), k);
      const patched = await EncoderStates.create(withTopLayerWeights(onnx, nudged), {
        layers: [6],
        threads: 1,
      });
      const [onnxStates] = await patched.encode(TEXTS);
      await patched.dispose();
      const top = EncoderTopLayers.fromWeights(onnx.shape, nudged, { trainable: false });
      const { states: batch, mask } = padTokenStates(byLayer.get(6 - k) ?? [], 384);
      const hidden = top.apply(batch, mask);
      const error = maxAbsDifference(hidden.arraySync(), onnxStates, 384);
      const moved = maxAbsDifference(hidden.arraySync(), byLayer.get(6) ?? [], 384);
      process.stderr.write(`patched onnx k=${k}: max abs ${error.toExponential(2)}\n`);
      expect(error).toBeLessThan(TOLERANCE);
      // The nudge must show, or the test would pass on the pretrained graph.
      expect(moved).toBeGreaterThan(100 * TOLERANCE);
      tf.dispose([hidden, batch, mask]);
      top.dispose();
    },
  );

  it('pooled, gives the service encoder’s sentence vectors', async () => {
    await selectBackend('wasm');
    const encoder = await TransformersTextEncoder.create({
      model: 'all-MiniLM-L6-v2',
      modelDir: MODEL_DIR,
      quantized: false,
      threads: 1,
    });
    const expected = await encoder.encode(TEXTS);
    await encoder.dispose();
    const top = EncoderTopLayers.fromWeights(onnx.shape, topLayerWeights(onnx, 2));
    const { states: batch, mask } = padTokenStates(byLayer.get(4) ?? [], 384);
    const pooled = tf.tidy(() => EncoderTopLayers.pool(top.apply(batch, mask), mask).arraySync());
    pooled.forEach((vector, r) => {
      const error = Math.max(...vector.map((value, i) => Math.abs(value - expected[r][i])));
      expect(error).toBeLessThan(1e-5);
    });
    tf.dispose([batch, mask]);
    top.dispose();
  });

  it('trains: every parameter gets a gradient and a step moves the sentence vectors', async () => {
    await selectBackend('wasm');
    const top = EncoderTopLayers.fromWeights(onnx.shape, topLayerWeights(onnx, 1));
    const { states: batch, mask } = padTokenStates(byLayer.get(5) ?? [], 384);
    // Pull the first two texts' vectors together.
    const loss = (): tf.Scalar =>
      tf.tidy(() => {
        const vectors = EncoderTopLayers.pool(top.apply(batch, mask), mask);
        const similarity = vectors.slice([0, 0], [1, 384]).mul(vectors.slice([1, 0], [1, 384]));
        return tf.sub<tf.Scalar>(1, similarity.sum());
      });
    const before = (await loss().data())[0];
    const { value, grads } = tf.variableGrads(loss, top.variables);
    expect(Object.keys(grads)).toHaveLength(16);
    for (const grad of Object.values(grads)) {
      const norm = (await grad.norm().data())[0];
      expect(Number.isFinite(norm) && norm > 0).toBe(true);
    }
    tf.train.sgd(0.01).applyGradients(grads);
    const after = (await loss().data())[0];
    expect(after).toBeLessThan(before);
    tf.dispose([value, batch, mask, ...Object.values(grads)]);
    top.dispose();
  });
});
