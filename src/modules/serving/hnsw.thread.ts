import { parentPort, workerData } from 'node:worker_threads';
import { HierarchicalNSW } from 'hnswlib-node';
import {
  adoptGraph,
  HNSW_SEED,
  pointValues,
  pointWriter,
  positionsOf,
  queryPoint,
  sampledRecall,
  spaceOf,
} from './hnsw-graph';
import type { GraphSource, PointFormat, RecallCheck } from './hnsw-graph';

/** The vectors an index covers: rows of a shared matrix. */
interface HnswSource extends GraphSource {
  /** Row-major vectors, read in place (shared memory is not copied to a thread). */
  readonly matrix: Float32Array<SharedArrayBuffer>;
  /** Set to 1 (Atomics) to stop a build or an open: the thread ends at the next point. */
  readonly stop: Int32Array<SharedArrayBuffer>;
  /** How a built or adopted index's recall is sampled. */
  readonly check: RecallCheck;
  /** How the index's points are laid out (a written index: as it was built). */
  readonly format: PointFormat;
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
 * `adopt`: the index is another version's, its points take the source's vectors (hnsw-graph.ts)
 * and its recall is sampled.
 */
export interface HnswOpenJob extends HnswSource {
  readonly kind: 'open';
  readonly file: string;
  readonly labelRows: Int32Array;
  readonly adopt: boolean;
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
  | {
      readonly type: 'ready';
      readonly size: number;
      readonly stale: Int32Array | undefined;
      /** Sampled for a built or adopted index (hnsw-graph.ts); undefined for an opened one. */
      readonly recall: number | undefined;
      /** For an adopted index: the mean angle (degrees) its items moved from the graph's vectors. */
      readonly drift: number | undefined;
    }
  | { readonly type: 'found'; readonly id: number; readonly rows: Int32Array }
  | { readonly type: 'written'; readonly id: number }
  | { readonly type: 'failed'; readonly id: number; readonly message: string };

/** Progress reports per build. */
const PROGRESS_STEPS = 20;
/**
 * How far a stored point may be from the row's vector and still count as the same: the item
 * tower's output for one text vector, computed on another replica (float rounding only).
 */
const SAME_VECTOR_TOLERANCE = 1e-4;

function stopped(source: HnswSource): boolean {
  return Atomics.load(source.stop, 0) !== 0;
}

/** Adds the source's rows one by one; false when stopped. */
function build(hnsw: HierarchicalNSW, job: HnswBuildJob, progress: (n: number) => void): boolean {
  const { rows } = job;
  hnsw.initIndex(Math.max(1, rows.length), job.m, job.efConstruction, HNSW_SEED);
  const writePoint = pointWriter(job, job.format);
  // hnswlib-node takes plain arrays: one reused per row.
  const point = new Array<number>(hnsw.getNumDimensions()).fill(0);
  const reportEvery = Math.max(1000, Math.ceil(rows.length / PROGRESS_STEPS));
  for (let i = 0; i < rows.length; i++) {
    // Stopped here, never by Worker.terminate: hnswlib-node reads each point's values through
    // N-API, and a termination that lands inside that read aborts the whole process.
    if (stopped(job)) return false;
    if (i > 0 && i % reportEvery === 0) progress(i);
    writePoint(point, 0, i);
    hnsw.addPoint(point, rows[i]);
  }
  return true;
}

/**
 * Reads a written index and checks each point against the source's row (or, adopting, gives
 * them the source's vectors first); returns whether a point holds each row's vector (undefined
 * when stopped).
 */
function open(
  hnsw: HierarchicalNSW,
  job: HnswOpenJob,
): { held: Uint8Array; drift: number | undefined } | undefined {
  const { matrix, dimension, rows, extra, labelRows } = job;
  if (job.adopt) {
    const adopted = adoptGraph(job.file, job.format, job, labelRows);
    hnsw.readIndexSync(job.file);
    return adopted;
  }
  hnsw.readIndexSync(job.file);
  const values = pointValues(job, job.format);
  const position = positionsOf(rows);
  const matched = new Uint8Array(rows.length);
  for (const label of hnsw.getIdsList()) {
    if (stopped(job)) return undefined;
    const row = label < labelRows.length ? labelRows[label] : -1;
    const at = row >= 0 && row < position.length ? position[row] : -1;
    if (
      at >= 0 &&
      sameVector(hnsw.getPoint(label), values, matrix, row * dimension, dimension, extra?.[at])
    ) {
      matched[at] = 1;
    } else {
      hnsw.markDelete(label);
    }
  }
  return { held: matched, drift: undefined };
}

/** Whether the stored point holds the row's vector and extra value (a norm slot follows them). */
function sameVector(
  point: readonly number[],
  values: number,
  matrix: Float32Array,
  offset: number,
  dimension: number,
  extra: number | undefined,
): boolean {
  if (point.length !== values) return false;
  const near = (a: number, b: number) =>
    Math.abs(a - b) <= SAME_VECTOR_TOLERANCE * (1 + Math.abs(b));
  for (let j = 0; j < dimension; j++) if (!near(point[j], matrix[offset + j])) return false;
  return extra === undefined || near(point[dimension], extra);
}

/**
 * Builds an HNSW index (hnswlib; its points in the job's format) on this thread, or opens a
 * written one, and then answers searches here, so the serving thread keeps its CPU time for
 * requests and the index lives in one copy only.
 */
function serve(job: HnswJob): void {
  const port = parentPort;
  if (port === null) throw new Error('hnsw.thread runs as a worker thread');
  const hnsw = new HierarchicalNSW(spaceOf(job.format), pointValues(job, job.format));
  let stale: Int32Array | undefined;
  let labelRows: Int32Array | undefined;
  let held: Uint8Array;
  let drift: number | undefined;
  if (job.kind === 'build') {
    const progress = (indexed: number) => {
      port.postMessage({ type: 'progress', indexed } satisfies HnswReply);
    };
    if (!build(hnsw, job, progress)) {
      port.close();
      return;
    }
    held = new Uint8Array(job.rows.length).fill(1);
  } else {
    const opened = open(hnsw, job);
    if (opened === undefined) {
      port.close();
      return;
    }
    ({ held, drift } = opened);
    stale = job.rows.filter((_, i) => held[i] === 0);
    labelRows = job.labelRows;
  }
  const rowsOfLabels = labelRows;
  let ef = 0;
  const search = (query: number[], count: number, searchEf: number): number[] => {
    if (searchEf !== ef) {
      hnsw.setEf(searchEf);
      ef = searchEf;
    }
    const { neighbors } = hnsw.searchKnn(queryPoint(query, job.format), count);
    return rowsOfLabels === undefined ? neighbors : neighbors.map((label) => rowsOfLabels[label]);
  };
  let recall: number | undefined;
  if (job.kind === 'build' || job.adopt) {
    const { check } = job;
    recall = sampledRecall(
      (query, count) => search(query, count, Math.max(check.ef, count)),
      job,
      held,
      check,
      () => stopped(job),
    );
    if (recall === undefined) {
      port.close();
      return;
    }
  }
  let size = 0;
  for (const one of held) size += one;
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
      // Nearest first (a deleted point is never found).
      const found = Int32Array.from(search(Array.from(request.query), request.count, request.ef));
      port.postMessage({ type: 'found', id, rows: found } satisfies HnswReply, [found.buffer]);
    } catch (error) {
      failed(error);
    }
  });
  port.postMessage({ type: 'ready', size, stale, recall, drift } satisfies HnswReply);
}

serve(workerData as HnswJob);
