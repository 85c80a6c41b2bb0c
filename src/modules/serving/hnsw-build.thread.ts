import { parentPort, workerData } from 'node:worker_threads';
import { HierarchicalNSW } from 'hnswlib-node';

/** What the thread builds: the rows of a shared matrix, written to `file` when done. */
export interface HnswBuildJob {
  /** Row-major vectors, read in place (shared memory is not copied to a thread). */
  readonly matrix: Float32Array<SharedArrayBuffer>;
  readonly dimension: number;
  readonly rows: Int32Array;
  /** Per row of `rows`, one more value appended to its vector; absent: none. */
  readonly extra: Float32Array | undefined;
  readonly m: number;
  readonly efConstruction: number;
  readonly file: string;
}

/** The thread's one message: the index is in the file. */
export interface HnswBuildReply {
  readonly type: 'built';
}

/** hnswlib's fixed seed: the same vectors in the same order build the same graph. */
const SEED = 100;

/**
 * Builds an HNSW index (hnswlib, inner product) on this thread, so that the serving thread's
 * requests keep their CPU time, and writes it to a file that the serving thread reads back.
 */
function build(job: HnswBuildJob): void {
  const port = parentPort;
  if (port === null) throw new Error('hnsw-build.thread runs as a worker thread');
  const { matrix, dimension, rows, extra } = job;
  const hnsw = new HierarchicalNSW('ip', dimension + (extra === undefined ? 0 : 1));
  hnsw.initIndex(Math.max(1, rows.length), job.m, job.efConstruction, SEED);
  // hnswlib-node takes plain arrays: one reused per row.
  const point = new Array<number>(hnsw.getNumDimensions()).fill(0);
  for (let i = 0; i < rows.length; i++) {
    const offset = rows[i] * dimension;
    for (let j = 0; j < dimension; j++) point[j] = matrix[offset + j];
    if (extra !== undefined) point[dimension] = extra[i];
    hnsw.addPoint(point, rows[i]);
  }
  hnsw.writeIndexSync(job.file);
  port.postMessage({ type: 'built' } satisfies HnswBuildReply);
}

build(workerData as HnswBuildJob);
