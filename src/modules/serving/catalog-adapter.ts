import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import type { ModelArtifact, WeightName } from '../training/model/artifact';
import { selectBackend } from '../training/model/backend';
import type { InterestScorer } from '../training/model/interest-scorer';
import type { TextVectors } from './served-model';

/** Rows per matrix product: bounds the temporary tensors (~4 × ROWS × dimension floats). */
const ROWS = 8192;

let backend: Promise<string> | undefined;

/**
 * The tfjs backend for catalog precompute: native TensorFlow when installed, else WebAssembly
 * (SIMD), about ten times faster than the scalar loop on this workload. Selected once per process.
 */
export function catalogBackend(): Promise<string> {
  backend ??= selectBackend('auto').then(async (choice) => {
    // The first product compiles kernels; pay that at boot rather than inside a model swap.
    tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dataSync());
    await tf.ready();
    return choice.name;
  });
  return backend;
}

function weight(artifact: ModelArtifact, name: WeightName): Float32Array {
  const tensor = artifact.weights[name];
  if (tensor === undefined) throw new Error(`model artifact lacks tensor ${name}`);
  return tensor.data;
}

/**
 * The item tower for a whole catalog in batched matrix products: the text vector, plus the
 * residual adapter `relu(X·W1 + b1)·W2 + b2`, plus the item's ID embedding when it has one. The
 * same function as `InterestScorer.itemVector` (pinned by a unit test), in float32.
 */
export async function adaptCatalog(
  artifact: ModelArtifact,
  scorer: InterestScorer,
  text: TextVectors,
): Promise<{ matrix: Float32Array; bias: Float32Array }> {
  const arch = artifact.manifest.architecture;
  const d = arch.dimension;
  const n = text.ids.length;
  const matrix = new Float32Array(n * d);
  const h = arch.adapterHidden;
  if (h > 0) {
    await catalogBackend();
    const w1 = tf.tensor2d(weight(artifact, 'adapter.w1'), [d, h]);
    const b1 = tf.tensor1d(weight(artifact, 'adapter.b1'));
    const w2 = tf.tensor2d(weight(artifact, 'adapter.w2'), [h, d]);
    const b2 = tf.tensor1d(weight(artifact, 'adapter.b2'));
    try {
      for (let start = 0; start < n; start += ROWS) {
        const rows = Math.min(ROWS, n - start);
        const block = tf.tidy(() => {
          const x = tf.tensor2d(text.matrix.subarray(start * d, (start + rows) * d), [rows, d]);
          const hidden = tf.relu(tf.add(tf.matMul(x, w1), b1));
          return tf.add(tf.add(x, tf.matMul(hidden, w2)), b2);
        });
        matrix.set(await block.data<'float32'>(), start * d);
        block.dispose();
        await yieldToEventLoop();
      }
    } finally {
      tf.dispose([w1, b1, w2, b2]);
    }
  } else {
    matrix.set(text.matrix.subarray(0, n * d));
  }
  if (arch.idEmbedding && artifact.manifest.warmItems.length > 0) {
    const table = weight(artifact, 'id.table');
    const warmRow = new Map(artifact.manifest.warmItems.map((id, row) => [id, row]));
    text.ids.forEach((id, row) => {
      const warm = warmRow.get(id);
      if (warm === undefined) return;
      for (let i = 0; i < d; i++) matrix[row * d + i] += table[warm * d + i] ?? 0;
    });
  }
  const bias = Float32Array.from(text.ids, (id) => scorer.itemBias(id));
  return { matrix, bias };
}
