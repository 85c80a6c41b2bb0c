import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { HierarchicalNSW } from 'hnswlib-node';
import { startThread } from '../../common/thread';
import type { HnswBuildJob, HnswBuildReply } from './hnsw-build.thread';
import type { IndexSource, VectorIndex, VectorIndexBuilder } from './retrieval';

export interface HnswSettings {
  /** Links per node. */
  readonly m: number;
  readonly efConstruction: number;
  /** Candidate list while searching; raised to the rows asked for when fewer. */
  readonly efSearch: number;
}

/**
 * HNSW (hnswlib, through hnswlib-node) over inner product. hnswlib's `ip` distance is
 * 1 - dot, so its nearest are the largest dot products; rows are its labels.
 */
class HnswVectorIndex implements VectorIndex {
  private ef = 0;

  constructor(
    private readonly hnsw: HierarchicalNSW,
    readonly size: number,
    readonly bytes: number,
    private readonly efSearch: number,
  ) {}

  get dimension(): number {
    return this.hnsw.getNumDimensions();
  }

  search(query: Float32Array, count: number): Int32Array {
    const k = Math.min(count, this.size);
    if (k === 0) return new Int32Array(0);
    const ef = Math.max(this.efSearch, k);
    if (ef !== this.ef) {
      this.hnsw.setEf(ef);
      this.ef = ef;
    }
    // Nearest first.
    return Int32Array.from(this.hnsw.searchKnn(Array.from(query), k).neighbors);
  }
}

let builds = 0;

/**
 * Builds on a worker thread of its own (hnsw-build.thread.ts), which reads the vectors where they
 * are (a SharedArrayBuffer) and writes the finished index to a temporary file; this thread reads
 * it back on libuv's pool (hnswlib-node has no other way to move an index between threads).
 */
export function hnswIndexBuilder(settings: HnswSettings): VectorIndexBuilder {
  return async (source, signal) => {
    const file = path.join(tmpdir(), `recsys-hnsw-${process.pid}-${threadId}-${++builds}.bin`);
    try {
      await buildOnThread(job(source, settings, file), signal);
      const hnsw = new HierarchicalNSW('ip', source.dimension + (source.extra ? 1 : 0));
      await hnsw.readIndex(file);
      signal.throwIfAborted();
      const { size } = await stat(file);
      return new HnswVectorIndex(hnsw, source.rows.length, size, settings.efSearch);
    } finally {
      await rm(file, { force: true });
    }
  };
}

function job(source: IndexSource, settings: HnswSettings, file: string): HnswBuildJob {
  const { matrix, dimension, rows, extra } = source;
  const { m, efConstruction } = settings;
  return { matrix, dimension, rows, extra, m, efConstruction, file };
}

/** Settles once the thread has ended, so its copy of the index is freed before this one loads. */
function buildOnThread(job: HnswBuildJob, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  const worker = startThread(path.join(__dirname, 'hnsw-build.thread'), job);
  const abort = () => void worker.terminate();
  signal.addEventListener('abort', abort, { once: true });
  return new Promise((resolve, reject) => {
    let built = false;
    let failure: Error | undefined;
    worker.once('message', (_reply: HnswBuildReply) => {
      built = true;
    });
    worker.once('error', (error) => {
      failure = error;
    });
    worker.once('exit', (code) => {
      signal.removeEventListener('abort', abort);
      if (built) resolve();
      else if (signal.aborted) reject(signal.reason as Error);
      else reject(failure ?? new Error(`the index build thread exited with code ${code}`));
    });
  });
}
