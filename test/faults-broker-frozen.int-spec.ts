import { INestApplicationContext } from '@nestjs/common';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import {
  faultEvents,
  ingestCounts,
  reportFigures,
  settledExactlyOnce,
  SteadyProducer,
  storedFaultEvents,
} from './support/fault-helpers';
import { sleep, startIngest } from './support/ingest-helpers';
import { startApp } from './support/app';
import { PrivateKafka } from './support/private-kafka';
import { createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';

jest.setTimeout(300_000);

const EVENTS = 20_000;
const SHAPE = { users: 100, items: 500 };
/** The broker freezes once this many events are acknowledged. */
const FREEZE_AFTER = 6_000;
/** Longer than the clients' request timeout (10 s) and the group's session timeout (6 s). */
const FROZEN_MS = 40_000;

/**
 * A broker that hangs instead of going away (SIGSTOP: its connections stay open, nothing is
 * answered). Ingest must store every event once after it answers again, and a shutdown meanwhile
 * must end within its grace period instead of waiting on the broker.
 */
describe('Kafka broker frozen', () => {
  const kafka = new PrivateKafka();
  let context: TestContext | undefined;
  let app: INestApplicationContext | undefined;

  beforeAll(async () => {
    // Fails the file with the broker log's path when the private broker cannot start.
    await kafka.start();
    context = await createTestContext({
      KAFKA_BROKERS: kafka.brokers,
      INGEST_RETRY_INITIAL_MS: '100',
      INGEST_RETRY_MAX_MS: '1000',
      INGEST_SESSION_TIMEOUT_MS: '6000',
      ONLINE_CATCH_UP_INTERVAL_MS: '500',
    });
    const topics = [
      { name: TOPICS.events, partitions: 3 },
      { name: TOPICS.items },
      { name: TOPICS.eventsDlq },
      { name: TOPICS.itemsDlq },
    ];
    // A broker that just started may not report the new partitions' leaders yet.
    for (let attempt = 1; ; attempt++) {
      try {
        await context.createTopics(topics);
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
        await sleep(1000);
      }
    }
  }, 180_000);

  afterAll(async () => {
    try {
      await kafka.thaw().catch(() => undefined);
      await app?.close();
      await context?.cleanup();
    } finally {
      await kafka.destroy();
    }
  }, 120_000);

  it('stores every event exactly once after the broker answers again', async () => {
    if (context === undefined) throw new Error('no test context');
    const { config } = context;
    const url = config.postgres.url;
    const ingest = await startIngest(config, undefined, 'warn');
    app = ingest;
    const producer = new SteadyProducer(config, TOPICS.events);
    const producing = producer.run(faultEvents('f', EVENTS, SHAPE), {
      // At most 5,000 events/s: the stream spans the freeze.
      batch: 500,
      pauseMs: 100,
      deadlineMs: 200_000,
    });
    // A failed stream must fail the test, not leave an unhandled rejection behind.
    const produced = producing.then(
      () => undefined,
      (error: unknown) => error,
    );
    await eventually(() => Promise.resolve(producer.stats.produced), 60_000, {
      what: `${FREEZE_AFTER} events produced`,
      until: (count) => count >= FREEZE_AFTER,
      intervalMs: 10,
    });
    await kafka.freeze();
    const frozenAt = Date.now();
    const storedAtFreeze = (await storedFaultEvents(url, 'f', EVENTS)).rows;
    await sleep(FROZEN_MS);
    const storedWhileFrozen = (await storedFaultEvents(url, 'f', EVENTS)).rows - storedAtFreeze;
    producer.markRestart();
    await kafka.thaw();
    const thawedAt = Date.now();
    const firstStored = await eventually(
      async () => {
        const index = producer.stats.firstIndexAfterMark;
        if (index === undefined) return false;
        const rows = await storedFaultEvents(url, 'f', EVENTS);
        return rows.rows > index;
      },
      150_000,
      { what: 'an event produced after the thaw', until: (found) => found },
    );
    expect(await produced).toBeUndefined();
    const settled = await settledExactlyOnce(config, 'f', EVENTS, SHAPE, 150_000);
    const counts = await ingestCounts(ingest, TOPICS.events);
    expect(counts.dead_lettered ?? 0).toBe(0);
    reportFigures('kafka-broker-frozen', {
      frozenMs: thawedAt - frozenAt,
      storedAtFreeze,
      storedWhileFrozen,
      producerLongestStallMs: producer.stats.longestStallMs,
      resentByProducer: producer.stats.resent,
      firstSendAfterThawMs: (producer.stats.firstSendAfterMarkAt ?? NaN) - thawedAt,
      ingestRecoveryAfterThawMs: firstStored.at - thawedAt,
      allStoredAfterThawMs: settled.storedAt - thawedAt,
      duplicatesDroppedByIngest: counts.duplicate ?? 0,
    });
  });

  it('keeps an api replica ready, answering at once, while the broker is frozen', async () => {
    if (context === undefined) throw new Error('no test context');
    const api = await startApp(context.config, { role: 'api' });
    const ready = async () => {
      const started = Date.now();
      const response = await api.inject({ method: 'GET', url: '/health/ready' });
      const checks = response.json<{ checks: { name: string; ok: boolean }[] }>().checks;
      return {
        status: response.statusCode,
        ms: Date.now() - started,
        kafkaOk: checks.find((check) => check.name === 'kafka')?.ok,
      };
    };
    try {
      expect(await ready()).toMatchObject({ status: 200, kafkaOk: true });
      await kafka.freeze();
      // Past the readiness cache (1 s): each probe below runs its checks.
      await sleep(1100);
      const first = await ready();
      await sleep(1100);
      const second = await ready();
      reportFigures('kafka-broker-frozen-readiness', { first, second });
      for (const probe of [first, second]) {
        // Not needed by the api role: reported, neither failing nor holding the probe.
        expect(probe).toMatchObject({ status: 200, kafkaOk: false });
        expect(probe.ms).toBeLessThan(1000);
      }
    } finally {
      await kafka.thaw();
      await api.close();
    }
  });

  it('shuts down within its grace period while the broker is frozen', async () => {
    if (context === undefined) throw new Error('no test context');
    const { shutdownTimeoutMs } = context.config;
    // Running since the test above, or started here when this test runs alone.
    const running = (app ??= await startIngest(context.config, undefined, 'warn'));
    await sleep(3000);
    await kafka.freeze();
    // Long enough for the consumers' fetches to be waiting on the broker.
    await sleep(3000);
    const closing = Date.now();
    app = undefined;
    await running.close();
    const closeMs = Date.now() - closing;
    reportFigures('kafka-broker-frozen-shutdown', { closeMs, shutdownTimeoutMs });
    // Redis and PostgreSQL close after Kafka: most of the grace period must be left for them.
    expect(closeMs).toBeLessThan(shutdownTimeoutMs * 0.7);
  });

  it('shuts down within its grace period when the broker froze before it started (role all)', async () => {
    if (context === undefined) throw new Error('no test context');
    const { shutdownTimeoutMs } = context.config;
    await kafka.freeze();
    const all = await startApp(context.config, { role: 'all' });
    // The consumers' first start attempts are waiting on the broker.
    await sleep(1000);
    const closing = Date.now();
    await all.close();
    const closeMs = Date.now() - closing;
    reportFigures('kafka-broker-frozen-shutdown-all', { closeMs, shutdownTimeoutMs });
    expect(closeMs).toBeLessThan(shutdownTimeoutMs * 0.7);
  });
});
