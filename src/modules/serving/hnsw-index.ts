import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { abortReason, DomainError } from '../../common/errors';
import { startThread } from '../../common/thread';
import type { HnswBuildJob, HnswReply } from './hnsw.thread';
import type { IndexSource, VectorIndex, VectorIndexBuilder } from './retrieval';

export interface HnswSettings {
  /** Links per node. */
  readonly m: number;
  readonly efConstruction: number;
  /** Candidate list while searching; raised to the rows asked for when fewer. */
  readonly efSearch: number;
}

/**
 * Searches handed to the thread at once: it never waits for the next one, and the rest wait
 * here, where a search whose request was abandoned is withdrawn before it costs anything.
 */
const MAX_IN_FLIGHT = 2;
/** Searches waiting beyond which the index refuses more (RESOURCE_EXHAUSTED). */
const MAX_QUEUED = 256;

interface QueuedSearch {
  readonly query: Float32Array<ArrayBuffer>;
  readonly count: number;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (rows: Int32Array) => void;
  readonly reject: (error: Error) => void;
}

/**
 * HNSW (hnswlib, through hnswlib-node) over inner product, living on the worker thread that
 * built it (hnsw.thread.ts): searches run there, next to the serving thread. hnswlib's `ip`
 * distance is 1 - dot, so its nearest are the largest dot products; rows are its labels.
 */
class HnswVectorIndex implements VectorIndex {
  private readonly queued: QueuedSearch[] = [];
  private readonly inFlight = new Map<number, QueuedSearch>();
  private lastId = 0;
  /** Why the thread is gone (searches fail from then on). */
  private ended: Error | undefined;
  private closing = false;

  constructor(
    private readonly thread: Worker,
    readonly dimension: number,
    readonly size: number,
    readonly bytes: number,
    private readonly efSearch: number,
  ) {
    thread.on('message', (reply: HnswReply) => {
      this.answered(reply);
    });
    thread.on('error', (error) => {
      this.end(error);
    });
    thread.on('exit', (code) => {
      this.end(new Error(`the index thread exited with code ${code}`));
    });
    // Only pending searches keep the process alive.
    thread.unref();
  }

  search(query: Float32Array, count: number, signal?: AbortSignal): Promise<Int32Array> {
    const k = Math.min(count, this.size);
    if (k === 0) return Promise.resolve(new Int32Array(0));
    if (this.ended !== undefined) return Promise.reject(this.ended);
    if (this.closing) return Promise.reject(new Error('the index was closed'));
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    if (this.queued.length >= MAX_QUEUED) {
      return Promise.reject(
        new DomainError(
          'RESOURCE_EXHAUSTED',
          `${MAX_QUEUED} retrievals are already waiting for the index; retry shortly`,
          { queued: this.queued.length },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      // A copy: the caller's array may be a view of a larger (or shared) buffer.
      this.queued.push({ query: query.slice(), count: k, signal, resolve, reject });
      this.pump();
    });
  }

  /** Takes no new searches; the thread ends once those already taken are answered. */
  close(): void {
    this.closing = true;
    if (this.inFlight.size === 0 && this.queued.length === 0) void this.thread.terminate();
  }

  private pump(): void {
    while (this.inFlight.size < MAX_IN_FLIGHT && this.queued.length > 0) {
      const search = this.queued.shift();
      if (search === undefined) break;
      if (search.signal?.aborted === true) {
        search.reject(abortReason(search.signal));
        continue;
      }
      const id = ++this.lastId;
      this.inFlight.set(id, search);
      const { query, count } = search;
      this.thread.postMessage({ id, query, count, ef: Math.max(this.efSearch, count) }, [
        query.buffer,
      ]);
    }
    if (this.inFlight.size > 0) this.thread.ref();
    else this.thread.unref();
  }

  private answered(reply: HnswReply): void {
    if (reply.type === 'built' || reply.type === 'progress') return;
    const search = this.inFlight.get(reply.id);
    if (search === undefined) return;
    this.inFlight.delete(reply.id);
    if (reply.type === 'found') search.resolve(reply.rows);
    else search.reject(new Error(`index search failed: ${reply.message}`));
    this.pump();
    if (this.closing && this.inFlight.size === 0 && this.queued.length === 0) {
      void this.thread.terminate();
    }
  }

  private end(error: Error): void {
    this.ended ??= error;
    for (const search of [...this.inFlight.values(), ...this.queued]) search.reject(this.ended);
    this.inFlight.clear();
    this.queued.length = 0;
  }
}

/**
 * Builds on a worker thread of its own (hnsw.thread.ts), which reads the vectors where they are
 * (a SharedArrayBuffer), keeps the index and answers its searches.
 */
export function hnswIndexBuilder(settings: HnswSettings): VectorIndexBuilder {
  return async (source, signal, progress) => {
    signal.throwIfAborted();
    const stop = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    const thread = startThread(path.join(__dirname, 'hnsw.thread'), job(source, settings, stop));
    await built(thread, signal, stop, progress);
    const dimension = source.dimension + (source.extra === undefined ? 0 : 1);
    const { length: rows } = source.rows;
    return new HnswVectorIndex(
      thread,
      dimension,
      rows,
      hnswBytes(rows, dimension, settings.m),
      settings.efSearch,
    );
  };
}

/**
 * About what hnswlib holds: per element its vector, its level-0 links (2·M), their count and its
 * label; the upper levels add about 1/M of that in links.
 */
function hnswBytes(rows: number, dimension: number, m: number): number {
  return Math.round(rows * (4 * dimension + 4 * 2 * m + 4 + 8 + 4 * (1 + 1 / m)));
}

function job(
  source: IndexSource,
  settings: HnswSettings,
  stop: Int32Array<SharedArrayBuffer>,
): HnswBuildJob {
  const { matrix, dimension, rows, extra } = source;
  const { m, efConstruction } = settings;
  return { matrix, dimension, rows, extra, m, efConstruction, stop };
}

/** Settles when the thread has built its index; an abort asks the thread to stop and end. */
function built(
  thread: Worker,
  signal: AbortSignal,
  stop: Int32Array<SharedArrayBuffer>,
  progress: ((indexed: number) => void) | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: Error | undefined;
    const abort = () => {
      Atomics.store(stop, 0, 1);
    };
    const settle = (outcome: () => void) => {
      signal.removeEventListener('abort', abort);
      thread.off('message', onMessage);
      thread.off('error', onError);
      thread.off('exit', onExit);
      outcome();
    };
    const onMessage = (reply: HnswReply) => {
      if (reply.type === 'built') settle(resolve);
      else if (reply.type === 'progress') progress?.(reply.indexed);
    };
    const onError = (error: Error) => {
      failure = error;
    };
    const onExit = (code: number) => {
      settle(() => {
        if (signal.aborted) reject(abortReason(signal));
        else reject(failure ?? new Error(`the index build thread exited with code ${code}`));
      });
    };
    signal.addEventListener('abort', abort, { once: true });
    thread.on('message', onMessage);
    thread.on('error', onError);
    thread.on('exit', onExit);
  });
}
