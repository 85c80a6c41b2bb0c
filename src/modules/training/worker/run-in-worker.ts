import { fork } from 'node:child_process';
import path from 'node:path';
import { WorkerJob, WorkerMessage } from './worker-protocol';

type Final = Extract<WorkerMessage, { type: 'trained' | 'evaluated' }>;

/**
 * Runs a training or evaluation job in a child process, so the caller's event loop (the API, the
 * scheduler, health checks) stays responsive while tfjs computes, and tfjs's memory and native
 * state go away with the process. Aborting kills the child.
 */
export function runInWorker(
  job: WorkerJob,
  options: { signal?: AbortSignal; onMessage?: (message: WorkerMessage) => void } = {},
): Promise<Final> {
  const entry = path.join(__dirname, 'training.worker');
  // From TypeScript sources (ts-node, jest) the child registers ts-node; built code runs JS.
  const fromSource = __filename.endsWith('.ts');
  const worker = fork(fromSource ? `${entry}.ts` : `${entry}.js`, [], {
    execArgv: fromSource ? ['--require', 'ts-node/register'] : [],
    // Structured clone over IPC: typed arrays (vectors, artifacts) and NaN survive the trip.
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise<Final>((resolve, reject) => {
    let result: Final | undefined;
    let failure: Error | undefined;
    // Settles on the child's exit, so it is gone before the caller moves on; a result message
    // marks a clean exit.
    const onAbort = () => {
      failure ??= new Error('training aborted');
      worker.kill();
    };
    if (options.signal?.aborted === true) onAbort();
    options.signal?.addEventListener('abort', onAbort);
    worker.send(job);
    worker.on('message', (message: WorkerMessage) => {
      switch (message.type) {
        case 'trained':
        case 'evaluated':
          result = message;
          return;
        case 'error':
          failure ??= new Error(message.message);
          return;
        case 'backend':
        case 'encoding':
        case 'progress':
        case 'epoch':
          options.onMessage?.(message);
          return;
      }
    });
    worker.on('error', (error) => {
      failure ??= error;
    });
    // 'close', not 'exit': it comes after the last IPC message has been delivered.
    worker.on('close', (code) => {
      worker.removeAllListeners('message');
      options.signal?.removeEventListener('abort', onAbort);
      if (failure === undefined && result !== undefined) resolve(result);
      else
        reject(
          failure ??
            new Error(`training process exited with code ${String(code)} without a result`),
        );
    });
  });
}
