import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { DomainError } from '../../common/errors';
import type { PgBulkReader } from '../../infra/pg-bulk-reader';
import { PG_BULK_READER, PG_POOL } from '../../infra/tokens';

/** Bytes per stored slice of an index file. */
const CHUNK_BYTES = 1 << 20;
/** Slices per read statement. */
const CHUNKS_PER_READ = 16;

/** The versions being served, as text: the active one and the running experiment's arms'. */
const SERVED_VERSION_IDS = `
  SELECT id::text FROM model_versions WHERE status = 'active'
  UNION ALL
  SELECT arm ->> 'modelVersion'
    FROM experiments, jsonb_array_elements(arms) AS arm
   WHERE status = 'running' AND arm ->> 'modelVersion' IS NOT NULL`;

/** What an index was built with: one built otherwise is not opened. */
export interface IndexShape {
  readonly dimension: number;
  readonly m: number;
  readonly efConstruction: number;
  /** The points carry the item's bias as one more value. */
  readonly withBias: boolean;
}

/** How well an index answers, and where its graph came from. */
export interface IndexQuality {
  /** recall@20 of `recommend`'s candidates on sampled users (hnsw-graph.ts); undefined: unknown. */
  readonly recall: number | undefined;
  /** The recall of the fresh build its graph descends from (its own when built). */
  readonly graphRecall: number | undefined;
  /**
   * How far its items moved since that build: the mean angle in degrees, at most (adoptions in
   * a row add up); 0 when built.
   */
  readonly graphDrift: number | undefined;
  /** The version whose stored graph it adopted; undefined: built. */
  readonly adoptedFrom: string | undefined;
}

export interface StoredIndex extends IndexShape, IndexQuality {
  readonly indexId: string;
  readonly versionId: string;
  /** How its points are laid out, and so what its graph compares (hnsw-graph.ts). */
  readonly pointFormat: string;
  readonly points: number;
  /** Bytes of the index file. */
  readonly size: number;
  readonly sha256: string;
  readonly storedAt: Date;
}

/** What ops see of a version's index: the newest stored, and the live build lease. */
export interface IndexState {
  readonly stored: StoredIndex | undefined;
  /** The process building it now (its lease renewed within `leaseMs`); undefined: none. */
  readonly builder: string | undefined;
}

/** Where built indexes are kept (PostgreSQL; unit tests keep them in memory). */
export type IndexStore = Pick<
  RetrievalIndexRepository,
  'newest' | 'adoptable' | 'readTo' | 'save' | 'claimBuild' | 'releaseBuild' | 'state' | 'served'
>;

interface HeaderRow {
  index_id: string;
  version_id: string;
  dimension: number;
  m: number;
  ef_construction: number;
  with_bias: boolean;
  point_format: string;
  points: number;
  size: string;
  sha256: string;
  created_at: Date;
  recall: number | null;
  graph_recall: number | null;
  graph_drift: number | null;
  adopted_from: string | null;
}

const HEADER_COLUMNS = `index_id::text, version_id::text, dimension, m, ef_construction, with_bias,
  point_format, points, size::text, sha256, created_at, recall, graph_recall, graph_drift, adopted_from::text`;

function storedIndex(row: HeaderRow): StoredIndex {
  return {
    indexId: row.index_id,
    versionId: row.version_id,
    dimension: row.dimension,
    m: row.m,
    efConstruction: row.ef_construction,
    withBias: row.with_bias,
    pointFormat: row.point_format,
    points: row.points,
    size: Number(row.size),
    sha256: row.sha256,
    storedAt: row.created_at,
    recall: row.recall ?? undefined,
    graphRecall: row.graph_recall ?? undefined,
    graphDrift: row.graph_drift ?? undefined,
    adoptedFrom: row.adopted_from ?? undefined,
  };
}

/**
 * Served versions' ANN index files in PostgreSQL (`retrieval_indexes`, sliced into
 * `retrieval_index_chunks`), for the replicas serving the same version; rows are never updated.
 */
@Injectable()
export class RetrievalIndexRepository {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PG_BULK_READER) private readonly reader: PgBulkReader,
  ) {}

  /** The version's newest stored index; undefined: none. */
  async newest(versionId: string): Promise<StoredIndex | undefined> {
    const { rows } = await this.pool.query<HeaderRow>(
      `SELECT ${HEADER_COLUMNS}
         FROM retrieval_indexes WHERE version_id = $1 ORDER BY index_id DESC LIMIT 1`,
      [versionId],
    );
    const row = rows.at(0);
    return row && storedIndex(row);
  }

  /**
   * The stored index of another version whose graph `versionId` could adopt: built alike, its
   * graph's recall and drift known; a served version's first (the one a new version is most often
   * fine-tuned from), then the newest.
   */
  async adoptable(versionId: string, shape: IndexShape): Promise<StoredIndex | undefined> {
    const { rows } = await this.pool.query<HeaderRow>(
      `SELECT ${HEADER_COLUMNS}
         FROM retrieval_indexes
        WHERE version_id <> $1 AND dimension = $2 AND m = $3 AND ef_construction = $4
          AND with_bias = $5 AND graph_recall IS NOT NULL AND graph_drift IS NOT NULL
        ORDER BY version_id::text IN (${SERVED_VERSION_IDS}) DESC, index_id DESC
        LIMIT 1`,
      [versionId, shape.dimension, shape.m, shape.efConstruction, shape.withBias],
    );
    const row = rows.at(0);
    return row && storedIndex(row);
  }

  /**
   * Writes the stored index file to `file` (CHUNKS_PER_READ slices per statement, on the file
   * reader's thread: pg-bulk-reader.ts) and returns
   * the item id of each label, newline-joined as saved ("" none); a file whose bytes do not
   * match the stored sha256 is refused (CONFLICT).
   */
  async readTo(stored: StoredIndex, file: string): Promise<string> {
    const { indexId } = stored;
    // As base64: pg decodes a bytea's hex at about twice the CPU (12 against 6 ms a MiB here).
    const { written, sha256 } = await this.reader.copy({
      sql: `SELECT encode(bytes, 'base64') AS base64 FROM retrieval_index_chunks
             WHERE index_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`,
      params: [indexId],
      slicesPerStatement: CHUNKS_PER_READ,
      size: stored.size,
      file,
    });
    if (written !== stored.size) {
      throw new DomainError(
        'CONFLICT',
        `stored index ${indexId} holds ${written} of ${stored.size} bytes`,
        { indexId },
      );
    }
    if (sha256 !== stored.sha256) {
      throw new DomainError('CONFLICT', `stored index ${indexId} fails its sha256 check`, {
        indexId,
        expected: stored.sha256,
        actual: sha256,
      });
    }
    const { rows } = await this.pool.query<{ label_item_ids: string }>(
      'SELECT label_item_ids FROM retrieval_indexes WHERE index_id = $1',
      [indexId],
    );
    const ids = rows.at(0)?.label_item_ids;
    if (ids === undefined) {
      throw new DomainError('NOT_FOUND', `stored index ${indexId} is gone`, { indexId });
    }
    return ids;
  }

  /**
   * Stores the index file `file` of `versionId` in one transaction (visible whole or not at all),
   * then deletes the version's older indexes and those of all but the `keepVersions` versions
   * stored most recently, except the active version's and the running experiment's arms'.
   * Returns the new index's id and size; `signal` abandons it between two slices (nothing is
   * stored).
   */
  async save(
    versionId: string,
    shape: IndexShape,
    pointFormat: string,
    quality: IndexQuality,
    points: number,
    labelItemIds: string,
    file: string,
    keepVersions: number,
    signal: AbortSignal,
  ): Promise<{ indexId: string; size: number }> {
    const handle = await open(file, 'r');
    try {
      const slice = Buffer.alloc(CHUNK_BYTES);
      const { size } = await handle.stat();
      const slices = async function* () {
        for (let at = 0; at < size;) {
          signal.throwIfAborted();
          const { bytesRead } = await handle.read(slice, 0, CHUNK_BYTES, at);
          if (bytesRead === 0) throw new Error(`${file} ended at byte ${at} of ${size}`);
          yield slice.subarray(0, bytesRead);
          at += bytesRead;
        }
      };
      // The digest goes in the header row, written first: one pass to hash, one to store.
      const hash = createHash('sha256');
      for await (const bytes of slices()) hash.update(bytes);
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ index_id: string }>(
          `INSERT INTO retrieval_indexes (version_id, dimension, m, ef_construction, with_bias,
                                          point_format, points, size, sha256, label_item_ids,
                                          recall, graph_recall, graph_drift, adopted_from)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           RETURNING index_id::text`,
          [
            versionId,
            shape.dimension,
            shape.m,
            shape.efConstruction,
            shape.withBias,
            pointFormat,
            points,
            size,
            hash.digest('hex'),
            labelItemIds,
            quality.recall ?? null,
            quality.graphRecall ?? null,
            quality.graphDrift ?? null,
            quality.adoptedFrom ?? null,
          ],
        );
        const indexId = rows[0].index_id;
        let seq = 0;
        for await (const bytes of slices()) {
          await client.query(
            'INSERT INTO retrieval_index_chunks (index_id, seq, bytes) VALUES ($1, $2, $3)',
            [indexId, seq++, bytes],
          );
        }
        await client.query(
          `DELETE FROM retrieval_indexes WHERE version_id = $1 AND index_id < $2`,
          [versionId, indexId],
        );
        // Versions being served keep theirs whatever was stored since: candidates indexed
        // ahead by the train role must not push out the index every new replica opens.
        await client.query(
          `DELETE FROM retrieval_indexes
            WHERE version_id NOT IN (SELECT version_id FROM retrieval_indexes
                                      GROUP BY version_id ORDER BY max(index_id) DESC LIMIT $1)
              AND version_id::text NOT IN (${SERVED_VERSION_IDS})`,
          [keepVersions],
        );
        await client.query('COMMIT');
        return { indexId, size };
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
    } finally {
      await handle.close();
    }
  }

  /**
   * Takes or renews the lease on building `versionId`'s index for `builder`: true when it holds
   * it now (it was free, its own, or not renewed for `leaseMs`), false while another holds it.
   */
  async claimBuild(versionId: string, builder: string, leaseMs: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO retrieval_index_builds (version_id, builder) VALUES ($1, $2)
       ON CONFLICT (version_id) DO UPDATE SET builder = EXCLUDED.builder, renewed_at = now()
        WHERE retrieval_index_builds.builder = EXCLUDED.builder
           OR retrieval_index_builds.renewed_at < now() - make_interval(secs => $3 / 1000.0)`,
      [versionId, builder, leaseMs],
    );
    return rowCount === 1;
  }

  /** The version's newest stored index and its live build lease, if any. */
  async state(versionId: string, leaseMs: number): Promise<IndexState> {
    const [stored, lease] = await Promise.all([
      this.newest(versionId),
      this.pool.query<{ builder: string }>(
        `SELECT builder FROM retrieval_index_builds
          WHERE version_id = $1 AND renewed_at >= now() - make_interval(secs => $2 / 1000.0)`,
        [versionId, leaseMs],
      ),
    ]);
    return { stored, builder: lease.rows.at(0)?.builder };
  }

  /** Whether `versionId` is served: the active version, or an arm's of the running experiment. */
  async served(versionId: string): Promise<boolean> {
    const { rows } = await this.pool.query<{ served: boolean }>(
      `SELECT $1::text IN (${SERVED_VERSION_IDS}) AS served`,
      [versionId],
    );
    return rows[0]?.served ?? false;
  }

  /** Ends `builder`'s lease on `versionId` (its build ended: stored, failed or abandoned). */
  async releaseBuild(versionId: string, builder: string): Promise<void> {
    await this.pool.query(
      'DELETE FROM retrieval_index_builds WHERE version_id = $1 AND builder = $2',
      [versionId, builder],
    );
  }
}
