import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { PG_POOL } from '../../infra/tokens';
import type { ItemFeatures } from './item-table';
import type { TextVectors } from './served-model';

const LIVE_VECTORS = `FROM item_embeddings e JOIN items i USING (item_id)
  WHERE e.encoder_id = $1 AND NOT i.deleted`;

/** Text vectors copied into the catalog matrix per turn of the event loop. */
const COPY_ROWS = 4096;

/** A stored text vector and when it was stored (the row's `updated_at`). */
export interface StoredTextVector {
  readonly itemId: string;
  readonly vector: Float32Array;
  readonly storedAtMs: number;
}

function toVector(bytes: Buffer, dimension: number): Float32Array {
  // Stored little-endian float32, which is the host layout: copy the bytes as they are.
  const vector = new Float32Array(dimension);
  new Uint8Array(vector.buffer).set(bytes.subarray(0, dimension * 4));
  return vector;
}

/**
 * What serving reads from PostgreSQL: the catalog features of `items` and the text vectors of
 * `item_embeddings` (written by the ingest and embedding modules; read-only here).
 */
@Injectable()
export class ServingRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * Identifies the set of live (item, text version) pairs: equal fingerprints mean equal vectors,
   * since a vector is a function of encoder and text. Costs one scan, no vector bytes.
   */
  async fingerprint(encoderId: string): Promise<{ fingerprint: string; readAt: Date }> {
    const result = await this.pool.query<{ n: number; hash: string; read_at: Date }>(
      `SELECT count(*)::int AS n, now() AS read_at,
              coalesce(sum(hashtextextended(e.item_id || ':' || e.text_hash, 0)::numeric), 0)::text AS hash
         ${LIVE_VECTORS}`,
      [encoderId],
    );
    const row = result.rows[0];
    return { fingerprint: `${String(row.n)}:${row.hash}`, readAt: row.read_at };
  }

  /** Every live item's text vector for one encoder, as one row-major matrix. */
  async textVectors(encoderId: string): Promise<TextVectors> {
    const result = await this.pool.query<{ item_id: string; dimension: number; vector: Buffer }>(
      `SELECT e.item_id, e.dimension, e.vector ${LIVE_VECTORS} ORDER BY e.item_id`,
      [encoderId],
    );
    const dimension = result.rows.at(0)?.dimension ?? 0;
    // Vectors of another size belong to a misconfigured encoder id; they cannot be scored.
    const rows = result.rows.filter((row) => row.dimension === dimension);
    const matrix = new Float32Array(rows.length * dimension);
    const bytes = new Uint8Array(matrix.buffer);
    // A turn of the event loop between blocks: 50,000 rows in one go held requests up.
    for (let start = 0; start < rows.length; start += COPY_ROWS) {
      const end = Math.min(rows.length, start + COPY_ROWS);
      for (let index = start; index < end; index++) {
        bytes.set(rows[index].vector, index * dimension * 4);
      }
      await yieldToEventLoop();
    }
    return { ids: rows.map((row) => row.item_id), dimension, matrix };
  }

  /**
   * Text vectors of `encoderId` stored at or after `since`, or of the items in `itemIds` whatever
   * their age; deleted items' too (the caller knows which rows are deleted).
   */
  async textVectorsChanged(
    encoderId: string,
    since: Date,
    itemIds: readonly string[],
  ): Promise<{ stored: StoredTextVector[]; readAt: Date }> {
    const result = await this.pool.query<{
      read_at: Date;
      item_id: string | null;
      dimension: number;
      vector: Buffer;
      updated_at: Date;
    }>(
      // One row even when nothing changed, so the caller always learns the database clock.
      `SELECT r.read_at, e.item_id, e.dimension, e.vector, e.updated_at
       FROM (SELECT now() AS read_at) r
       LEFT JOIN item_embeddings e
         ON e.encoder_id = $1 AND (e.updated_at >= $2 OR e.item_id = ANY($3::text[]))`,
      [encoderId, since, itemIds],
    );
    const stored: StoredTextVector[] = [];
    for (const row of result.rows) {
      if (row.item_id === null) continue;
      stored.push({
        itemId: row.item_id,
        vector: toVector(row.vector, row.dimension),
        storedAtMs: row.updated_at.getTime(),
      });
    }
    return { stored, readAt: result.rows[0].read_at };
  }

  /** Items changed at or after `since` (all items without it), and the database clock of the read. */
  async itemFeatures(since: Date | undefined): Promise<{ items: ItemFeatures[]; readAt: Date }> {
    const { rows } = await this.pool.query<{
      read_at: Date;
      item_id: string | null;
      category: string | null;
      price: number | null;
      created_at: Date | null;
      deleted: boolean | null;
    }>(
      // One row even when nothing changed, so the caller always learns the database clock.
      `SELECT r.read_at, i.item_id, i.category, i.price, i.created_at, i.deleted
       FROM (SELECT now() AS read_at) r
       LEFT JOIN items i ON $1::timestamptz IS NULL OR i.ingested_at >= $1`,
      [since ?? null],
    );
    const items: ItemFeatures[] = [];
    for (const row of rows) {
      if (row.item_id === null) continue;
      items.push({
        itemId: row.item_id,
        category: row.category ?? undefined,
        price: row.price ?? undefined,
        createdAtMs: row.created_at?.getTime(),
        deleted: row.deleted === true,
      });
    }
    return { items, readAt: rows[0].read_at };
  }
}
