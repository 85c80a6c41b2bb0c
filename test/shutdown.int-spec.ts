import type { INestApplication } from '@nestjs/common';
import type { AppConfig } from '../src/config/config';
import { ApiKeyService } from '../src/modules/auth/api-key.service';
import { CanaryJudge } from '../src/modules/experiments/canary.judge';
import { ExperimentService } from '../src/modules/experiments/experiment.service';
import { EventPartitionsRepository } from '../src/modules/ingest/event-partitions.repository';
import { ServedLogRepository } from '../src/modules/served-log/served-log.repository';
import { ModelSwapService } from '../src/modules/serving/model-swap.service';
import { startApp } from './support/app';
import { graphql } from './support/graphql';
import { RANK_QUERY } from './support/ranking-helpers';
import { reportFigures, silenceableStores } from './support/fault-helpers';
import { sleep } from './support/ingest-helpers';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

const RANK_VARIABLES = { userId: 'shutdown-user', candidates: [{ itemId: 'shutdown-item' }] };

/**
 * Closes `app`, reports how long that took and expects it within the grace period. Bounded here
 * too, so that a close that never ends fails the test instead of hanging it.
 */
async function expectClosedInTime(app: INestApplication, config: AppConfig, which: string) {
  const limit = config.shutdownTimeoutMs;
  const closing = Date.now();
  await Promise.race([app.close(), sleep(limit + 5000)]);
  const closeMs = Date.now() - closing;
  reportFigures('shutdown-silent', { case: which, closeMs, shutdownTimeoutMs: limit });
  expect(closeMs).toBeLessThan(limit);
}

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
      await expectClosedInTime(app, config, which);
    } finally {
      await stores.cut();
    }
  });

  it('ends within its grace period while its partition upkeep waits on PostgreSQL (role ingest)', async () => {
    // A round that PostgreSQL never answers (a DDL behind a lock, a host gone): the repositories'
    // first statements held open, as the round at start runs them.
    const never = () => new Promise<never>(() => undefined);
    const held = [
      jest.spyOn(EventPartitionsRepository.prototype, 'partitionDays').mockImplementation(never),
      jest.spyOn(ServedLogRepository.prototype, 'ensurePartitions').mockImplementation(never),
    ];
    const app = await startApp({ ...context.config, role: 'ingest' });
    try {
      expect(held.every((spy) => spy.mock.calls.length > 0)).toBe(true);
      await expectClosedInTime(app, context.config, 'partition upkeep unanswered (role ingest)');
    } finally {
      for (const spy of held) spy.mockRestore();
    }
  });

  it('ends within its grace period while a canary judge pass waits on PostgreSQL (role api)', async () => {
    const running = jest
      .spyOn(ExperimentService.prototype, 'running')
      .mockImplementation(() => new Promise<never>(() => undefined));
    const app = await startApp({ ...context.config, role: 'api' });
    try {
      void app.get(CanaryJudge, { strict: false }).judge();
      expect(running).toHaveBeenCalled();
      await expectClosedInTime(app, context.config, 'canary judge unanswered (role api)');
    } finally {
      running.mockRestore();
    }
  });

  it('ends within its grace period with PostgreSQL silent and API keys used since their last record (role api)', async () => {
    const stores = await silenceableStores({
      ...context.config,
      role: 'api',
      auth: { ...context.config.auth, mode: 'api-key' },
    });
    const { config } = stores;
    const app = await startApp(config);
    try {
      const { key } = await app.get(ApiKeyService).create({ name: 'storefront', role: 'read' });
      const ranked = await graphql(app, RANK_QUERY, RANK_VARIABLES, { 'x-api-key': key });
      expect(ranked.errors).toBeUndefined();
      // The key's use is recorded at shutdown (and every minute): an UPDATE nobody answers.
      stores.silence({ postgres: true });
      await expectClosedInTime(app, config, 'postgres silent, API key use to record (role api)');
    } finally {
      await stores.cut();
    }
  });
});
