import { INestApplicationContext } from '@nestjs/common';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import {
  faultEvents,
  groupState,
  ingestCounts,
  privateBrokerContext,
  reportFigures,
  settledExactlyOnce,
  silenceableStores,
  SteadyProducer,
  storedFaultEvents,
  topicMessages,
} from './support/fault-helpers';
import { query, sleep, startIngest } from './support/ingest-helpers';
import { startApp } from './support/app';
import { PrivateKafka } from './support/private-kafka';
import type { TestContext } from './support/test-context';
import { eventually } from './support/poll';

jest.setTimeout(300_000);

const SHAPE = { users: 100, items: 500 };

/**
 * Issue #8 and after: a private broker (never the shared one), restarted, then frozen, while
 * ingest runs; every event must be stored exactly once.
 */
describe('Kafka broker faults', () => {
  const kafka = new PrivateKafka();
  let context: TestContext | undefined;
  /** The ingest of the running test; each test closes the one before. */
  let app: INestApplicationContext | undefined;
  const startFreshIngest = async (
    ...args: Parameters<typeof startIngest>
  ): Promise<INestApplicationContext> => {
    const previous = app;
    app = undefined;
    await previous?.close();
    app = await startIngest(...args);
    return app;
  };

  beforeAll(async () => {
    context = await privateBrokerContext(kafka);
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

  /**
   * A broker restart in the middle of a 100,000-event stream: stopped cleanly and started again
   * on the same data while the producer keeps retrying and the ingest consumer keeps running.
   */
  describe('restarted during a 100,000-event stream', () => {
    const EVENTS = 100_000;
    /** The broker restarts once this many events are acknowledged. */
    const RESTART_AFTER = 30_000;

    it('stores every event exactly once and the online state counts each once', async () => {
      if (context === undefined) throw new Error('no test context');
      const { config } = context;
      const url = config.postgres.url;
      // Quiet: kafkajs logs every refused connection while the broker is down.
      const ingest = await startFreshIngest(config, undefined, 'fatal');
      const started = Date.now();
      const producer = new SteadyProducer(config, TOPICS.events);
      const produced = producer.start(faultEvents('b', EVENTS, SHAPE), {
        // At most 10,000 events/s: the stream spans the restart.
        batch: 1000,
        pauseMs: 100,
        deadlineMs: 150_000,
      });
      await producer.acknowledged(RESTART_AFTER);
      const producedAtFault = producer.stats.produced;
      const membersBefore = (await groupState(config, config.ingest.eventsGroupId)).members;
      const stopAt = Date.now();
      await kafka.stop();
      const stoppedAt = Date.now();
      const storedAtStop = (await storedFaultEvents(url, 'b', EVENTS)).rows;
      producer.markRestart();
      await kafka.start();
      const upAt = Date.now();
      const storedWhileDown = (await storedFaultEvents(url, 'b', EVENTS)).rows - storedAtStop;

      // The consumer is back once the group is stable again (with a new member, or with the old one
      // when the coordinator reloaded the group before its session expired), and ingest is back once
      // the first event produced after the restart is stored.
      const [rejoined, firstStored] = await Promise.all([
        eventually(() => groupState(config, config.ingest.eventsGroupId), 120_000, {
          what: 'the consumer group to settle after the restart',
          until: (group) => group.state === 'Stable' && group.members.length > 0,
          intervalMs: 250,
        }),
        eventually(
          async () => {
            const index = producer.stats.firstIndexAfterMark;
            if (index === undefined) return false;
            const rows = await query<{ n: string }>(
              url,
              'SELECT count(*) AS n FROM events WHERE event_id = $1',
              [`b-${index}`],
            );
            return rows.at(0)?.n === '1';
          },
          120_000,
          { what: 'the first event produced after the restart', until: (found) => found },
        ),
      ]);
      expect(await produced).toBeUndefined();
      const producedAt = Date.now();
      const settled = await settledExactlyOnce(config, 'b', EVENTS, SHAPE, 120_000);

      const inTopic = await topicMessages(config, TOPICS.events);
      const dlq = await topicMessages(config, TOPICS.eventsDlq);
      const counts = await ingestCounts(ingest, TOPICS.events);
      expect(producer.stats.produced).toBe(EVENTS);
      expect(dlq).toBe(0);
      expect(counts.dead_lettered ?? 0).toBe(0);
      reportFigures('kafka-broker-restart', {
        produced: producer.stats.produced,
        messagesInTopic: inTopic,
        resentByProducer: producer.stats.resent,
        failedSends: producer.stats.failedSends,
        stored: settled.stored.rows,
        storedDistinct: settled.stored.distinct,
        duplicatesDroppedByIngest: counts.duplicate ?? 0,
        deadLettered: dlq,
        redisInteractions: settled.online.interactions,
        redisClicks: settled.online.clicks,
        producedBeforeStop: producedAtFault,
        storedAtStop,
        storedWhileDown,
        brokerStopMs: stoppedAt - stopAt,
        brokerDowntimeMs: upAt - stopAt,
        producerLongestStallMs: producer.stats.longestStallMs,
        sessionTimeoutMs: config.ingest.sessionTimeoutMs,
        groupSettledAfterUpMs: rejoined.at - upAt,
        sameMemberAfterRestart: rejoined.value.members.some((member) =>
          membersBefore.includes(member),
        ),
        ingestRecoveryAfterUpMs: firstStored.at - upAt,
        produceDoneAfterUpMs: producedAt - upAt,
        allStoredAfterUpMs: settled.storedAt - upAt,
        totalMs: settled.storedAt - started,
      });
    });
  });

  /**
   * A broker that hangs instead of going away (SIGSTOP: its connections stay open, nothing is
   * answered). Ingest must store every event once after it answers again, and a shutdown meanwhile
   * must end within its grace period instead of waiting on the broker.
   */
  describe('frozen', () => {
    const EVENTS = 20_000;
    /** The broker freezes once this many events are acknowledged. */
    const FREEZE_AFTER = 6_000;
    /** Longer than the clients' request timeout (10 s) and the group's session timeout (6 s). */
    const FROZEN_MS = 40_000;

    it('stores every event exactly once after the broker answers again', async () => {
      if (context === undefined) throw new Error('no test context');
      const { config } = context;
      const url = config.postgres.url;
      // Quiet: kafkajs logs every request that times out while the broker is frozen.
      const ingest = await startFreshIngest(config, undefined, 'fatal');
      const producer = new SteadyProducer(config, TOPICS.events);
      const produced = producer.start(faultEvents('f', EVENTS, SHAPE), {
        // At most 5,000 events/s: the stream spans the freeze.
        batch: 500,
        pauseMs: 100,
        deadlineMs: 200_000,
      });
      await producer.acknowledged(FREEZE_AFTER);
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
      // The ingest of the frozen stream above, or one started here when this test runs alone.
      const running = (app ??= await startIngest(context.config, undefined, 'fatal'));
      await sleep(3000);
      await kafka.freeze();
      // Long enough for the consumers' fetches to be waiting on the broker.
      await sleep(3000);
      const closing = Date.now();
      app = undefined;
      await running.close();
      const closeMs = Date.now() - closing;
      reportFigures('kafka-broker-frozen-shutdown', { closeMs, shutdownTimeoutMs });
      // The consumers' leave, then the Kafka client's close: each a step, and room left after them.
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

    /**
     * Every step that waits on a dependency waits at most a fifth of the grace period; with all
     * of them waiting, the steps together took 10.3 and 12.3 s of a 10-s grace period (the process
     * would exit with an error): one deadline bounds them all.
     */
    it('shuts down within its grace period with the broker frozen and PostgreSQL and Redis silent (role all)', async () => {
      if (context === undefined) throw new Error('no test context');
      await kafka.thaw();
      const stores = await silenceableStores({ ...context.config, role: 'all' });
      const { shutdownTimeoutMs } = stores.config;
      const all = await startApp(stores.config, { role: 'all' });
      try {
        // Every consumer and background loop started and holding its connections.
        await sleep(4000);
        await kafka.freeze();
        stores.silence({ postgres: true, redis: true });
        // Long enough for the consumers' fetches to be waiting on the broker.
        await sleep(2000);
        const closing = Date.now();
        await all.close();
        const closeMs = Date.now() - closing;
        reportFigures('everything-silent-shutdown-all', { closeMs, shutdownTimeoutMs });
        // The modules' waits overlap, then the clients close at once: about two steps of a fifth
        // (8.0-9.0 s of 10 while each module waited after the one before).
        expect(closeMs).toBeLessThan(shutdownTimeoutMs / 2);
      } finally {
        await stores.cut();
      }
    });
  });
});
