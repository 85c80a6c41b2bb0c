/** Where the integration tests find the real local stack (`npm run stack up`). */
export const TEST_STACK = {
  postgresAdminUrl:
    process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  /** PgBouncer in transaction mode in front of the same PostgreSQL (`npm run stack up`). */
  pgbouncerUrl: process.env.TEST_PGBOUNCER_URL ?? 'postgres://postgres@127.0.0.1:6432/postgres',
  redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  /** The local 3-master Redis Cluster `npm run stack up` starts. */
  redisClusterNodes:
    process.env.TEST_REDIS_CLUSTER_NODES ?? '127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103',
  kafkaBrokers: process.env.TEST_KAFKA_BROKERS ?? '127.0.0.1:9092',
  /** One template per jest run (its pid), so concurrent runs never drop each other's. */
  templateDatabase: process.env.RECSYS_TEST_TEMPLATE ?? `recsys_tpl_${process.pid}`,
};

/**
 * The two ways the service talks to Redis, as `createTestContext` overrides: the online-state and
 * ranking tests run against both (`describe.each(REDIS_MODES)`).
 */
export const REDIS_MODES = [
  { mode: 'standalone', env: {} },
  { mode: 'cluster', env: { REDIS_CLUSTER_NODES: TEST_STACK.redisClusterNodes } },
] as const;

/**
 * The two ways the service reaches PostgreSQL, as `createTestContext` overrides: directly, or its
 * queries through PgBouncer in transaction mode (PG_POOLER=transaction; the context then points
 * DATABASE_URL at the pooler and DATABASE_DIRECT_URL at PostgreSQL).
 */
export const POSTGRES_MODES = [
  { mode: 'direct', env: {} },
  { mode: 'pgbouncer', env: { PG_POOLER: 'transaction' } },
] as const;

/** Per-test database names carry their creation time so stale ones can be told apart. */
export function testDatabaseName(id: string): string {
  return `recsys_t_${Math.floor(Date.now() / 1000)}_${id}`;
}

/** Leftovers of interrupted runs: databases older than this are dropped at the next start. */
export const STALE_AFTER_SECONDS = 3 * 3600;

export function databaseUrl(name: string, server = TEST_STACK.postgresAdminUrl): string {
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}
