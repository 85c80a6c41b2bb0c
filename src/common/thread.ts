import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { basename } from 'node:path';
import { Worker } from 'node:worker_threads';

/** How much lower (nice) a background thread runs than its process. */
const BACKGROUND_NICE = 10;
const LOWEST_PRIORITY = 19;

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

/**
 * Lowers the calling thread's CPU priority below its process's, so that when this thread and the
 * request thread both want a core the request thread gets about nine tenths of it (Linux's
 * scheduler weights nice 0 against nice 10 about 9 to 1); the thread still takes every idle
 * moment. For threads whose work nobody waits on. Linux only (a thread's own id comes from
 * /proc/thread-self): false where it cannot, and the thread then runs as before.
 */
export function runInBackground(): boolean {
  try {
    const threadId = Number(basename(readlinkSync('/proc/thread-self')));
    setPriority(threadId, Math.min(LOWEST_PRIORITY, getPriority(threadId) + BACKGROUND_NICE));
    return true;
  } catch {
    return false;
  }
}
