import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the module `entry` (an absolute path without its extension). From
 * TypeScript sources (ts-node, jest) the thread compiles with ts-node, without swc: swc's native
 * addon crashes when a second thread of a process loads it. Built code runs JS.
 */
export function startThread(entry: string, workerData: unknown): Worker {
  return __filename.endsWith('.ts')
    ? new Worker(
        `require('ts-node').register({ transpileOnly: true, swc: false });
         require(${JSON.stringify(`${entry}.ts`)});`,
        { eval: true, workerData },
      )
    : new Worker(`${entry}.js`, { workerData });
}
