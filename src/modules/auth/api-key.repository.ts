import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import { PG_POOL } from '../../infra/tokens';
import type { ApiKeyRole } from './api-key';

/** NOTIFY channel of the api_keys trigger; the payload is the changed key's hash in hex. */
export const API_KEYS_CHANNEL = 'api_keys_changed';

export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  readonly role: ApiKeyRole;
  /** Public part of the key (`rk_1a2b3c4d`). */
  readonly prefix: string;
  /** Per-key override of the role's rate limit; null = the role's default. */
  readonly rateLimitPerSecond: number | null;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
  readonly lastUsedAt: Date | null;
}

export interface NewApiKey {
  readonly name: string;
  readonly role: ApiKeyRole;
  readonly prefix: string;
  readonly hash: Buffer;
  readonly rateLimitPerSecond: number | null;
}

export type ApiKeySelector = { readonly name: string } | { readonly id: string };

interface ApiKeyRow {
  id: string;
  name: string;
  role: ApiKeyRole;
  key_prefix: string;
  rate_limit_per_second: number | null;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const COLUMNS =
  'id::text, name, role, key_prefix, rate_limit_per_second, created_at, revoked_at, last_used_at';

const toRecord = (row: ApiKeyRow): ApiKeyRecord => ({
  id: row.id,
  name: row.name,
  role: row.role,
  prefix: row.key_prefix,
  rateLimitPerSecond: row.rate_limit_per_second,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
  lastUsedAt: row.last_used_at,
});

@Injectable()
export class ApiKeyRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /** The live (not revoked) key with this hash. */
  async findLive(hash: Buffer): Promise<ApiKeyRecord | null> {
    const { rows } = await this.pool.query<ApiKeyRow>(
      `SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
      [hash],
    );
    const row = rows.at(0);
    return row === undefined ? null : toRecord(row);
  }

  /** Every live key with its hash (hex), for a replica's start: a handful of rows. */
  async allLive(): Promise<{ hash: string; record: ApiKeyRecord }[]> {
    const { rows } = await this.pool.query<ApiKeyRow & { hash: string }>(
      `SELECT ${COLUMNS}, encode(key_hash, 'hex') AS hash FROM api_keys WHERE revoked_at IS NULL`,
    );
    return rows.map((row) => ({ hash: row.hash, record: toRecord(row) }));
  }

  /** Stores the key; null when a live key already has this name. */
  async insert(key: NewApiKey): Promise<ApiKeyRecord | null> {
    const { rows } = await this.pool.query<ApiKeyRow>(
      `INSERT INTO api_keys (name, role, key_hash, key_prefix, rate_limit_per_second)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
       RETURNING ${COLUMNS}`,
      [key.name, key.role, key.hash, key.prefix, key.rateLimitPerSecond],
    );
    const row = rows.at(0);
    return row === undefined ? null : toRecord(row);
  }

  /** Revokes the live key; null when there is none. The table's trigger notifies every replica. */
  async revoke(selector: ApiKeySelector): Promise<ApiKeyRecord | null> {
    const [match, value] =
      'name' in selector ? ['name = $1', selector.name] : ['id = $1::bigint', selector.id];
    const { rows } = await this.pool.query<ApiKeyRow>(
      `UPDATE api_keys SET revoked_at = now() WHERE ${match} AND revoked_at IS NULL
       RETURNING ${COLUMNS}`,
      [value],
    );
    const row = rows.at(0);
    return row === undefined ? null : toRecord(row);
  }

  /** Every key, revoked ones included, oldest first. */
  async list(): Promise<ApiKeyRecord[]> {
    const { rows } = await this.pool.query<ApiKeyRow>(
      `SELECT ${COLUMNS} FROM api_keys ORDER BY id`,
    );
    return rows.map(toRecord);
  }

  async markUsed(ids: readonly string[], at: Date): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      'UPDATE api_keys SET last_used_at = greatest(last_used_at, $2) WHERE id = ANY($1::bigint[])',
      [ids, at],
    );
  }
}
