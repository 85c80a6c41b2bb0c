import { createHash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { DatabaseError, Pool } from 'pg';
import { DomainError } from '../../common/errors';
import { PG_POOL } from '../../infra/tokens';
import type { ArtifactStore } from './registry.types';

/** Bytes per row of an artifact read (about 5 ms of the client's decoding each). */
const ARTIFACT_SLICE_BYTES = 1 << 20;

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Artifacts as PostgreSQL bytea, one row per version; rows are never updated (a trigger refuses). */
@Injectable()
export class PgArtifactStore implements ArtifactStore {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async put(versionId: string, bytes: Buffer): Promise<{ sha256: string; size: number }> {
    const digest = sha256(bytes);
    try {
      await this.pool.query(
        'INSERT INTO model_artifacts (version_id, sha256, size, bytes) VALUES ($1, $2, $3, $4)',
        [versionId, digest, bytes.length, bytes],
      );
    } catch (error) {
      if (error instanceof DatabaseError && error.code === '23505') {
        throw new DomainError('CONFLICT', `version ${versionId} already has an artifact`, {
          versionId,
        });
      }
      throw error;
    }
    return { sha256: digest, size: bytes.length };
  }

  /**
   * Read in slices, one row each, hashed as they come: one 8 MB row arrives as 16 MB of hex that
   * the client decodes in one go, holding up the requests of the replica that loads it.
   */
  async get(versionId: string): Promise<Buffer> {
    const result = await this.pool.query<{ sha256: string; bytes: Buffer }>(
      `SELECT a.sha256, substring(a.bytes FROM s.at FOR $2) AS bytes
         FROM model_artifacts a
         CROSS JOIN LATERAL generate_series(1, greatest(octet_length(a.bytes), 1), $2) AS s(at)
        WHERE a.version_id = $1
        ORDER BY s.at`,
      [versionId, ARTIFACT_SLICE_BYTES],
    );
    const expected = result.rows.at(0)?.sha256;
    if (expected === undefined) {
      throw new DomainError('NOT_FOUND', `version ${versionId} has no artifact`, { versionId });
    }
    const slices = result.rows.map((row) => row.bytes);
    const hash = createHash('sha256');
    for (const slice of slices) {
      hash.update(slice);
      await yieldToEventLoop();
    }
    const actual = hash.digest('hex');
    if (actual !== expected) {
      throw new DomainError('CONFLICT', `artifact of version ${versionId} fails its sha256 check`, {
        versionId,
        expected,
        actual,
      });
    }
    return Buffer.concat(slices);
  }

  async stat(versionId: string): Promise<{ sha256: string; size: number } | null> {
    const result = await this.pool.query<{ sha256: string; size: number }>(
      'SELECT sha256, size FROM model_artifacts WHERE version_id = $1',
      [versionId],
    );
    return result.rows.at(0) ?? null;
  }
}
