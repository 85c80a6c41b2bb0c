/** Where the integration tests find the real local stack (`npm run stack up`). */
export const TEST_STACK = {
  postgresAdminUrl:
    process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  kafkaBrokers: process.env.TEST_KAFKA_BROKERS ?? '127.0.0.1:9092',
  templateDatabase: 'recsys_test_template',
};

export function databaseUrl(name: string): string {
  const url = new URL(TEST_STACK.postgresAdminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
