import { parentPort, workerData } from 'node:worker_threads';
import { HierarchicalNSW } from 'hnswlib-node';

/** The vectors an index covers: rows of a shared matrix. */
interface HnswSource {
  /** Row-major vectors, read in place (shared memory is not copied to a thread). */
  readonly matrix: Float32Array<SharedArrayBuffer>;
  readonly dimension: number;
  readonly rows: Int32Array;
  /** Per row of `rows`, one more value appended to its vector; absent: none. */
  readonly extra: Float32Array | undefined;
  /** Set to 1 (Atomics) to stop a build or an open: the thread ends at the next point. */
  readonly stop: Int32Array<SharedArrayBuffer>;
}

/** Build an index of the source's rows (labels: the rows). */
export interface HnswBuildJob extends HnswSource {
  readonly kind: 'build';
  readonly m: number;
  readonly efConstruction: number;
}

/**
 * Open an index written by `write` (on any replica): its label `l` is row `labelRows[l]` here
 * (-1: no such item). Points whose vector differs from the source's row, or whose row the source
 * lacks, are deleted from the index; the source's rows no point matches are reported stale.
 */
export interface HnswOpenJob extends HnswSource {
  readonly kind: 'open';
  readonly file: string;
  readonly labelRows: Int32Array;
}

export type HnswJob = HnswBuildJob | HnswOpenJob;

/** What the thread is asked once its index is ready. */
export type HnswRequest =
  | {
      readonly type: 'search';
      readonly id: number;
      readonly query: Float32Array;
      readonly count: number;
      readonly ef: number;
    }
  | { readonly type: 'write'; readonly id: number; readonly file: string };

/** The thread's messages: progress, the index is ready, then one answer per request. */
export type HnswReply =
  | { readonly type: 'progress'; readonly indexed: number }
  | { readonly type: 'ready'; readonly size: number; readonly stale: Int32Array | undefined }
  | { readonly type: 'found'; readonly id: number; readonly rows: Int32Array }
  | { readonly type: 'written'; readonly id: number }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };

/** hnswlib's fixed seed: the same vectors in the same order build the same graph. */
const SEED = 100;
/** Progress reports per build. */
const PROGRESS_STEPS = 20;
/**
 * How far a stored point may be from the row's vector and still count as the same: the item
 * tower's output for one text vector, computed on another replica (float rounding only).
 */
const SAME_VECTOR_TOLERANCE = 1e-4;

function dimensions(source: HnswSource): number {
  return source.dimension + (source.extra === undefined ? 0 : 1);
}

function stopped(source: HnswSource): boolean {
  return Atomics.load(source.stop, 0) !== 0;
}

/** Adds the source's rows one by one; false when stopped. */
function build(hnsw: HierarchicalNSW, job: HnswBuildJob, progress: (n: number) => void): boolean {
  const { matrix, dimension, rows, extra } = job;
  hnsw.initIndex(Math.max(1, rows.length), job.m, job.efConstruction, SEED);
  // hnswlib-node takes plain arrays: one reused per row.
  const point = new Array<number>(hnsw.getNumDimensions()).fill(0);
  const reportEvery = Math.max(1000, Math.ceil(rows.length / PROGRESS_STEPS));
  for (let i = 0; i < rows.length; i++) {
    // Stopped here, never by Worker.terminate: hnswlib-node reads each point's values through
    // N-API, and a termination that lands inside that read aborts the whole process.
    if (stopped(job)) return false;
    if (i > 0 && i % reportEvery === 0) progress(i);
    const offset = rows[i] * dimension;
    for (let j = 0; j < dimension; j++) point[j] = matrix[offset + j];
    if (extra !== undefined) point[dimension] = extra[i];
    hnsw.addPoint(point, rows[i]);
  }
  return true;
}

/**
 * Reads a written index and checks each point against the source's row; the source's rows
 * without a matching point come back as stale (undefined when stopped).
 */
function open(
  hnsw: HierarchicalNSW,
  job: HnswOpenJob,
): { stale: Int32Array; size: number } | undefined {
  const { matrix, dimension, rows, extra, labelRows } = job;
  hnsw.readIndexSync(job.file);
  let highest = -1;
  for (const row of rows) highest = Math.max(highest, row);
  const position = new Int32Array(highest + 1).fill(-1);
  rows.forEach((row, i) => {
    position[row] = i;
  });
  const matched = new Uint8Array(rows.length);
  for (const label of hnsw.getIdsList()) {
    if (stopped(job)) return undefined;
    const row = label < labelRows.length ? labelRows[label] : -1;
    const at = row >= 0 && row < position.length ? position[row] : -1;
    if (
      at >= 0 &&
      sameVector(hnsw.getPoint(label), matrix, row * dimension, dimension, extra?.[at])
    ) {
      matched[at] = 1;
    } else {
      hnsw.markDelete(label);
    }
  }
  let size = 0;
  for (const one of matched) size += one;
  return { stale: rows.filter((_, i) => matched[i] === 0), size };
}

function sameVector(
  point: readonly number[],
  matrix: Float32Array,
  offset: number,
  dimension: number,
  extra: number | undefined,
): boolean {
  if (point.length !== dimension + (extra === undefined ? 0 : 1)) return false;
  const near = (a: number, b: number) =>
    Math.abs(a - b) <= SAME_VECTOR_TOLERANCE * (1 + Math.abs(b));
  for (let j = 0; j < dimension; j++) if (!near(point[j], matrix[offset + j])) return false;
  return extra === undefined || near(point[dimension], extra);
}

/**
 * Builds an HNSW index (hnswlib, inner product) on this thread, or opens a written one, and then
 * answers searches here, so the serving thread keeps its CPU time for requests and the index lives
 * in one copy only.
 */
function serve(job: HnswJob): void {
  const port = parentPort;
  if (port === null) throw new Error('hnsw.thread runs as a worker thread');
  const hnsw = new HierarchicalNSW('ip', dimensions(job));
  let stale: Int32Array | undefined;
  let labelRows: Int32Array | undefined;
  let size = job.rows.length;
  if (job.kind === 'build') {
    const progress = (indexed: number) => {
      port.postMessage({ type: 'progress', indexed } satisfies HnswReply);
    };
    if (!build(hnsw, job, progress)) {
      port.close();
      return;
    }
  } else {
    const opened = open(hnsw, job);
    if (opened === undefined) {
      port.close();
      return;
    }
    ({ stale, size } = opened);
    labelRows = job.labelRows;
  }
  let ef = 0;
  port.on('message', (request: HnswRequest) => {
    const { id } = request;
    const failed = (error: unknown) => {
      port.postMessage({ type: 'failed', id, message: String(error) } satisfies HnswReply);
    };
    if (request.type === 'write') {
      // On a libuv thread: searches go on here meanwhile (both only read the index).
      hnsw.writeIndex(request.file).then(() => {
        port.postMessage({ type: 'written', id } satisfies HnswReply);
      }, failed);
      return;
    }
    try {
      if (request.ef !== ef) {
        hnsw.setEf(request.ef);
        ef = request.ef;
      }
      // Nearest first.
      const { neighbors } = hnsw.searchKnn(Array.from(request.query), request.count);
      const found =
        labelRows === undefined ? Int32Array.from(neighbors) : rowsOf(neighbors, labelRows);
      port.postMessage({ type: 'found', id, rows: found } satisfies HnswReply, [found.buffer]);
    } catch (error) {
      failed(error);
    }
  });
  port.postMessage({ type: 'ready', size, stale } satisfies HnswReply);
}

/** The rows of an opened index's labels (a deleted point is never found). */
function rowsOf(labels: readonly number[], labelRows: Int32Array): Int32Array<ArrayBuffer> {
  return Int32Array.from(labels, (label) => labelRows[label]);
}

serve(workerData as HnswJob);
