import path from 'node:path';
import { startThread, ThreadCalls } from '../common/thread';
import type { AppConfig } from '../config/config';
import type {
  BulkReadRequest,
  PagedVectors,
  SlicedFile,
  SlicedFileCopy,
  VectorRows,
} from './pg-bulk-reader.thread';

export type { PagedVectors, SlicedFile, SlicedFileCopy, VectorRows } from './pg-bulk-reader.thread';

/**
 * How long the thread outlives its last read. Started afresh for every read of a swap, it made a
 * swap with a changed catalog about 1.4 s slower (two replicas, `npm run bench -- model-swap`).
 */
export const BULK_READER_IDLE_MS = 60_000;

/**
 * Bulk reads from PostgreSQL on a worker thread of its own (started on the first read, and again
 * after it was lost or ended idle) that runs one read at a time, each over a connection of its
 * own: files stored as slices into local files, and vectors stored one per row into shared memory. On the
 * request thread pg decodes every row into new strings and buffers: a stored index of 300,000
 * items held that thread about 4 s per read (`npm run bench -- index-read`), 100,000 text vectors
 * 1.2-1.6 s, in bursts of up to 50 ms between requests.
 */
export class PgBulkReader {
  private readonly calls: ThreadCalls<SlicedFileCopy | VectorRows>;

  constructor(config: AppConfig['postgres']) {
    // A read pending keeps the process alive: its caller waits on it. The rows a read decodes
    // grow the thread's heap (about 250 MB after 100,000 vectors), which it keeps until it ends.
    this.calls = new ThreadCalls(
      'PostgreSQL bulk reader',
      () => startThread(path.join(__dirname, 'pg-bulk-reader.thread'), config),
      true,
      BULK_READER_IDLE_MS,
    );
  }

  /** Writes `sliced` to its file; says how many bytes it wrote and their sha256. */
  async copy(sliced: SlicedFile): Promise<SlicedFileCopy> {
    const copied = await this.calls.call(
      (id) => ({ id, kind: 'file', ...sliced }) satisfies BulkReadRequest,
    );
    if (!('written' in copied)) throw new Error('the bulk reader answered a copy with vectors');
    return copied;
  }

  /** Reads `paged`'s live rows into one matrix in shared memory. */
  async vectors(paged: PagedVectors): Promise<VectorRows> {
    const read = await this.calls.call(
      (id) => ({ id, kind: 'vectors', ...paged }) satisfies BulkReadRequest,
    );
    if (!('keys' in read)) throw new Error('the bulk reader answered a vector read with a copy');
    return read;
  }

  /** Ends the thread; reads still running fail. */
  async close(): Promise<void> {
    await this.calls.release()?.terminate();
  }
}
