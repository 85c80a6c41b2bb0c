import { parentPort, workerData } from 'node:worker_threads';
import { HierarchicalNSW } from 'hnswlib-node';

/** What the thread builds: the rows of a shared matrix. */
export interface HnswBuildJob {
  /** Row-major vectors, read in place (shared memory is not copied to a thread). */
  readonly matrix: Float32Array<SharedArrayBuffer>;
  readonly dimension: number;
  readonly rows: Int32Array;
  /** Per row of `rows`, one more value appended to its vector; absent: none. */
  readonly extra: Float32Array | undefined;
  readonly m: number;
  readonly efConstruction: number;
  /** Set to 1 (Atomics) to stop a build: the thread ends after the point it is adding. */
  readonly stop: Int32Array<SharedArrayBuffer>;
}

/** A search asked of the thread once the index is built. */
export interface HnswSearch {
  readonly id: number;
  readonly query: Float32Array;
  readonly count: number;
  readonly ef: number;
}

/** The thread's messages: the index is built, then one answer per search. */
export type HnswReply =
  | { readonly type: 'progress'; readonly indexed: number }
  | { readonly type: 'built' }
  | { readonly type: 'found'; readonly id: number; readonly rows: Int32Array }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };

/** hnswlib's fixed seed: the same vectors in the same order build the same graph. */
const SEED = 100;
/** Progress reports per build. */
const PROGRESS_STEPS = 20;

/**
 * Builds an HNSW index (hnswlib, inner product) on this thread and then answers searches here,
 * so the serving thread keeps its CPU time for requests and the index lives in one copy only.
 */
function serve(job: HnswBuildJob): void {
  const port = parentPort;
  if (port === null) throw new Error('hnsw.thread runs as a worker thread');
  const { matrix, dimension, rows, extra, stop } = job;
  const hnsw = new HierarchicalNSW('ip', dimension + (extra === undefined ? 0 : 1));
  hnsw.initIndex(Math.max(1, rows.length), job.m, job.efConstruction, SEED);
  // hnswlib-node takes plain arrays: one reused per row.
  const point = new Array<number>(hnsw.getNumDimensions()).fill(0);
  const reportEvery = Math.max(1000, Math.ceil(rows.length / PROGRESS_STEPS));
  for (let i = 0; i < rows.length; i++) {
    // Stopped here, never by Worker.terminate: hnswlib-node reads each point's values through
    // N-API, and a termination that lands inside that read aborts the whole process.
    if (Atomics.load(stop, 0) !== 0) {
      port.close();
      return;
    }
    if (i > 0 && i % reportEvery === 0) {
      port.postMessage({ type: 'progress', indexed: i } satisfies HnswReply);
    }
    const offset = rows[i] * dimension;
    for (let j = 0; j < dimension; j++) point[j] = matrix[offset + j];
    if (extra !== undefined) point[dimension] = extra[i];
    hnsw.addPoint(point, rows[i]);
  }
  let ef = 0;
  port.on('message', ({ id, query, count, ef: wanted }: HnswSearch) => {
    try {
      if (wanted !== ef) {
        hnsw.setEf(wanted);
        ef = wanted;
      }
      // Nearest first.
      const found = Int32Array.from(hnsw.searchKnn(Array.from(query), count).neighbors);
      port.postMessage({ type: 'found', id, rows: found } satisfies HnswReply, [found.buffer]);
    } catch (error) {
      port.postMessage({ type: 'failed', id, message: String(error) } satisfies HnswReply);
    }
  });
  port.postMessage({ type: 'built' } satisfies HnswReply);
}

serve(workerData as HnswBuildJob);
