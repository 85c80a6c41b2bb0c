import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

/** One way of doing a piece of work, as the request thread saw it. */
export interface ThreadBusy {
  readonly way: string;
  /** Time the request thread spent running (not waiting) during the work. */
  readonly busyS: number;
  readonly wallS: number;
  /** How late the thread's 1 ms timer ran meanwhile. */
  readonly delayP99Ms: number;
  readonly delayMaxMs: number;
}

/** Runs `work` and measures what it cost this (the request) thread. */
export async function measured(way: string, work: () => Promise<unknown>): Promise<ThreadBusy> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const before = performance.eventLoopUtilization();
  const started = performance.now();
  await work();
  const wallS = (performance.now() - started) / 1000;
  const used = performance.eventLoopUtilization(before);
  delay.disable();
  return {
    way,
    busyS: used.active / 1000,
    wallS,
    delayP99Ms: delay.percentile(99) / 1e6,
    delayMaxMs: delay.max / 1e6,
  };
}
