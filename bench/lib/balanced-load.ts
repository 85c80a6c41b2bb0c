import type { Worker } from 'node:worker_threads';
import { generatorWorker } from './built-servers';
import type { GeneratorStalls } from './gc-pauses';

/** A GraphQL answer as it arrives. */
export interface GraphqlBody<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export interface Attempt {
  readonly endpoint: number;
  readonly sentMs: number;
  readonly error: string;
}

/** One `rank` request as the client saw it; times in ms since the load started. */
export interface RequestRecord {
  readonly endpoint: number;
  readonly scheduledMs: number;
  /** When it went out on its (last) endpoint. */
  readonly sentMs: number;
  readonly doneMs: number;
  readonly latencyMs: number;
  readonly ok: boolean;
  readonly modelVersion: string | null;
  readonly error: string | null;
  /** The first attempt, when its connection failed before any answer and it went to another endpoint. */
  readonly retriedFrom: Attempt | null;
}

export interface BalancedLoadOptions {
  readonly endpoints: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly bodies: readonly string[];
  readonly rate: number;
}

/** What the worker posts: load time 0 (ms since the epoch), records as they end, the end. */
export type BalancedLoadMessage =
  | { readonly startedAtEpochMs: number }
  | { readonly records: readonly RequestRecord[] }
  | { readonly stopped: GeneratorStalls; readonly error: string | null };

/**
 * Open-loop `rank` load over the api endpoints, round-robin, through a client-side balancer that
 * drops an endpoint on a connection error (as a Service does once the endpoint is gone). A
 * request whose connection was refused never reached a server and goes to another endpoint; a
 * request that was sent and then lost its connection fails (nobody knows whether it was served).
 *
 * The sender runs on a worker thread with a heap of its own (as the ranking bench's open loop,
 * bench/lib/open-loop.ts): the bench's main thread produces events, polls training and collects
 * its own heap meanwhile, and a stall there would count as the servers' latency. `records` fills
 * as the worker reports them, every 100 ms.
 */
export class BalancedLoad {
  readonly records: RequestRecord[] = [];
  /** Settles when the worker has stopped: on `stop`, or early when the load failed. */
  private readonly ended: Promise<GeneratorStalls>;

  private constructor(
    private readonly worker: Worker,
    /** Load time 0 on the performance clock's epoch scale. */
    private readonly startedAtEpochMs: number,
  ) {
    this.ended = new Promise((resolve, reject) => {
      worker.on('error', reject);
      worker.on('message', (message: BalancedLoadMessage) => {
        if ('records' in message) this.records.push(...message.records);
        else if ('stopped' in message) {
          if (message.error === null) resolve(message.stopped);
          else reject(new Error(message.error));
        }
      });
    });
    // Read by `stop`; a failure before it is reported there, not as an unhandled rejection.
    this.ended.catch(() => undefined);
  }

  static start(options: BalancedLoadOptions): Promise<BalancedLoad> {
    const worker = generatorWorker('bench/lib/balanced-load.worker.ts', {
      workerData: options,
    });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (message: BalancedLoadMessage) => {
        worker.off('error', reject);
        if ('startedAtEpochMs' in message) {
          resolve(new BalancedLoad(worker, message.startedAtEpochMs));
        } else reject(new Error('the load worker did not report its start'));
      });
    });
  }

  /** Load time: ms since the load started. */
  now(): number {
    return performance.timeOrigin + performance.now() - this.startedAtEpochMs;
  }

  /** Wall-clock time (ms since epoch) of load time 0. */
  get wallStart(): number {
    return this.startedAtEpochMs;
  }

  /** Stops sending, waits for what is in flight, and returns the generator's own stalls. */
  async stop(): Promise<GeneratorStalls> {
    try {
      this.worker.postMessage('stop');
      return await this.ended;
    } finally {
      await this.worker.terminate();
    }
  }
}
