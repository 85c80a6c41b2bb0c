import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { abortReason, DomainError } from '../../common/errors';
import { startThread } from '../../common/thread';
import { POINT_FORMATS, pointValues } from './hnsw-graph';
import type { PointFormat, RecallCheck } from './hnsw-graph';
import type { HnswJob, HnswReply, HnswRequest } from './hnsw.thread';
import type { IndexSource, VectorIndex, VectorIndexBuilder, VectorIndexOpener } from './retrieval';

export interface HnswSettings {
  /** Links per node. */
  readonly m: number;
  readonly efConstruction: number;
  /** Candidate list while searching; raised to the rows asked for when fewer. */
  readonly efSearch: number;
  /** Rows `recommend` asks of the index per request (how the recall is sampled). */
  readonly annCandidates: number;
}

/** Sampled users per recall check: at a million items about 25 s of the index's thread. */
const RECALL_QUERIES = 64;
/** recall@20: `recommend`'s default page. */
const RECALL_AT = 20;
/**
 * The sampled recall of an inner-product graph below which a norm-augmented one is built too,
 * and the better kept (hnsw-graph.ts): 0.83 at 60,000 items of a trained model (the augmented
 * graph sampled 0.96 there), 0.95 and more at 300,000 and 1,000,000.
 */
export const SECOND_GRAPH_BELOW = 0.9;

/**
 * Whether a build may give a better graph than a stored one of `pointFormat` that sampled
 * `recall`: an inner-product graph under SECOND_GRAPH_BELOW (a build tries a norm-augmented one
 * too, as graphs stored before that rule never did).
 */
export function buildMayDoBetter(pointFormat: string, recall: number): boolean {
  return pointFormat === 'inner-product' && recall < SECOND_GRAPH_BELOW;
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

interface PendingWrite {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * HNSW (hnswlib, through hnswlib-node) by inner product, living on the worker thread that built
 * it (hnsw.thread.ts): searches run there, next to the serving thread. Its points' format decides
 * the distance (hnsw-graph.ts); either way its nearest are the largest dot products; rows are its
 * labels.
 */
class HnswVectorIndex implements VectorIndex {
  private readonly queued: QueuedSearch[] = [];
  private readonly inFlight = new Map<number, QueuedSearch>();
  private readonly writes = new Map<number, PendingWrite>();
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
    readonly stale: Int32Array | undefined,
    readonly recall: number | undefined,
    readonly drift: number | undefined,
    readonly pointFormat: PointFormat,
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

  /** Writes the index to `file` on the index's thread (searches go on meanwhile). */
  write(file: string): Promise<void> {
    if (this.ended !== undefined) return Promise.reject(this.ended);
    if (this.closing) return Promise.reject(new Error('the index was closed'));
    const id = ++this.lastId;
    return new Promise((resolve, reject) => {
      this.writes.set(id, { resolve, reject });
      this.thread.ref();
      this.thread.postMessage({ type: 'write', id, file } satisfies HnswRequest);
    });
  }

  /** Takes no new searches; the thread ends once those already taken are answered. */
  close(): void {
    this.closing = true;
    this.endWhenIdle();
  }

  private endWhenIdle(): void {
    if (
      this.closing &&
      this.inFlight.size === 0 &&
      this.queued.length === 0 &&
      this.writes.size === 0
    ) {
      void this.thread.terminate();
    }
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
      const request: HnswRequest = {
        type: 'search',
        id,
        query,
        count,
        ef: Math.max(this.efSearch, count),
      };
      this.thread.postMessage(request, [query.buffer]);
    }
    if (this.inFlight.size > 0 || this.writes.size > 0) this.thread.ref();
    else this.thread.unref();
  }

  private answered(reply: HnswReply): void {
    switch (reply.type) {
      case 'ready':
      case 'progress':
        return;
      case 'written':
        this.writes.get(reply.id)?.resolve();
        break;
      case 'found':
        this.inFlight.get(reply.id)?.resolve(reply.rows);
        break;
      case 'failed': {
        const { message } = reply;
        this.writes.get(reply.id)?.reject(new Error(`index write failed: ${message}`));
        this.inFlight.get(reply.id)?.reject(new Error(`index search failed: ${message}`));
        break;
      }
    }
    this.writes.delete(reply.id);
    this.inFlight.delete(reply.id);
    this.pump();
    this.endWhenIdle();
  }

  private end(error: Error): void {
    this.ended ??= error;
    for (const search of [...this.inFlight.values(), ...this.queued]) search.reject(this.ended);
    for (const write of this.writes.values()) write.reject(this.ended);
    this.inFlight.clear();
    this.queued.length = 0;
    this.writes.clear();
  }
}

/**
 * Builds on a worker thread of its own (hnsw.thread.ts), which reads the vectors where they are
 * (a SharedArrayBuffer), keeps the index and answers its searches: an inner-product graph, and
 * when its sampled recall is below SECOND_GRAPH_BELOW a norm-augmented one too, the better kept.
 */
export function hnswIndexBuilder(settings: HnswSettings): VectorIndexBuilder {
  const { m, efConstruction } = settings;
  const build = (
    format: PointFormat,
    ...[source, signal, progress]: Parameters<VectorIndexBuilder>
  ) =>
    startIndex(source, settings, signal, progress, format, (shared) => ({
      kind: 'build',
      ...shared,
      m,
      efConstruction,
    }));
  return async (...args) => {
    const first = await build('inner-product', ...args);
    if (!buildMayDoBetter('inner-product', first.recall ?? 1)) return first;
    let second: VectorIndex;
    try {
      second = await build('norm-augmented-l2', ...args);
    } catch (error) {
      first.close();
      throw error;
    }
    const better = (second.recall ?? 0) > (first.recall ?? 0);
    (better ? first : second).close();
    return better ? second : first;
  };
}

/**
 * Opens an index written by an HNSW index's `write` (on any replica, with the same M) on a thread
 * of its own, checked against the source's vectors, or adopted from another version's
 * (hnsw.thread.ts).
 */
export function hnswIndexOpener(settings: HnswSettings): VectorIndexOpener {
  return async (file, pointFormat, labelRows, source, signal, adopt = false) =>
    await startIndex(source, settings, signal, undefined, formatNamed(pointFormat), (shared) => ({
      kind: 'open',
      ...shared,
      file,
      labelRows,
      adopt,
    }));
}

/** How an index's recall is sampled: as `recommend` asks it, on RECALL_QUERIES users. */
export function recallCheck(settings: HnswSettings): RecallCheck {
  return {
    queries: RECALL_QUERIES,
    candidates: settings.annCandidates,
    ef: settings.efSearch,
    k: RECALL_AT,
  };
}

function formatNamed(name: string): PointFormat {
  const format = POINT_FORMATS.find((known) => known === name);
  if (format === undefined) throw new Error(`unknown point format ${name}`);
  return format;
}

type SharedJob = Omit<HnswJob, 'kind' | 'm' | 'efConstruction' | 'file' | 'labelRows' | 'adopt'>;

async function startIndex(
  source: IndexSource,
  settings: HnswSettings,
  signal: AbortSignal,
  progress: ((indexed: number) => void) | undefined,
  format: PointFormat,
  job: (shared: SharedJob) => HnswJob,
): Promise<VectorIndex> {
  signal.throwIfAborted();
  const stop = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const { matrix, dimension, rows, extra } = source;
  const thread = startThread(
    path.join(__dirname, 'hnsw.thread'),
    job({ matrix, dimension, rows, extra, stop, check: recallCheck(settings), format }),
  );
  const { size, stale, recall, drift } = await ready(thread, signal, stop, progress);
  const dimensions = dimension + (extra === undefined ? 0 : 1);
  return new HnswVectorIndex(
    thread,
    dimensions,
    size,
    hnswBytes(size, pointValues(source, format), settings.m),
    settings.efSearch,
    stale,
    recall,
    drift,
    format,
  );
}

/**
 * About what hnswlib holds: per element its vector, its level-0 links (2·M), their count and its
 * label; the upper levels add about 1/M of that in links.
 */
function hnswBytes(rows: number, values: number, m: number): number {
  return Math.round(rows * (4 * values + 4 * 2 * m + 4 + 8 + 4 * (1 + 1 / m)));
}

/** Settles when the thread's index is ready; an abort asks the thread to stop and end. */
function ready(
  thread: Worker,
  signal: AbortSignal,
  stop: Int32Array<SharedArrayBuffer>,
  progress: ((indexed: number) => void) | undefined,
): Promise<Extract<HnswReply, { type: 'ready' }>> {
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
      if (reply.type === 'ready') {
        settle(() => {
          resolve(reply);
        });
      } else if (reply.type === 'progress') progress?.(reply.indexed);
    };
    const onError = (error: Error) => {
      failure = error;
    };
    const onExit = (code: number) => {
      settle(() => {
        if (signal.aborted) reject(abortReason(signal));
        else reject(failure ?? new Error(`the index thread exited with code ${code}`));
      });
    };
    signal.addEventListener('abort', abort, { once: true });
    thread.on('message', onMessage);
    thread.on('error', onError);
    thread.on('exit', onExit);
  });
}
