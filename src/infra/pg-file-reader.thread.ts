import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import type { AppConfig } from '../config/config';
import { answer, runInBackground } from '../common/thread';
import { createPgClient } from './postgres';

/** A file stored in PostgreSQL as numbered slices, to copy into a local file. */
export interface SlicedFile {
  /**
   * A statement that returns slices in order, each as one `base64` column; after `params` come
   * two more, the first slice number wanted and the one past the last.
   */
  readonly sql: string;
  readonly params: readonly (string | number)[];
  readonly slicesPerStatement: number;
  /** The file's size: reading stops there, or at the first statement that returns no slice. */
  readonly size: number;
  /** The local file written (created or truncated). */
  readonly file: string;
}

/** What was copied: the bytes written and their sha256, for the caller to check. */
export interface SlicedFileCopy {
  readonly written: number;
  readonly sha256: string;
}

export type FileReaderRequest = { readonly id: number } & SlicedFile;

/**
 * Copies `sliced` into its file over a connection of its own. The slices' bytes are decoded into
 * one buffer kept from slice to slice: the thread makes no garbage for its size.
 */
async function copy(config: AppConfig['postgres'], sliced: SlicedFile): Promise<SlicedFileCopy> {
  const client = createPgClient(config, 'recsys-file-reader');
  await client.connect();
  const handle = await open(sliced.file, 'w');
  try {
    const hash = createHash('sha256');
    let decoded = Buffer.alloc(0);
    let written = 0;
    for (let seq = 0; written < sliced.size; seq += sliced.slicesPerStatement) {
      const { rows } = await client.query<{ base64: string }>(sliced.sql, [
        ...sliced.params,
        seq,
        seq + sliced.slicesPerStatement,
      ]);
      if (rows.length === 0) break;
      for (const { base64 } of rows) {
        const most = Math.ceil((base64.length * 3) / 4);
        if (decoded.length < most) decoded = Buffer.allocUnsafeSlow(most);
        const bytes = decoded.subarray(0, decoded.write(base64, 'base64'));
        hash.update(bytes);
        await handle.write(bytes);
        written += bytes.length;
      }
    }
    return { written, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
    await client.end().catch(() => undefined);
  }
}

function run(config: AppConfig['postgres']): void {
  const port = parentPort;
  if (port === null) throw new Error('pg-file-reader.thread runs as a worker thread');
  // Nobody waits on a copy by the millisecond; requests do.
  runInBackground();
  let queue = Promise.resolve();
  port.on('message', ({ id, ...sliced }: FileReaderRequest) => {
    queue = queue.then(() => answer(port, id, () => copy(config, sliced)));
  });
}

run(workerData as AppConfig['postgres']);
