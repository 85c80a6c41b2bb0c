import { Pool, PoolClient } from 'pg';
import { AppConfig } from '../config/config';
import { Logger } from '../common/logger';

/**
 * Connections of the direct pool, opened on demand and closed when idle: the readiness ping, one
 * held session lock (training or embedding) and the embedding worker's LISTEN, at once.
 */
const DIRECT_POOL_MAX = 3;

/** The pool for ordinary queries (DATABASE_URL, PG_POOL_MAX connections). */
export function createPgPool(config: AppConfig['postgres'], logger: Logger): Pool {
  return pool(config.url, config.poolMax, config.statementTimeoutMs, 'recsys', logger);
}

/**
 * A small pool on DATABASE_DIRECT_URL for session-level work (advisory locks held across
 * transactions) and the readiness ping, apart from the query pool.
 */
export function createDirectPgPool(config: AppConfig['postgres'], logger: Logger): Pool {
  return pool(
    config.directUrl,
    DIRECT_POOL_MAX,
    config.statementTimeoutMs,
    'recsys-direct',
    logger,
  );
}

function pool(
  connectionString: string,
  max: number,
  statementTimeoutMs: number,
  applicationName: string,
  logger: Logger,
): Pool {
  const pool = new Pool({
    connectionString,
    max,
    statement_timeout: statementTimeoutMs || undefined,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    application_name: applicationName,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (error) => {
    logger.warn({ err: error }, 'postgres idle client error');
  });
  // A checked-out client (a transaction, the training lock) emits 'error' when its connection
  // dies, e.g. on a server restart; with no listener that would crash the process. Its queries
  // fail instead, and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      logger.warn({ err: error }, 'postgres connection lost');
    });
  });
  return pool;
}

/** Runs `work` in one transaction; a connection that failed mid-transaction is discarded. */
export async function inTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}
