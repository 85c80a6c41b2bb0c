import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { PG_POOL } from '../../infra/tokens';

/** Every live item's text vector for one encoder, as one row-major matrix. */
export interface TextCatalog {
  readonly ids: string[];
  readonly dimension: number;
  readonly matrix: Float32Array;
}

const LIVE_VECTORS = `FROM item_embeddings e JOIN items i USING (item_id)
  WHERE e.encoder_id = $1 AND NOT i.deleted`;

/** Reads the embedding module's `item_embeddings` for model loading (read-only). */
@Injectable()
export class CatalogVectorsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * Identifies the set of live (item, text version) pairs: equal fingerprints mean equal vectors,
   * since a vector is a function of encoder and text. Costs one scan, no vector bytes.
   */
  async fingerprint(encoderId: string): Promise<string> {
    const result = await this.pool.query<{ n: number; hash: string }>(
      `SELECT count(*)::int AS n,
              coalesce(sum(hashtextextended(e.item_id || ':' || e.text_hash, 0)::numeric), 0)::text AS hash
         ${LIVE_VECTORS}`,
      [encoderId],
    );
    const row = result.rows.at(0);
    return `${String(row?.n ?? 0)}:${row?.hash ?? '0'}`;
  }

  async catalog(encoderId: string): Promise<TextCatalog> {
    const result = await this.pool.query<{ item_id: string; dimension: number; vector: Buffer }>(
      `SELECT e.item_id, e.dimension, e.vector ${LIVE_VECTORS} ORDER BY e.item_id`,
      [encoderId],
    );
    const dimension = result.rows.at(0)?.dimension ?? 0;
    // Vectors of another size belong to a misconfigured encoder id; they cannot be scored.
    const rows = result.rows.filter((row) => row.dimension === dimension);
    const matrix = new Float32Array(rows.length * dimension);
    // Stored little-endian float32, which is the host layout: copy the bytes as they are.
    const bytes = new Uint8Array(matrix.buffer);
    rows.forEach((row, index) => {
      bytes.set(row.vector, index * dimension * 4);
    });
    return { ids: rows.map((row) => row.item_id), dimension, matrix };
  }
}
