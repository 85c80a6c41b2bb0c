import * as tf from '@tensorflow/tfjs';
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { selectBackend, TrainBackendPreference } from '../training/model/backend';

/** The residual adapter's weights: `relu(X·W1 + b1)·W2 + b2`, W1 `d × hidden`. */
export interface AdapterWeights {
  readonly hidden: number;
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  readonly w2: Float32Array;
  readonly b2: Float32Array;
}

/** One catalog's item tower: `text` (rows × dimension) in, `out` written; both shared memory. */
export interface TowerPass {
  readonly dimension: number;
  readonly text: Float32Array<SharedArrayBuffer>;
  readonly out: Float32Array<SharedArrayBuffer>;
  /** None: the architecture has no adapter, the text vector passes through. */
  readonly adapter: AdapterWeights | undefined;
  /** The ID embedding table (`warm items × dimension`) and each row's entry in it (-1: none). */
  readonly idTable: Float32Array | undefined;
  readonly idRows: Int32Array;
  readonly backend: TrainBackendPreference;
}

/** Rows per matrix product: bounds the tensors held at once, not the thread's turns. */
const ROWS = 4096;

/** This thread's backend (tfjs keeps one per thread). */
let selected: { preference: TrainBackendPreference; name: Promise<string> } | undefined;

/** The tfjs backend the pass runs on, selected once per preference; kernels compiled at once. */
export function useBackend(preference: TrainBackendPreference): Promise<string> {
  if (selected?.preference !== preference) {
    const name = selectBackend(preference).then((choice) => {
      tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dataSync());
      return choice.name;
    });
    selected = { preference, name };
  }
  return selected.name;
}

/**
 * Copies a block's values into `out` at `offset`: on the wasm backend straight from its
 * WebAssembly memory, where `dataSync()` would allocate a new array per block.
 */
function copyBlock(block: tf.Tensor, out: Float32Array, offset: number): void {
  const backend = tf.backend();
  if (backend instanceof BackendWasm) out.set(backend.typedArrayFromHeap(block), offset);
  else out.set(block.dataSync(), offset);
}

/**
 * The item tower over a whole catalog, on the calling thread (the catalog pass's thread in
 * serving: catalog-adapter.ts): the text vector, plus the residual adapter in batched matrix
 * products, plus the row's ID embedding.
 */
export async function towerPass(pass: TowerPass): Promise<void> {
  const { dimension: d, text, out, adapter, idTable, idRows } = pass;
  const n = idRows.length;
  if (adapter === undefined) {
    out.set(text.subarray(0, n * d));
  } else {
    await useBackend(pass.backend);
    const weights = tf.tidy(() => ({
      w1: tf.tensor2d(adapter.w1, [d, adapter.hidden]),
      b1: tf.tensor1d(adapter.b1),
      w2: tf.tensor2d(adapter.w2, [adapter.hidden, d]),
      b2: tf.tensor1d(adapter.b2),
    }));
    try {
      for (let start = 0; start < n; start += ROWS) {
        const end = Math.min(n, start + ROWS);
        const block = tf.tidy(() => {
          const rows = tf.tensor2d(text.subarray(start * d, end * d), [end - start, d]);
          const hidden = tf.relu(tf.add(tf.matMul(rows, weights.w1), weights.b1));
          return tf.add(tf.add(rows, tf.matMul(hidden, weights.w2)), weights.b2);
        });
        copyBlock(block, out, start * d);
        block.dispose();
      }
    } finally {
      tf.dispose(Object.values(weights));
    }
  }
  if (idTable === undefined) return;
  for (let row = 0; row < n; row++) {
    const idRow = idRows[row];
    if (idRow < 0) continue;
    for (let i = 0; i < d; i++) out[row * d + i] += idTable[idRow * d + i];
  }
}
