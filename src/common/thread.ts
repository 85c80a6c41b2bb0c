import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { basename } from 'node:path';
import { MessagePort, Transferable, Worker } from 'node:worker_threads';

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

/** A thread's answer to the call numbered `id`: its value, or why it failed. */
export type ThreadReply<T> =
  { readonly id: number; readonly value: T } | { readonly id: number; readonly failed: string };

/** On the thread: runs `work` for the call `id` and posts its ThreadReply. */
export async function answer<T>(
  port: MessagePort,
  id: number,
  work: () => Promise<T>,
): Promise<void> {
  try {
    port.postMessage({ id, value: await work() } satisfies ThreadReply<T>);
  } catch (error) {
    const failed = error instanceof Error ? error.message : String(error);
    port.postMessage({ id, failed } satisfies ThreadReply<T>);
  }
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * Calls to a worker thread that answers each with a ThreadReply: the thread is started on the
 * first call and again after it was lost (the calls pending then fail). `holdProcess`: whether a
 * call pending keeps the process alive; an idle thread never does. `endWhenIdleMs`: the thread
 * is ended once that long without a call pending (its heap and memory go with it), and started
 * again by the next call; absent, it runs until released.
 */
export class ThreadCalls<T> {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending<T>>();
  private nextId = 0;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: string,
    private readonly start: () => Worker,
    private readonly holdProcess: boolean,
    private readonly endWhenIdleMs?: number,
  ) {}

  /** Posts the message `request` makes of the call's number; settles with the thread's reply. */
  call(request: (id: number) => unknown, transfer: readonly Transferable[] = []): Promise<T> {
    clearTimeout(this.idle);
    const worker = (this.worker ??= this.started());
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.holdProcess) worker.ref();
      worker.postMessage(request(id), transfer);
    });
  }

  /** The thread, if started, let go of: ending it is the caller's; its pending calls fail then. */
  release(): Worker | undefined {
    const worker = this.worker;
    this.worker = undefined;
    return worker;
  }

  private endWhenIdle(worker: Worker): void {
    if (this.endWhenIdleMs === undefined) return;
    this.idle = setTimeout(() => {
      if (this.worker !== worker || this.pending.size > 0) return;
      this.worker = undefined;
      void worker.terminate();
    }, this.endWhenIdleMs);
    this.idle.unref();
  }

  private started(): Worker {
    const worker = this.start();
    worker.unref();
    worker.on('message', (reply: ThreadReply<T>) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) {
        worker.unref();
        this.endWhenIdle(worker);
      }
      if ('failed' in reply) waiting?.reject(new Error(reply.failed));
      else waiting?.resolve(reply.value);
    });
    const lost = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      lost(new Error(`the ${this.name} thread exited with code ${code}`));
    });
    return worker;
  }
}
