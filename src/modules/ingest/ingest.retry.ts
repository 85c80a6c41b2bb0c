import { isDataRejection } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { BatchControl, ConsumerStopping } from './ingest-kafka.repository';

export interface RetryPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

const HEARTBEAT_SLICE_MS = 1000;

async function pause(ms: number, control: BatchControl): Promise<void> {
  let left = ms;
  while (left > 0) {
    if (!control.isRunning()) throw new ConsumerStopping();
    const slice = Math.min(left, HEARTBEAT_SLICE_MS);
    await new Promise((resolve) => setTimeout(resolve, slice));
    left -= slice;
    // Keeps the group membership (and so the partition) while the batch is held.
    await control.heartbeat();
  }
}

/**
 * Holds the batch and retries `work` with exponential backoff until it succeeds or the consumer
 * stops (then nothing is committed and the batch is redelivered later). Data the database refuses
 * is not retried (it would fail forever): that error goes to the caller, which isolates the rows.
 */
export async function retrying<T>(
  what: string,
  work: () => Promise<T>,
  control: BatchControl,
  policy: RetryPolicy,
  logger: Logger,
): Promise<T> {
  let delay = policy.initialMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await work();
      if (attempt > 1) logger.info({ what, attempts: attempt }, `${what} succeeded after retrying`);
      return result;
    } catch (error) {
      if (isDataRejection(error)) throw error;
      if (!control.isRunning()) throw new ConsumerStopping();
      if (attempt === 1 || attempt % 10 === 0) {
        logger.warn({ err: error, what, attempt, retryInMs: delay }, `${what} failed, retrying`);
      }
      await pause(delay, control);
      delay = Math.min(delay * 2, policy.maxMs);
    }
  }
}
