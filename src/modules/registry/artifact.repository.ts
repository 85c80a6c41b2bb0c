import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { DatabaseError, Pool } from 'pg';
import { DomainError } from '../../common/errors';
import { PG_POOL } from '../../infra/tokens';
import type { ArtifactStore } from './registry.types';

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

  async get(versionId: string): Promise<Buffer> {
    const result = await this.pool.query<{ sha256: string; bytes: Buffer }>(
      'SELECT sha256, bytes FROM model_artifacts WHERE version_id = $1',
      [versionId],
    );
    const row = result.rows.at(0);
    if (!row) {
      throw new DomainError('NOT_FOUND', `version ${versionId} has no artifact`, { versionId });
    }
    const actual = sha256(row.bytes);
    if (actual !== row.sha256) {
      throw new DomainError('CONFLICT', `artifact of version ${versionId} fails its sha256 check`, {
        versionId,
        expected: row.sha256,
        actual,
      });
    }
    return row.bytes;
  }

  async stat(versionId: string): Promise<{ sha256: string; size: number } | null> {
    const result = await this.pool.query<{ sha256: string; size: number }>(
      'SELECT sha256, size FROM model_artifacts WHERE version_id = $1',
      [versionId],
    );
    return result.rows.at(0) ?? null;
  }
}
