import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { PgBulkReader } from '../../infra/pg-bulk-reader';
import { PG_BULK_READER, PG_POOL } from '../../infra/tokens';
import type { ItemFeatures } from './item-table';
import type { TextVectors } from './served-model';

/**
 * One page of an encoder's stored vectors by item id, each with its item's `deleted` (null: no
 * catalog row): the page is taken from the vectors' primary key alone (`$2` the last item id of
 * the page before, `$3` the page size), so the plan stays an index scan even before PostgreSQL
 * has statistics for a freshly loaded catalog. A vector is live when `deleted` is false.
 */
const vectorPage = (columns: string) => `SELECT ${columns}, i.deleted
  FROM (SELECT * FROM item_embeddings WHERE encoder_id = $1 AND item_id > $2
        ORDER BY item_id LIMIT $3) e
  LEFT JOIN items i USING (item_id)`;

interface FeatureRow {
  readonly item_id: string;
  readonly category: string | null;
  readonly price: number | null;
  readonly created_at: Date | null;
  readonly deleted: boolean;
}

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
  private readonly pageRows: number;

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PG_BULK_READER) private readonly reader: PgBulkReader,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.pageRows = config.ranking.catalogPageRows;
  }

  /**
   * Identifies the set of live (item, text version) pairs: equal fingerprints mean equal vectors,
   * since a vector is a function of encoder and text. Costs one scan, no vector bytes, a page
   * (RANK_CATALOG_PAGE_ROWS) per statement; `readAt` is the database clock before the first.
   */
  async fingerprint(
    encoderId: string,
  ): Promise<{ fingerprint: string; rows: number; readAt: Date }> {
    const readAt = await this.databaseClock();
    let rows = 0;
    let hash = 0n;
    let after = '';
    for (;;) {
      const { rows: pages } = await this.pool.query<{
        scanned: number;
        n: number;
        last: string;
        hash: string;
      }>(
        // A vector without a catalog row (deleted null) is not live either.
        `SELECT count(*)::int AS scanned, count(*) FILTER (WHERE NOT deleted)::int AS n,
                max(item_id) AS last, coalesce(sum(h) FILTER (WHERE NOT deleted), 0)::text AS hash
         FROM (${vectorPage(
           `e.item_id, hashtextextended(e.item_id || ':' || e.text_hash, 0)::numeric AS h`,
         )}) page`,
        [encoderId, after, this.pageRows],
      );
      const page = pages[0];
      rows += page.n;
      hash += BigInt(page.hash);
      if (page.scanned < this.pageRows) break;
      after = page.last;
    }
    return { fingerprint: `${String(rows)}:${hash.toString()}`, rows, readAt };
  }

  /**
   * Every live item's text vector for one encoder, as one row-major matrix in item id order in
   * shared memory, read on the bulk reader's thread a page (RANK_CATALOG_PAGE_ROWS) per
   * statement: one statement for a million vectors ran past any sensible statement timeout, and
   * on the request thread pg's decoding held it 1.2-1.6 s per 100,000 vectors. `expectedRows` (the
   * fingerprint's count) sizes the matrix once; rows beyond it grow it.
   */
  async textVectors(encoderId: string, expectedRows = 0): Promise<TextVectors> {
    const { keys, dimension, matrix } = await this.reader.vectors({
      // As base64: pg decodes a bytea's hex at about twice the CPU.
      sql: `${vectorPage(
        `e.item_id AS key, e.dimension, encode(e.vector, 'base64') AS base64,
         i.deleted IS FALSE AS live`,
      )} ORDER BY e.item_id`,
      params: [encoderId],
      pageRows: this.pageRows,
      expectedRows,
    });
    return { ids: keys, dimension, matrix };
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

  /**
   * Items changed at or after `since` (all items without it, a page per statement), and the
   * database clock of the read: a change committed while later pages are read is newer than it,
   * so the next read from that clock sees it again.
   */
  async itemFeatures(since: Date | undefined): Promise<{ items: ItemFeatures[]; readAt: Date }> {
    if (since !== undefined) return this.itemFeaturesChanged(since);
    const readAt = await this.databaseClock();
    const items: ItemFeatures[] = [];
    let after = '';
    for (;;) {
      const { rows } = await this.pool.query<FeatureRow>(
        `SELECT item_id, category, price, created_at, deleted FROM items
         WHERE item_id > $1 ORDER BY item_id LIMIT $2`,
        [after, this.pageRows],
      );
      for (const row of rows) items.push(featuresOf(row));
      if (rows.length < this.pageRows) break;
      after = rows[rows.length - 1].item_id;
    }
    return { items, readAt };
  }

  /** The database clock: the start of a read made of several statements. */
  private async databaseClock(): Promise<Date> {
    return (await this.pool.query<{ now: Date }>('SELECT now()')).rows[0].now;
  }

  /** Separate from the full read: `ingested_at >= $1` alone is what its index answers. */
  private async itemFeaturesChanged(since: Date): Promise<{ items: ItemFeatures[]; readAt: Date }> {
    const { rows } = await this.pool.query<
      { read_at: Date } & (FeatureRow | { [K in keyof FeatureRow]: null })
    >(
      // One row even when nothing changed, so the caller always learns the database clock.
      `SELECT r.read_at, i.item_id, i.category, i.price, i.created_at, i.deleted
       FROM (SELECT now() AS read_at) r
       LEFT JOIN items i ON i.ingested_at >= $1`,
      [since],
    );
    const items: ItemFeatures[] = [];
    for (const row of rows) if (row.item_id !== null) items.push(featuresOf(row));
    return { items, readAt: rows[0].read_at };
  }
}

function featuresOf(row: FeatureRow): ItemFeatures {
  return {
    itemId: row.item_id,
    category: row.category ?? undefined,
    price: row.price ?? undefined,
    createdAtMs: row.created_at?.getTime(),
    deleted: row.deleted,
  };
}
