/** Where the integration tests find the real local stack (`npm run stack up`). */
export const TEST_STACK = {
  postgresAdminUrl:
    process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  kafkaBrokers: process.env.TEST_KAFKA_BROKERS ?? '127.0.0.1:9092',
  /** One template per jest run (its pid), so concurrent runs never drop each other's. */
  templateDatabase: process.env.RECSYS_TEST_TEMPLATE ?? `recsys_tpl_${process.pid}`,
};

/** Per-test database names carry their creation time so stale ones can be told apart. */
export function testDatabaseName(id: string): string {
  return `recsys_t_${Math.floor(Date.now() / 1000)}_${id}`;
}

/** Leftovers of interrupted runs: databases older than this are dropped at the next start. */
export const STALE_AFTER_SECONDS = 3 * 3600;

export function databaseUrl(name: string): string {
  const url = new URL(TEST_STACK.postgresAdminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
