import { Client, Pool, PoolClient } from 'pg';
import { AppConfig } from '../config/config';
import { Logger } from '../common/logger';

/**
 * Connections of the direct pool, opened on demand and closed when idle: the readiness ping and
 * the held session locks (training, embedding: both in role `all`), at once.
 */
const DIRECT_POOL_MAX = 3;

/**
 * How long after the server's statement_timeout the client gives up on a query itself: only a
 * server that answers nothing (its host gone without a reset) gets there, where the server's timeout
 * cannot fire and the kernel would wait about 15 minutes; the pool then discards the connection.
 */
const CLIENT_TIMEOUT_GRACE_MS = 2000;
/** node-postgres's error for a query past its client-side `query_timeout`. */
const QUERY_READ_TIMEOUT = 'Query read timeout';

/**
 * The pool for ordinary queries (DATABASE_URL, PG_POOL_MAX connections). Through a
 * transaction-mode pooler (PG_POOLER=transaction) no session setting may go at connect (PgBouncer
 * refuses a `statement_timeout` startup parameter, and a server session serves many clients): the
 * client gives up on a query after the timeout instead, and the pool discards its connection. The
 * server's own timeout then comes from the role's settings, checked once here.
 */
export function createPgPool(config: AppConfig['postgres'], logger: Logger): Pool {
  const pooled = config.pooler === 'transaction';
  const timeoutMs = config.statementTimeoutMs;
  const timeouts = pooled ? { queryTimeoutMs: timeoutMs } : { statementTimeoutMs: timeoutMs };
  const queries = pool(config.url, config.poolMax, timeouts, 'recsys', logger);
  if (pooled && timeoutMs > 0) void warnOnLongerServerTimeout(queries, timeoutMs, logger);
  return queries;
}

/**
 * A small pool on DATABASE_DIRECT_URL for session-level work (advisory locks held across
 * transactions) and the readiness ping, apart from the query pool.
 */
export function createDirectPgPool(config: AppConfig['postgres'], logger: Logger): Pool {
  return pool(
    config.directUrl,
    DIRECT_POOL_MAX,
    { statementTimeoutMs: config.statementTimeoutMs },
    'recsys-direct',
    logger,
  );
}

/**
 * One connection on DATABASE_DIRECT_URL for work on a thread of its own (a pool is per thread),
 * unconnected; its owner connects and ends it.
 */
export function createPgClient(config: AppConfig['postgres'], applicationName: string): Client {
  const client = new Client({
    connectionString: config.directUrl,
    statement_timeout: config.statementTimeoutMs || undefined,
    query_timeout: clientTimeoutMs(config.statementTimeoutMs) || undefined,
    connectionTimeoutMillis: 5000,
    application_name: applicationName,
  });
  // A lost connection fails the query running on it; it must not crash the thread.
  client.on('error', () => undefined);
  return client;
}

/** The client's own timeout behind a server-side one of `statementTimeoutMs` (0: none). */
function clientTimeoutMs(statementTimeoutMs: number): number {
  return statementTimeoutMs > 0 ? statementTimeoutMs + CLIENT_TIMEOUT_GRACE_MS : 0;
}

/**
 * Timeouts in ms, 0 for none: the server's (sent at connect), or the client's own; a server-side
 * timeout gets the client's CLIENT_TIMEOUT_GRACE_MS after it.
 */
interface Timeouts {
  readonly statementTimeoutMs?: number;
  readonly queryTimeoutMs?: number;
}

function pool(
  connectionString: string,
  max: number,
  { statementTimeoutMs = 0, queryTimeoutMs = 0 }: Timeouts,
  applicationName: string,
  logger: Logger,
): Pool {
  const pool = new Pool({
    connectionString,
    max,
    statement_timeout: statementTimeoutMs || undefined,
    query_timeout: queryTimeoutMs || clientTimeoutMs(statementTimeoutMs) || undefined,
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
  // A query the client gave up on means a server that answers nothing (its host gone without a
  // reset): the idle connections to it are as silent, and each would cost a query as long.
  pool.on('release', (error) => {
    if (isReadTimeout(error)) dropIdleConnections(pool);
  });
  return pool;
}

function isReadTimeout(error: unknown): error is Error {
  return error instanceof Error && error.message === QUERY_READ_TIMEOUT;
}

/** Ends the pool's idle connections; new ones replace them on demand. */
function dropIdleConnections(pool: Pool): void {
  // The pool has no call for it: each connect takes an idle connection (while there is one) and
  // a release with `true` ends it.
  for (let idle = pool.idleCount; idle > 0; idle--) {
    pool.connect().then(
      (client) => {
        client.release(true);
      },
      () => undefined,
    );
  }
}

/**
 * Warns when the server-side `statement_timeout` seen through the pooler is unset or longer than
 * `timeoutMs`: the client gives up on such a query, but PostgreSQL keeps running it.
 */
async function warnOnLongerServerTimeout(
  queries: Pool,
  timeoutMs: number,
  logger: Logger,
): Promise<void> {
  try {
    const { rows } = await queries.query<{ ms: string }>(
      "SELECT setting AS ms FROM pg_settings WHERE name = 'statement_timeout'",
    );
    const serverMs = Number(rows[0]?.ms ?? 0);
    if (serverMs > 0 && serverMs <= timeoutMs) return;
    logger.warn(
      { serverStatementTimeoutMs: serverMs, PG_STATEMENT_TIMEOUT_MS: timeoutMs },
      `PG_POOLER=transaction: the server-side statement_timeout through the pooler is ${serverMs === 0 ? 'unset' : `${serverMs} ms`}; ` +
        `queries are abandoned after ${timeoutMs} ms but keep running in PostgreSQL: ` +
        `ALTER ROLE <the pooler's user> SET statement_timeout = '${timeoutMs}ms'`,
    );
  } catch (error) {
    logger.warn(
      { err: error },
      'PG_POOLER=transaction: cannot read the server-side statement_timeout',
    );
  }
}

/** Runs `work` in one transaction; a connection that failed mid-transaction is discarded. */
export async function inTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // Set when the connection must be discarded: the pool hears why.
  let broken: Error | boolean = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A query the client gave up on leaves its connection silent: a ROLLBACK would wait as long.
    if (isReadTimeout(error)) {
      broken = error;
    } else {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
