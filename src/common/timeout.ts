import { DomainError } from './errors';
import type { Logger } from './logger';

/** Rejects with a TIMEOUT domain error when `work` takes longer than `ms`. */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new DomainError('TIMEOUT', `${what} timed out after ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for `work` at most `ms`, then goes on without it (it keeps running): for steps that must
 * not hold their caller on a dependency that answers nothing, such as a shutdown's. A timeout or a
 * failure is logged as a warning on `logger` when one is given.
 */
export async function waitAtMost(
  work: Promise<unknown>,
  ms: number,
  what: string,
  logger?: Logger,
): Promise<void> {
  await withTimeout(work, ms, what).catch((error: unknown) => {
    logger?.warn({ err: error }, `${what} did not finish; going on without it`);
  });
}
