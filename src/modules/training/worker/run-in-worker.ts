import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WorkerJob, WorkerMessage } from './worker-protocol';

type Final = Extract<WorkerMessage, { type: 'trained' | 'evaluated' }>;

/**
 * Runs a training or evaluation job on a worker thread, so the caller's event loop (the API, the
 * scheduler, health checks) stays responsive while tfjs computes. Aborting terminates the worker.
 */
export function runInWorker(
  job: WorkerJob,
  options: { signal?: AbortSignal; onMessage?: (message: WorkerMessage) => void } = {},
): Promise<Final> {
  const entry = path.join(__dirname, 'training.worker');
  // From TypeScript sources (ts-node, jest) the worker registers ts-node itself; built code runs JS.
  const worker = __filename.endsWith('.ts')
    ? new Worker(`require('ts-node/register'); require(${JSON.stringify(`${entry}.ts`)});`, {
        eval: true,
        workerData: job,
      })
    : new Worker(`${entry}.js`, { workerData: job });
  return new Promise<Final>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, value?: Final) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (error !== undefined) reject(error);
      else if (value !== undefined) resolve(value);
    };
    const onAbort = () => {
      finish(new Error('training aborted'));
    };
    if (options.signal?.aborted === true) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort);
    worker.on('message', (message: WorkerMessage) => {
      switch (message.type) {
        case 'trained':
        case 'evaluated':
          finish(undefined, message);
          return;
        case 'error':
          finish(new Error(message.message));
          return;
        case 'backend':
        case 'progress':
        case 'epoch':
          options.onMessage?.(message);
          return;
      }
    });
    worker.on('error', (error) => {
      finish(error);
    });
    worker.on('exit', (code) => {
      finish(new Error(`training worker exited with code ${code}`));
    });
  });
}
