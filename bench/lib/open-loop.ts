import type { Worker } from 'node:worker_threads';
import { generatorWorker } from './built-servers';
import type { GeneratorStalls } from './gc-pauses';

/** What an open loop sends: the same bodies, round-robin, to one GraphQL endpoint. */
export interface OpenLoopLoad {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly bodies: readonly string[];
}

export interface OpenLoopWindow {
  readonly rate: number;
  readonly seconds: number;
}

export interface OpenLoopResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly errors: number;
  /** The generator's own stalls: a stalled sender inflates the latencies it measures. */
  readonly generator: GeneratorStalls;
}

/**
 * POSTs at a constant rate, evenly spaced (an open loop, like real traffic): each latency counts
 * from the request's scheduled time, so queueing behind a stalled server is measured rather than
 * hidden. (autocannon's `overallRate` sends each second's quota in a burst at its start, which
 * measures the queue of that burst, not the latency at that rate.)
 *
 * The loop runs on a worker thread of its own (compiled JavaScript, a heap of its own): on the
 * bench's main thread the bench process's full collections (its ts-node, the seeding and
 * training it did, up to 39 ms each) stalled the sender and were counted as the server's latency.
 */
export class OpenLoop {
  private constructor(private readonly worker: Worker) {}

  static start(load: OpenLoopLoad): OpenLoop {
    return new OpenLoop(generatorWorker('bench/lib/open-loop.worker.ts', { workerData: load }));
  }

  run(window: OpenLoopWindow): Promise<OpenLoopResult> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => {
        this.worker.off('message', answered);
        reject(error);
      };
      const answered = (result: OpenLoopResult) => {
        this.worker.off('error', failed);
        resolve(result);
      };
      this.worker.once('message', answered);
      this.worker.once('error', failed);
      this.worker.postMessage(window);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
