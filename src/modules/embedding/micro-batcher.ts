import { abortReason, DomainError } from '../../common/errors';

export interface MicroBatcherOptions {
  /** Most distinct texts in one model run. */
  readonly maxBatch: number;
  /** How long the first text of a batch waits for company. */
  readonly maxWaitMs: number;
  /** Most distinct texts waiting for a run; more are refused (RESOURCE_EXHAUSTED). */
  readonly maxQueued: number;
}

interface Waiter<T> {
  resolve(encoded: T): void;
  reject(error: unknown): void;
}

/**
 * Coalesces concurrent single-text requests into one `encode` call: a batch closes when it holds
 * `maxBatch` distinct texts or its first text has waited `maxWaitMs`. One run at a time: requests
 * arriving during a run form the next batch, so batches grow with load. Identical texts in a batch
 * are encoded once (their waiters share the vector: treat it as read-only); a failed run rejects
 * every waiter of that batch. The queue is bounded, and a text whose callers all gave up (their
 * signal aborted: a timed-out request) leaves the queue before it costs a model run.
 */
export class MicroBatcher<T = Float32Array> {
  private pending = new Map<string, Waiter<T>[]>();
  private timer: NodeJS.Timeout | undefined;
  private deadlinePassed = false;
  private running = false;

  constructor(
    private readonly encode: (texts: readonly string[]) => Promise<T[]>,
    private readonly options: MicroBatcherOptions,
  ) {}

  submit(text: string, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortReason(signal));
        return;
      }
      let waiters = this.pending.get(text);
      if (waiters === undefined) {
        if (this.pending.size >= this.options.maxQueued) {
          reject(
            new DomainError(
              'RESOURCE_EXHAUSTED',
              `${this.options.maxQueued} texts are already waiting to be encoded; retry shortly`,
              { queued: this.pending.size },
            ),
          );
          return;
        }
        waiters = [];
        this.pending.set(text, waiters);
      }
      const waiter: Waiter<T> = { resolve, reject };
      waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          this.withdraw(text, waiter, abortReason(signal));
        },
        { once: true },
      );
      if (this.pending.size >= this.options.maxBatch) this.flush();
      else if (this.timer === undefined && !this.deadlinePassed) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.deadlinePassed = true;
          this.flush();
        }, this.options.maxWaitMs);
      }
    });
  }

  /** Texts waiting for a run. */
  get queued(): number {
    return this.pending.size;
  }

  /** A caller gave up: its waiter goes, and its text too when nobody else waits for it. */
  private withdraw(text: string, waiter: Waiter<T>, reason: Error): void {
    const waiters = this.pending.get(text);
    const index = waiters?.indexOf(waiter) ?? -1;
    if (waiters === undefined || index < 0) return;
    waiters.splice(index, 1);
    if (waiters.length === 0) this.pending.delete(text);
    waiter.reject(reason);
  }

  private flush(): void {
    if (this.running || this.pending.size === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.deadlinePassed = false;
    const batch = new Map<string, Waiter<T>[]>();
    for (const [text, waiters] of this.pending) {
      if (batch.size >= this.options.maxBatch) break;
      batch.set(text, waiters);
    }
    for (const text of batch.keys()) this.pending.delete(text);
    this.running = true;
    void this.run(batch).finally(() => {
      this.running = false;
      // Whatever queued during the run has already waited that long: it goes next.
      this.flush();
    });
  }

  private async run(batch: Map<string, Waiter<T>[]>): Promise<void> {
    const texts = [...batch.keys()];
    try {
      const vectors = await this.encode(texts);
      if (vectors.length !== texts.length) {
        throw new Error(`encoder returned ${vectors.length} vectors for ${texts.length} texts`);
      }
      texts.forEach((text, i) => {
        for (const waiter of batch.get(text) ?? []) waiter.resolve(vectors[i]);
      });
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    }
  }
}
