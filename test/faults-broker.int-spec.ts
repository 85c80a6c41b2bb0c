import { INestApplicationContext } from '@nestjs/common';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import {
  faultEvents,
  groupState,
  ingestCounts,
  reportFigures,
  settledExactlyOnce,
  SteadyProducer,
  storedFaultEvents,
  topicMessages,
} from './support/fault-helpers';
import { query, sleep, startIngest } from './support/ingest-helpers';
import { PrivateKafka } from './support/private-kafka';
import { createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';

jest.setTimeout(240_000);

const EVENTS = 100_000;
const SHAPE = { users: 100, items: 500 };
/** The broker restarts once this many events are acknowledged. */
const RESTART_AFTER = 30_000;

/**
 * Issue #8: a broker restart in the middle of a 100,000-event stream. A private broker (never the
 * shared one) is stopped cleanly and started again on the same data while the producer keeps
 * retrying and the ingest consumer keeps running; every event must be stored exactly once.
 */
describe('Kafka broker restarted during a 100,000-event stream', () => {
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
      // The minimum: after a restart the group waits this long for the dead pre-restart member.
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
      await app?.close();
      await context?.cleanup();
    } finally {
      await kafka.destroy();
    }
  }, 120_000);

  it('stores every event exactly once and the online state counts each once', async () => {
    if (context === undefined) throw new Error('no test context');
    const { config } = context;
    const url = config.postgres.url;
    // Quiet: kafkajs logs every refused connection while the broker is down.
    const ingest = await startIngest(config, undefined, 'fatal');
    app = ingest;
    const started = Date.now();
    const producer = new SteadyProducer(config, TOPICS.events);
    const producing = producer.run(faultEvents('b', EVENTS, SHAPE), {
      // At most 10,000 events/s: the stream spans the restart.
      batch: 1000,
      pauseMs: 100,
      deadlineMs: 150_000,
    });
    // A failed stream must fail the test, not leave an unhandled rejection behind.
    const produced = producing.then(
      () => undefined,
      (error: unknown) => error,
    );

    await eventually(() => Promise.resolve(producer.stats.produced), 60_000, {
      what: `${RESTART_AFTER} events produced`,
      until: (count) => count >= RESTART_AFTER,
      intervalMs: 10,
    });
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
