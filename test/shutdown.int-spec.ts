import { ModelSwapService } from '../src/modules/serving/model-swap.service';
import { startApp } from './support/app';
import { reportFigures, silenceableStores } from './support/fault-helpers';
import { sleep } from './support/ingest-helpers';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

/**
 * A dependency whose host is gone without a reset answers nothing, and a clean close of its
 * connections (a PostgreSQL Terminate, a Redis QUIT) would wait until the kernel gives up on them.
 * A process asked to stop must still stop within its grace period (SHUTDOWN_TIMEOUT_MS), or it
 * exits with an error and skips what was left to close. Kafka frozen as well:
 * faults-broker.int-spec.ts.
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
    const stores = await silenceableStores({ ...context.config, role: 'all' });
    const { config } = stores;
    const app = await startApp(config);
    try {
      // Every background loop started and holding its connections.
      await sleep(3000);
      // Its reads of the registry go out just before the silence, and are never answered.
      if (which.includes('refresh')) void app.get(ModelSwapService).refresh('test');
      stores.silence({ postgres: which.includes('postgres'), redis: which.includes('redis') });
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
      await stores.cut();
    }
  });
});
