import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

/** tfjs backends in order of preference; `auto` takes the first that loads. */
export const TRAIN_BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type TrainBackendName = (typeof TRAIN_BACKENDS)[number];
export type TrainBackendPreference = TrainBackendName | 'auto';

export interface BackendChoice {
  readonly name: TrainBackendName;
  /**
   * What it runs on, as recorded in the model version: `tensorflow-gpu (gpu)`, or
   * `tensorflow-gpu (cpu: no GPU visible)` when libtensorflow found no usable GPU and fell back.
   */
  readonly label: string;
  /** Why earlier candidates were skipped, for the log line. */
  readonly skipped: readonly string[];
}

const load = createRequire(__filename);

// The console banner recommending tfjs-node, and debug-mode checks, are off in production use.
tf.env().set('PROD', true);

async function tryBackend(name: TrainBackendName): Promise<void> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      // Both optional packages register the native backend as 'tensorflow' on import; neither
      // installs without downloading libtensorflow, so absence is the normal case.
      load(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
      if (!(await tf.setBackend('tensorflow'))) throw new Error('backend failed to initialise');
      return;
    }
    case 'wasm': {
      load('@tensorflow/tfjs-backend-wasm');
      if (!(await tf.setBackend('wasm'))) throw new Error('backend failed to initialise');
      return;
    }
    case 'cpu': {
      if (!(await tf.setBackend('cpu'))) throw new Error('backend failed to initialise');
      return;
    }
  }
}

/**
 * The backend and the device it really computes on. The native packages register the same
 * `tensorflow` backend, whose `isUsingGpuDevice` says whether libtensorflow found a GPU: the GPU
 * package loads, and silently runs on the CPU, on a machine without one.
 */
export function backendLabel(name: TrainBackendName, backend: object): string {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const gpu = (backend as { isUsingGpuDevice?: unknown }).isUsingGpuDevice === true;
      if (gpu) return `${name} (gpu)`;
      return name === 'tensorflow-gpu' ? `${name} (cpu: no GPU visible)` : `${name} (cpu)`;
    }
    case 'wasm':
    case 'cpu':
      return name;
  }
}

/**
 * Activates a tfjs backend: the forced one, or with `auto` the best that loads here (native GPU >
 * native CPU > WebAssembly > pure JavaScript). A forced backend that fails to load is an error.
 */
export async function selectBackend(preference: TrainBackendPreference): Promise<BackendChoice> {
  const candidates = preference === 'auto' ? TRAIN_BACKENDS : [preference];
  const skipped: string[] = [];
  for (const name of candidates) {
    try {
      await tryBackend(name);
      await tf.ready();
      return { name, label: backendLabel(name, tf.backend()), skipped };
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      if (preference !== 'auto') throw new Error(`TRAIN_BACKEND=${name} unavailable: ${reason}`);
      skipped.push(`${name}: ${reason}`);
    }
  }
  throw new Error(`no tfjs backend loaded (${skipped.join('; ')})`);
}
