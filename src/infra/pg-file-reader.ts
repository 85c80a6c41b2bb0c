import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startThread } from '../common/thread';
import type { AppConfig } from '../config/config';
import type {
  FileReaderReply,
  FileReaderRequest,
  SlicedFile,
  SlicedFileCopy,
} from './pg-file-reader.thread';

export type { SlicedFile, SlicedFileCopy } from './pg-file-reader.thread';

interface Pending {
  resolve(copy: SlicedFileCopy): void;
  reject(error: Error): void;
}

/**
 * Copies files stored in PostgreSQL as slices into local files, on a worker thread of its own
 * (started on the first copy, and again after it was lost) that runs one copy at a time. On the
 * request thread pg decodes each slice into a new string and then a buffer: a stored index of
 * 300,000 items held that thread about 4 s per read, in bursts between requests
 * (`npm run bench -- index-read`).
 */
export class PgFileReader {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(private readonly config: AppConfig['postgres']) {}

  /** Writes `sliced` to its file; says how many bytes it wrote and their sha256. */
  copy(sliced: SlicedFile): Promise<SlicedFileCopy> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    return new Promise<SlicedFileCopy>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Held while it copies: a process waiting on nothing else must not exit under it.
      worker.ref();
      worker.postMessage({ type: 'read', id, ...sliced } satisfies FileReaderRequest);
    });
  }

  /** Ends the thread; copies still running fail. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    this.worker = undefined;
    await worker.terminate();
  }

  private start(): Worker {
    const worker = startThread(path.join(__dirname, 'pg-file-reader.thread'), this.config);
    worker.unref();
    worker.on('message', (reply: FileReaderReply) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      switch (reply.type) {
        case 'read':
          waiting?.resolve({ written: reply.written, sha256: reply.sha256 });
          break;
        case 'failed':
          waiting?.reject(new Error(reply.message));
          break;
      }
    });
    const lost = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      lost(new Error(`the PostgreSQL file reader thread exited with code ${code}`));
    });
    return worker;
  }
}
