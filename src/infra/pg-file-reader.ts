import path from 'node:path';
import { startThread, ThreadCalls } from '../common/thread';
import type { AppConfig } from '../config/config';
import type { FileReaderRequest, SlicedFile, SlicedFileCopy } from './pg-file-reader.thread';

export type { SlicedFile, SlicedFileCopy } from './pg-file-reader.thread';

/**
 * Copies files stored in PostgreSQL as slices into local files, on a worker thread of its own
 * (started on the first copy, and again after it was lost) that runs one copy at a time. On the
 * request thread pg decodes each slice into a new string and then a buffer: a stored index of
 * 300,000 items held that thread about 4 s per read, in bursts between requests
 * (`npm run bench -- index-read`).
 */
export class PgFileReader {
  private readonly calls: ThreadCalls<SlicedFileCopy>;

  constructor(config: AppConfig['postgres']) {
    // A copy pending keeps the process alive: its caller waits on it.
    this.calls = new ThreadCalls(
      'PostgreSQL file reader',
      () => startThread(path.join(__dirname, 'pg-file-reader.thread'), config),
      true,
    );
  }

  /** Writes `sliced` to its file; says how many bytes it wrote and their sha256. */
  copy(sliced: SlicedFile): Promise<SlicedFileCopy> {
    return this.calls.call((id) => ({ id, ...sliced }) satisfies FileReaderRequest);
  }

  /** Ends the thread; copies still running fail. */
  async close(): Promise<void> {
    await this.calls.release()?.terminate();
  }
}
