import {
  constants as perfConstants,
  monitorEventLoopDelay,
  PerformanceObserver,
} from 'node:perf_hooks';

/** A thread's garbage-collection pauses over a window (perf_hooks `gc` entries). */
export interface GcPauses {
  readonly scavenges: number;
  readonly scavengeMs: number;
  /** Mark-compact collections (major GC). */
  readonly fullGcs: number;
  readonly fullGcMs: number;
  /** Incremental marking steps and weak callbacks. */
  readonly otherMs: number;
  readonly longestMs: number;
}

/** Sums this thread's GC pauses; `take` returns them and starts a new window. */
export function recordGcPauses(): { take(): GcPauses; stop(): void } {
  const empty = (): GcPauses => ({
    scavenges: 0,
    scavengeMs: 0,
    fullGcs: 0,
    fullGcMs: 0,
    otherMs: 0,
    longestMs: 0,
  });
  let window = empty();
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // Node's gc entries carry their kind in `detail` (not in the PerformanceEntry type).
      const { kind } = (entry as unknown as { detail: { kind: number } }).detail;
      const ms = entry.duration;
      const scavenge = kind === perfConstants.NODE_PERFORMANCE_GC_MINOR;
      const full = kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR;
      window = {
        scavenges: window.scavenges + (scavenge ? 1 : 0),
        scavengeMs: window.scavengeMs + (scavenge ? ms : 0),
        fullGcs: window.fullGcs + (full ? 1 : 0),
        fullGcMs: window.fullGcMs + (full ? ms : 0),
        otherMs: window.otherMs + (scavenge || full ? 0 : ms),
        longestMs: Math.max(window.longestMs, ms),
      };
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    take() {
      const taken = window;
      window = empty();
      return taken;
    },
    stop() {
      observer.disconnect();
    },
  };
}

/** A load generator thread's own stalls over a window, which count in the latencies it measures. */
export interface GeneratorStalls {
  readonly delayP99Ms: number;
  readonly delayMaxMs: number;
  readonly gc: GcPauses;
}

/** Watches this thread's event-loop delay and collections until `stop`. */
export function watchGeneratorStalls(): { stop(): GeneratorStalls } {
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const gc = recordGcPauses();
  return {
    stop() {
      lag.disable();
      const stalls = {
        delayP99Ms: lag.percentile(99) / 1e6,
        delayMaxMs: lag.max / 1e6,
        gc: gc.take(),
      };
      gc.stop();
      return stalls;
    },
  };
}
