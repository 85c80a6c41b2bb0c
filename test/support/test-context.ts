import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Client, Pool } from 'pg';
import { createLogger } from '../../src/common/logger';
import { AppConfig, loadConfig } from '../../src/config/config';
import { provisionTopics } from '../../src/infra/kafka-topics';
import { createRedisClient } from '../../src/infra/redis';
import { serviceTopics } from '../../src/service-topics';
import { databaseUrl, TEST_STACK, testDatabaseName } from './stack';

export interface TestContext {
  readonly id: string;
  readonly config: AppConfig;
  /** Creates this context's topics (prefixed) on the real broker. */
  createTopics(topics: readonly { name: string; partitions?: number }[]): Promise<void>;
  /** Every topic the service reads or writes, one partition each, as `main.js topics` makes them. */
  createServiceTopics(): Promise<void>;
  cleanup(): Promise<void>;
}

/** The variables that point a child process at this context's database, Redis prefix and topics. */
export function contextEnv(config: AppConfig): Record<string, string> {
  return {
    DATABASE_URL: config.postgres.url,
    DATABASE_DIRECT_URL: config.postgres.directUrl,
    PG_POOLER: config.postgres.pooler,
    REDIS_URL: config.redis.url,
    REDIS_KEY_PREFIX: config.redis.keyPrefix,
    REDIS_CLUSTER_NODES: (config.redis.clusterNodes ?? [])
      .map(({ host, port }) => `${host}:${port}`)
      .join(','),
    KAFKA_BROKERS: config.kafka.brokers.join(','),
    KAFKA_TOPIC_PREFIX: config.kafka.topicPrefix,
    KAFKA_CLIENT_ID: config.kafka.clientId,
  };
}

/**
 * Isolation per test file: its own database cloned from the migrated template, its own Redis key
 * prefix and its own Kafka topic prefix, all on the real local stack. `PG_POOLER: 'transaction'`
 * in `overrides` sends its queries through the stack's PgBouncer (POSTGRES_MODES).
 */
export async function createTestContext(
  overrides: Record<string, string> = {},
): Promise<TestContext> {
  const id = randomBytes(4).toString('hex');
  const database = testDatabaseName(id);
  const admin = new Client({ connectionString: TEST_STACK.postgresAdminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database} TEMPLATE ${TEST_STACK.templateDatabase}`);
  await admin.end();

  const pooled = overrides.PG_POOLER === 'transaction';
  const config = loadConfig({
    DATABASE_URL: databaseUrl(database, pooled ? TEST_STACK.pgbouncerUrl : undefined),
    ...(pooled ? { DATABASE_DIRECT_URL: databaseUrl(database) } : {}),
    REDIS_URL: TEST_STACK.redisUrl,
    REDIS_KEY_PREFIX: `t:${id}:`,
    KAFKA_BROKERS: TEST_STACK.kafkaBrokers,
    KAFKA_TOPIC_PREFIX: `t${id}.`,
    KAFKA_CLIENT_ID: `test-${id}`,
    LOG_LEVEL: 'warn',
    PORT: '0',
    HOST: '127.0.0.1',
    // Tests of other features send no key; test/auth.int-spec.ts sets AUTH_MODE=api-key.
    AUTH_MODE: 'off',
    ...overrides,
  });
  const kafka = new Kafka({
    clientId: `test-admin-${id}`,
    brokers: [...config.kafka.brokers],
    logLevel: logLevel.NOTHING,
  });
  const created: string[] = [];
  const createTopics: TestContext['createTopics'] = async (topics) => {
    const specs = topics.map((topic) => ({ name: topic.name, partitions: topic.partitions ?? 1 }));
    const provisioned = await provisionTopics(config.kafka, specs, createLogger('warn'));
    created.push(...provisioned.filter((topic) => topic.created).map((topic) => topic.name));
  };

  return {
    id,
    config,
    createTopics,
    createServiceTopics: () =>
      createTopics(serviceTopics({ ...config.kafka.newTopics, partitions: 1 })),
    async cleanup() {
      if (created.length > 0) {
        const admin = kafka.admin();
        await admin.connect();
        await admin.deleteTopics({ topics: created }).catch(() => undefined);
        await admin.disconnect();
      }
      // The stack's Redis of the context's mode (every master of a cluster), even when a test
      // pointed it elsewhere.
      const stackRedis = loadConfig({
        REDIS_URL: TEST_STACK.redisUrl,
        REDIS_KEY_PREFIX: config.redis.keyPrefix,
        ...(config.redis.clusterNodes === null
          ? {}
          : { REDIS_CLUSTER_NODES: TEST_STACK.redisClusterNodes }),
      }).redis;
      const redis = createRedisClient(stackRedis, createLogger('silent'));
      await redis.connect();
      for await (const keys of redis.scan(`${config.redis.keyPrefix}*`, { count: 500 })) {
        await redis.unlinkAll(keys);
      }
      await redis.close();
      const pg = new Client({ connectionString: TEST_STACK.postgresAdminUrl });
      await pg.connect();
      await pg.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await pg.end();
    },
  };
}

/** A describe block's own context and a pool on its database: created before its tests, closed after. */
export function contextWithPool(overrides: Record<string, string> = {}): {
  readonly context: TestContext;
  readonly pool: Pool;
} {
  let context: TestContext | undefined;
  let pool: Pool | undefined;
  beforeAll(async () => {
    context = await createTestContext(overrides);
    pool = new Pool({ connectionString: context.config.postgres.url });
  });
  afterAll(async () => {
    await pool?.end();
    await context?.cleanup();
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('used outside the tests of its describe block');
    return value;
  };
  return {
    get context() {
      return ready(context);
    },
    get pool() {
      return ready(pool);
    },
  };
}
