import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import type { AppConfig } from '../config/config';
import { answer } from '../common/thread';
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

/**
 * Vectors stored one per row, read a page at a time by key into one matrix in shared memory.
 * Rows not `live`, and rows whose dimension is not the first live row's, are skipped.
 */
export interface PagedVectors {
  /**
   * A statement that returns a page of rows in key order, each with the columns `key`,
   * `dimension`, `base64` (the vector's float32 values, little-endian) and `live`; after `params`
   * come two more, the last key of the page before ('' for the first) and the page's size.
   */
  readonly sql: string;
  readonly params: readonly (string | number)[];
  readonly pageRows: number;
  /** How many rows to make room for at once; more grow the matrix. */
  readonly expectedRows: number;
}

/** The live rows' keys, and their vectors as one row-major matrix: row `i` is `keys[i]`'s. */
export interface VectorRows {
  readonly keys: string[];
  readonly dimension: number;
  readonly matrix: Float32Array<SharedArrayBuffer>;
}

export type BulkReadRequest = { readonly id: number } & (
  ({ readonly kind: 'file' } & SlicedFile) | ({ readonly kind: 'vectors' } & PagedVectors)
);

/**
 * Copies `sliced` into its file over a connection of its own. The slices' bytes are decoded into
 * one buffer kept from slice to slice: the thread makes no garbage for its size.
 */
async function copy(config: AppConfig['postgres'], sliced: SlicedFile): Promise<SlicedFileCopy> {
  const client = createPgClient(config, 'recsys-bulk-reader');
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

/**
 * Reads `paged` into shared memory, decoding each vector's base64 straight into its row: no
 * buffer per row, nothing for the request thread to decode or collect.
 */
async function readVectors(
  config: AppConfig['postgres'],
  paged: PagedVectors,
): Promise<VectorRows> {
  const client = createPgClient(config, 'recsys-bulk-reader');
  await client.connect();
  try {
    const keys: string[] = [];
    let dimension = 0;
    let bytes = sharedBytes(0);
    for (let after = ''; ;) {
      const { rows } = await client.query<{
        key: string;
        dimension: number;
        base64: string;
        live: boolean;
      }>(paged.sql, [...paged.params, after, paged.pageRows]);
      for (const row of rows) {
        if (!row.live) continue;
        if (dimension === 0) {
          dimension = row.dimension;
          bytes = sharedBytes(Math.max(paged.expectedRows, rows.length) * dimension * 4);
        }
        // Vectors of another size belong to a misconfigured encoder id; they cannot be scored.
        if (row.dimension !== dimension) continue;
        const offset = keys.length * dimension * 4;
        if (offset + dimension * 4 > bytes.length) {
          const grown = sharedBytes(Math.ceil(keys.length * 1.5 + paged.pageRows) * dimension * 4);
          bytes.copy(grown);
          bytes = grown;
        }
        bytes.write(row.base64, offset, dimension * 4, 'base64');
        keys.push(row.key);
      }
      if (rows.length < paged.pageRows) break;
      after = rows[rows.length - 1].key;
    }
    const matrix = new Float32Array(bytes.buffer, 0, keys.length * dimension);
    return { keys, dimension, matrix };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A buffer over new shared memory: the request thread reads the vectors where they are. */
function sharedBytes(size: number): Buffer<SharedArrayBuffer> {
  return Buffer.from(new SharedArrayBuffer(size));
}

function run(config: AppConfig['postgres']): void {
  const port = parentPort;
  if (port === null) throw new Error('pg-bulk-reader.thread runs as a worker thread');
  // At the process's priority: a model load waits on its reads. Below the request threads, two
  // replicas' loads with a changed catalog took 5.2-7.2 s instead of 4.0 (`npm run bench --
  // model-swap`); a thread lowered cannot be raised again without privileges.
  let queue = Promise.resolve();
  port.on('message', (request: BulkReadRequest) => {
    queue = queue.then(() => {
      switch (request.kind) {
        case 'file':
          return answer(port, request.id, () => copy(config, request));
        case 'vectors':
          return answer(port, request.id, () => readVectors(config, request));
      }
    });
  });
}

run(workerData as AppConfig['postgres']);
