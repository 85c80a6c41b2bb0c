import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import type {
  Attempt,
  BalancedLoadMessage,
  BalancedLoadOptions,
  GraphqlBody,
  RequestRecord,
} from './balanced-load';
import { watchGeneratorStalls } from './gc-pauses';
import { postBody } from './post-body';

/** How often ended requests are posted to the bench. */
const FLUSH_MS = 100;

/** The loop of bench/lib/balanced-load.ts, on its worker thread; `stop` from the bench ends it. */
function balancedLoad(options: BalancedLoadOptions, post: (message: BalancedLoadMessage) => void) {
  const stalls = watchGeneratorStalls();
  const agents = options.endpoints.map(() => new http.Agent({ keepAlive: true, maxSockets: 64 }));
  const alive = options.endpoints.map(() => true);
  /** Ended since the last flush. */
  let records: RequestRecord[] = [];
  const start = performance.now();
  const now = () => performance.now() - start;
  let next = 0;
  const pick = (except?: number): number | undefined => {
    for (let i = 0; i < options.endpoints.length; i++) {
      const candidate = (next + i) % options.endpoints.length;
      if (alive[candidate] && candidate !== except) {
        next = candidate + 1;
        return candidate;
      }
    }
    return undefined;
  };
  const send = (body: string, scheduledMs: number, endpoint: number, retriedFrom: Attempt | null) =>
    new Promise<void>((done) => {
      const target = new URL(options.endpoints[endpoint] ?? '');
      const sentMs = now();
      const finish = (fields: Pick<RequestRecord, 'ok' | 'modelVersion' | 'error'>) => {
        const doneMs = now();
        records.push({
          endpoint,
          scheduledMs,
          sentMs,
          doneMs,
          latencyMs: doneMs - scheduledMs,
          retriedFrom,
          ...fields,
        });
        done();
      };
      const request = postBody(
        agents[endpoint],
        target,
        options.headers,
        body,
        (status, text) => {
          const parsed = JSON.parse(text) as GraphqlBody<{
            rank: { modelVersion: string | null };
          }>;
          const ok = status === 200 && parsed.errors === undefined;
          finish({
            ok,
            modelVersion: parsed.data?.rank.modelVersion ?? null,
            error: ok
              ? null
              : `${String(status)} ${parsed.errors?.map((e) => e.extensions?.code ?? e.message).join(', ') ?? ''}`,
          });
        },
        (error) => {
          alive[endpoint] = false;
          finish({ ok: false, modelVersion: null, error: error.code ?? error.message });
        },
      );
      request.on('error', (error: NodeJS.ErrnoException) => {
        alive[endpoint] = false;
        const code = error.code ?? error.message;
        // Before any answer: refused, or a kept-alive connection the server had closed. Retried
        // once elsewhere, as HTTP clients do for an idempotent request (rank only reads).
        const retry =
          retriedFrom === null && (code === 'ECONNREFUSED' || request.reusedSocket)
            ? pick(endpoint)
            : undefined;
        if (retry !== undefined) {
          void send(body, scheduledMs, retry, { endpoint, sentMs, error: code }).then(done);
          return;
        }
        finish({ ok: false, modelVersion: null, error: code });
      });
    });
  const state = { stopped: false };
  const inFlight = new Set<Promise<void>>();
  const running = (async () => {
    const intervalMs = 1000 / options.rate;
    for (let sent = 0; !state.stopped;) {
      const due = Math.floor(now() / intervalMs) + 1;
      for (; sent < due; sent++) {
        const endpoint = pick();
        if (endpoint === undefined) throw new Error('no endpoint left');
        const pending = send(
          options.bodies[sent % options.bodies.length] ?? '',
          sent * intervalMs,
          endpoint,
          null,
        );
        inFlight.add(pending);
        void pending.then(() => inFlight.delete(pending));
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all([...inFlight]);
    for (const agent of agents) agent.destroy();
  })();
  post({ startedAtEpochMs: performance.timeOrigin + start });
  const flush = () => {
    if (records.length === 0) return;
    post({ records });
    records = [];
  };
  const flushing = setInterval(flush, FLUSH_MS);
  let stopping: Promise<void> | undefined;
  const finish = async () => {
    state.stopped = true;
    let error: string | null = null;
    try {
      await running;
    } catch (failure) {
      error = failure instanceof Error ? failure.message : String(failure);
    }
    clearInterval(flushing);
    flush();
    post({ stopped: stalls.stop(), error });
  };
  const stop = () => (stopping ??= finish());
  // A failed loop (no endpoint left) ends the load at once, as a stop would.
  running.catch(() => {
    void stop();
  });
  return stop;
}

const port = parentPort;
if (port === null)
  throw new Error('balanced-load.worker runs as a worker thread (bench/lib/balanced-load.ts)');
const stop = balancedLoad(workerData as BalancedLoadOptions, (message) => {
  port.postMessage(message);
});
port.on('message', () => {
  void stop();
});
