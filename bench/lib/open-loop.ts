import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface OpenLoopResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly errors: number;
  /** The generator's own event-loop delay: a stalled sender inflates the latencies it measures. */
  readonly generatorDelayP99Ms: number;
  readonly generatorDelayMaxMs: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/**
 * POSTs at a constant rate, evenly spaced (an open loop, like real traffic): each latency counts
 * from the request's scheduled time, so queueing behind a stalled server is measured rather than
 * hidden. (autocannon's `overallRate` sends each second's quota in a burst at its start, which
 * measures the queue of that burst, not the latency at that rate.)
 */
export async function openLoop(options: {
  url: string;
  headers: Readonly<Record<string, string>>;
  bodies: readonly string[];
  rate: number;
  seconds: number;
}): Promise<OpenLoopResult> {
  const target = new URL(options.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const latencies: number[] = [];
  let errors = 0;
  const send = (body: string, scheduledAt: number) =>
    new Promise<void>((done) => {
      const request = http.request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          headers: { ...options.headers, 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            latencies.push(performance.now() - scheduledAt);
            const text = Buffer.concat(chunks).toString();
            if (response.statusCode !== 200 || text.includes('"errors"')) errors++;
            done();
          });
        },
      );
      request.on('error', () => {
        errors++;
        done();
      });
      request.end(body);
    });
  const total = Math.round(options.rate * options.seconds);
  const intervalMs = 1000 / options.rate;
  const inFlight: Promise<void>[] = [];
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const start = performance.now();
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
    for (; sent < due; sent++) {
      inFlight.push(
        send(options.bodies[sent % options.bodies.length] ?? '', start + sent * intervalMs),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(inFlight);
  lag.disable();
  const elapsedSeconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: total / elapsedSeconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    errors,
    generatorDelayP99Ms: lag.percentile(99) / 1e6,
    generatorDelayMaxMs: lag.max / 1e6,
  };
}
