import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { ModelArtifact, WeightName } from '../training/model/artifact';
import { selectBackend } from '../training/model/backend';
import type { InterestScorer } from '../training/model/interest-scorer';
import type { TextVectors } from './served-model';

/**
 * Rows per matrix product, each followed by a turn of the event loop: a block takes the request
 * thread for about 10 ms on a slow core (8,192 rows held requests up for 200-400 ms per swap).
 */
const ROWS = 512;

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
 * Copies a block's values into `matrix` at `offset`: on the wasm backend straight from its
 * WebAssembly memory, where `data()` would allocate a new array per block outside the heap
 * (a third of the collections of a swap). No await between the view and the copy: memory that
 * grows meanwhile would detach the view.
 */
async function copyBlock(block: tf.Tensor, matrix: Float32Array, offset: number): Promise<void> {
  const backend = tf.backend();
  if (backend instanceof BackendWasm) {
    matrix.set(backend.typedArrayFromHeap(block), offset);
    return;
  }
  matrix.set(await block.data<'float32'>(), offset);
}

/** The residual adapter's weights as tensors; none when the architecture has no adapter. */
function adapterTensors(artifact: ModelArtifact) {
  const { dimension: d, adapterHidden: h } = artifact.manifest.architecture;
  if (h === 0) return undefined;
  return {
    w1: tf.tensor2d(weight(artifact, 'adapter.w1'), [d, h]),
    b1: tf.tensor1d(weight(artifact, 'adapter.b1')),
    w2: tf.tensor2d(weight(artifact, 'adapter.w2'), [h, d]),
    b2: tf.tensor1d(weight(artifact, 'adapter.b2')),
  };
}

/**
 * The item tower for a whole catalog in batched matrix products: the text vector, plus the
 * residual adapter `relu(X·W1 + b1)·W2 + b2`, plus the item's ID embedding when it has one. The
 * same function as `InterestScorer.itemVector` (pinned by a unit test), in float32. A block of
 * ROWS rows at a time, each with its rows' ID embeddings and biases, so that a replica loading a
 * version goes on answering between blocks.
 */
export async function adaptCatalog(
  artifact: ModelArtifact,
  scorer: InterestScorer,
  text: TextVectors,
): Promise<{ matrix: Float32Array; bias: Float32Array }> {
  const { manifest } = artifact;
  const d = manifest.architecture.dimension;
  const n = text.ids.length;
  // Shared: an index can be built from it on another thread without a copy (index-prebuild).
  const matrix = new Float32Array(new SharedArrayBuffer(n * d * 4));
  const bias = new Float32Array(n);
  const warm = manifest.architecture.idEmbedding && manifest.warmItems.length > 0;
  const idTable = warm ? weight(artifact, 'id.table') : undefined;
  const warmRow = new Map(warm ? manifest.warmItems.map((id, row) => [id, row]) : []);
  if (manifest.architecture.adapterHidden > 0) await catalogBackend();
  const adapter = adapterTensors(artifact);
  try {
    for (let start = 0; start < n; start += ROWS) {
      const end = Math.min(n, start + ROWS);
      const x = text.matrix.subarray(start * d, end * d);
      if (adapter === undefined) {
        matrix.set(x, start * d);
      } else {
        const { w1, b1, w2, b2 } = adapter;
        const block = tf.tidy(() => {
          const rows = tf.tensor2d(x, [end - start, d]);
          const hidden = tf.relu(tf.add(tf.matMul(rows, w1), b1));
          return tf.add(tf.add(rows, tf.matMul(hidden, w2)), b2);
        });
        await copyBlock(block, matrix, start * d);
        block.dispose();
      }
      for (let row = start; row < end; row++) {
        const itemId = text.ids[row];
        bias[row] = scorer.itemBias(itemId);
        const idRow = warmRow.get(itemId);
        if (idTable === undefined || idRow === undefined) continue;
        for (let i = 0; i < d; i++) matrix[row * d + i] += idTable[idRow * d + i];
      }
      await yieldToEventLoop();
    }
  } finally {
    if (adapter !== undefined) tf.dispose(Object.values(adapter));
  }
  return { matrix, bias };
}
