import type { AppConfig } from '../src/config/config';
import { ModelSwapService } from '../src/modules/serving/model-swap.service';
import { startApp } from './support/app';
import { reportFigures } from './support/fault-helpers';
import { sleep } from './support/ingest-helpers';
import { TcpProxy } from './support/tcp-proxy';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

/**
 * A dependency whose host is gone without a reset answers nothing, and a clean close of its
 * connections (a PostgreSQL Terminate, a Redis QUIT) would wait until the kernel gives up on them.
 * A process asked to stop must still stop within its grace period (SHUTDOWN_TIMEOUT_MS), or it
 * exits with an error and skips what was left to close. Kafka frozen: faults-broker.int-spec.ts.
 */
describe('shutdown with a dependency silent', () => {
  let context: TestContext;

  beforeAll(async () => {
    context = await createTestContext();
    await context.createServiceTopics();
  });
  afterAll(async () => {
    await context.cleanup();
  });

  it.each([
    ['postgres silent'],
    ['redis silent'],
    ['postgres and redis silent'],
    ['postgres silent, a model refresh in flight'],
  ])('ends within its grace period, %s (role all)', async (which) => {
    const postgres = new TcpProxy('127.0.0.1', 5432);
    const redis = new TcpProxy('127.0.0.1', 6379);
    await Promise.all([postgres.start(), redis.start()]);
    const postgresUrl = new URL(context.config.postgres.url);
    postgresUrl.port = String(postgres.port);
    const redisUrl = new URL(context.config.redis.url);
    redisUrl.port = String(redis.port);
    const config: AppConfig = {
      ...context.config,
      role: 'all',
      postgres: {
        ...context.config.postgres,
        url: postgresUrl.toString(),
        directUrl: postgresUrl.toString(),
      },
      redis: { ...context.config.redis, url: redisUrl.toString() },
    };
    const app = await startApp(config);
    try {
      // Every background loop started and holding its connections.
      await sleep(3000);
      // Its reads of the registry go out just before the silence, and are never answered.
      if (which.includes('refresh')) void app.get(ModelSwapService).refresh('test');
      if (which.includes('postgres')) postgres.silence();
      if (which.includes('redis')) redis.silence();
      const closing = Date.now();
      await app.close();
      const closeMs = Date.now() - closing;
      reportFigures('shutdown-silent', {
        case: which,
        closeMs,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      });
      expect(closeMs).toBeLessThan(config.shutdownTimeoutMs);
    } finally {
      await Promise.all([postgres.cut(), redis.cut()]);
    }
  });
});
