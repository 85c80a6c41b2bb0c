import { setTimeout as sleep } from 'node:timers/promises';

export interface Polled<T> {
  readonly value: T;
  /** `Date.now()` when the accepted value was read. */
  readonly at: number;
  readonly elapsedMs: number;
}

/**
 * The one polling helper of the tests. Calls `probe` every `intervalMs` (default 100) until it
 * returns without throwing a value that `until` accepts (default: anything but `false`), and
 * returns it. On timeout it throws the probe's last error (an `expect` failure keeps its message)
 * or says what it waited for and the last value.
 */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  timeoutMs: number,
  options: { what?: string; until?: (value: T) => boolean; intervalMs?: number } = {},
): Promise<Polled<T>> {
  const { what = 'a condition', until = (value: T) => value !== false, intervalMs = 100 } = options;
  const started = Date.now();
  let lastError: unknown;
  let lastValue = 'none';
  for (;;) {
    try {
      const value = await probe();
      if (until(value)) {
        const at = Date.now();
        return { value, at, elapsedMs: at - started };
      }
      lastError = undefined;
      lastValue = describe(value);
    } catch (error) {
      lastError = error;
    }
    if (Date.now() - started > timeoutMs) {
      if (lastError instanceof Error) throw lastError;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${lastValue})`);
    }
    await sleep(intervalMs);
  }
}

/** A value for the timeout message; JSON where it has a JSON form. */
function describe(value: unknown): string {
  const json: unknown = JSON.stringify(value);
  return typeof json === 'string' ? json : String(value);
}
