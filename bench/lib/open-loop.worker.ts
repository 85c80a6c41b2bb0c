import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { watchGeneratorStalls } from './gc-pauses';
import type { OpenLoopLoad, OpenLoopResult, OpenLoopWindow } from './open-loop';
import { percentile } from './percentile';
import { postBody } from './post-body';

async function run(load: OpenLoopLoad, window: OpenLoopWindow): Promise<OpenLoopResult> {
  const target = new URL(load.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const latencies: number[] = [];
  let errors = 0;
  // A count, not the requests' promises: a window's thousands of promises, all reachable to its
  // end, were copied by every scavenge and then promoted, and so grew the old generation.
  let pending = 0;
  let drained: (() => void) | undefined;
  const ended = () => {
    pending--;
    if (pending === 0) drained?.();
  };
  const send = (body: string, scheduledAt: number) => {
    pending++;
    const request = postBody(agent, target, load.headers, body, (status, text) => {
      latencies.push(performance.now() - scheduledAt);
      if (status !== 200 || text.includes('"errors"')) errors++;
      ended();
    });
    request.on('error', () => {
      errors++;
      ended();
    });
  };
  const total = Math.round(window.rate * window.seconds);
  const intervalMs = 1000 / window.rate;
  const stalls = watchGeneratorStalls();
  const start = performance.now();
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
    for (; sent < due; sent++) {
      send(load.bodies[sent % load.bodies.length] ?? '', start + sent * intervalMs);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (pending > 0) {
    await new Promise<void>((resolve) => {
      drained = resolve;
    });
  }
  const generator = stalls.stop();
  const elapsedSeconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: total / elapsedSeconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    errors,
    generator,
  };
}

const port = parentPort;
if (port === null)
  throw new Error('open-loop.worker runs as a worker thread (bench/lib/open-loop.ts)');
const load = workerData as OpenLoopLoad;
port.on('message', (window: OpenLoopWindow) => {
  void run(load, window).then((result) => {
    port.postMessage(result);
  });
});
