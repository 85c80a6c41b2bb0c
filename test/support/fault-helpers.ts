import { INestApplicationContext } from '@nestjs/common';
import { Producer } from 'kafkajs';
import { createClient } from 'redis';
import type { AppConfig } from '../../src/config/config';
import { onlineKeys, parsePopularity } from '../../src/modules/online-state/online-state.schema';
import { Metrics } from '../../src/modules/metrics/metrics.registry';
import { TOPICS } from '../../src/modules/ingest/ingest.service';
import { eventMessage, userEvent } from './factories';
import { kafkaFor, query, sleep } from './ingest-helpers';
import { eventually } from './poll';
import { TcpProxy } from './tcp-proxy';
import type { PrivateKafka } from './private-kafka';
import { createTestContext, TestContext } from './test-context';

/** One JSON line with a fault test's figures (the closing note quotes them). */
export function reportFigures(fault: string, figures: Record<string, unknown>): void {
  process.stdout.write(`FAULT-FIGURES ${JSON.stringify({ fault, ...figures })}\n`);
}

/**
 * A test context on `kafka`, a private broker started here (failing with its log's path when it
 * cannot start), with the ingest topics, and the settings that let ingest recover fast from a
 * broker fault.
 */
export async function privateBrokerContext(kafka: PrivateKafka): Promise<TestContext> {
  await kafka.start();
  const context = await createTestContext({
    KAFKA_BROKERS: kafka.brokers,
    INGEST_RETRY_INITIAL_MS: '100',
    INGEST_RETRY_MAX_MS: '1000',
    // The minimum: after a fault the group waits this long for a member that is gone.
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
      return context;
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(1000);
    }
  }
}

/** Click events with ids `<prefix>-<i>`, spread over `users` users and `items` items, one timestamp. */
export function faultEvents(
  prefix: string,
  count: number,
  shape: { users: number; items: number },
): { key: string; value: string }[] {
  return Array.from({ length: count }, (_, i) =>
    eventMessage(
      userEvent({
        eventId: `${prefix}-${i}`,
        userId: `${prefix}-u${i % shape.users}`,
        itemId: `${prefix}-i${i % shape.items}`,
        type: 'click',
        // One timestamp: decayed Redis counts stay exact integers.
        timestamp: '2025-01-01T00:00:00.000Z',
      }),
    ),
  );
}

export interface StreamStats {
  /** Distinct events the producer got acknowledged. */
  produced: number;
  /** Messages sent again after a failed send (may be stored twice in Kafka). */
  resent: number;
  failedSends: number;
  /** When the first send after `markRestart()` succeeded. */
  firstSendAfterMarkAt: number | undefined;
  /** Index of the first event acknowledged after `markRestart()`. */
  firstIndexAfterMark: number | undefined;
  /** Longest time between two acknowledged sends: the outage as the producer saw it. */
  longestStallMs: number;
}

/**
 * Produces `messages` in batches at a steady pace to a prefixed topic; a failed batch is retried
 * until `deadline` (an upstream that keeps going through broker outages), so a batch may land twice.
 */
export class SteadyProducer {
  readonly stats: StreamStats = {
    produced: 0,
    resent: 0,
    failedSends: 0,
    firstSendAfterMarkAt: undefined,
    firstIndexAfterMark: undefined,
    longestStallMs: 0,
  };
  private marked = false;
  private readonly producer: Producer;

  constructor(
    private readonly config: AppConfig,
    private readonly topic: string,
  ) {
    this.producer = kafkaFor(config).producer({
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  /** From now on, record the first acknowledged send (the fault is over from the producer's view). */
  markRestart(): void {
    this.marked = true;
  }

  /**
   * Starts `run` in the background; the promise resolves to its error, or to undefined once every
   * batch was sent (a failed stream must fail the test, not leave an unhandled rejection behind).
   */
  start(
    messages: readonly { key: string; value: string }[],
    options: { batch: number; pauseMs: number; deadlineMs: number },
  ): Promise<unknown> {
    return this.run(messages, options).then(
      () => undefined,
      (error: unknown) => error,
    );
  }

  /** Waits until at least `count` events are acknowledged. */
  async acknowledged(count: number): Promise<void> {
    await eventually(() => Promise.resolve(this.stats.produced), 60_000, {
      what: `${count} events produced`,
      until: (produced) => produced >= count,
      intervalMs: 10,
    });
  }

  async run(
    messages: readonly { key: string; value: string }[],
    options: { batch: number; pauseMs: number; deadlineMs: number },
  ): Promise<void> {
    const deadline = Date.now() + options.deadlineMs;
    await this.connect(deadline);
    let lastAck = Date.now();
    try {
      for (let start = 0; start < messages.length; start += options.batch) {
        const chunk = messages.slice(start, start + options.batch);
        for (let attempt = 0; ; attempt++) {
          try {
            await this.producer.send({
              topic: `${this.config.kafka.topicPrefix}${this.topic}`,
              acks: -1,
              messages: chunk,
            });
            break;
          } catch (error) {
            this.stats.failedSends++;
            if (Date.now() > deadline) throw error;
            this.stats.resent += chunk.length;
            await sleep(250);
          }
        }
        const now = Date.now();
        this.stats.longestStallMs = Math.max(this.stats.longestStallMs, now - lastAck);
        lastAck = now;
        if (this.marked && this.stats.firstSendAfterMarkAt === undefined) {
          this.stats.firstSendAfterMarkAt = now;
          this.stats.firstIndexAfterMark = start;
        }
        this.stats.produced += chunk.length;
        if (options.pauseMs > 0) await sleep(options.pauseMs);
      }
    } finally {
      await this.producer.disconnect().catch(() => undefined);
    }
  }

  private async connect(deadline: number): Promise<void> {
    for (;;) {
      try {
        await this.producer.connect();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(250);
      }
    }
  }
}

/** Messages in a prefixed topic (sum of the partitions' end offsets). */
export async function topicMessages(config: AppConfig, topic: string): Promise<number> {
  const admin = kafkaFor(config).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(`${config.kafka.topicPrefix}${topic}`);
    return offsets.reduce((sum, partition) => sum + Number(partition.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/** State (Stable, PreparingRebalance, …) and member ids of a consumer group (prefixed id). */
export async function groupState(
  config: AppConfig,
  groupId: string,
): Promise<{ state: string; members: string[] }> {
  const admin = kafkaFor(config).admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([`${config.kafka.topicPrefix}${groupId}`]);
    const group = groups.at(0);
    return {
      state: group?.state ?? 'Unknown',
      members: group?.members.map((member) => member.memberId) ?? [],
    };
  } finally {
    await admin.disconnect();
  }
}

/** The ingest module's message counters (`ingest_messages_total`) for one unprefixed topic, by outcome. */
export async function ingestCounts(
  app: INestApplicationContext,
  topic: string,
): Promise<Partial<Record<string, number>>> {
  const metric = app.get(Metrics).registry.getSingleMetric('ingest_messages_total');
  const out: Partial<Record<string, number>> = {};
  if (metric === undefined) return out;
  for (const value of (await metric.get()).values) {
    const labels = value.labels as Record<string, string | number | undefined>;
    if (labels.topic !== topic) continue;
    out[String(labels.outcome)] = value.value;
  }
  return out;
}

/** Stored events of a `faultEvents` stream: rows, distinct ids, and ids in `<prefix>-0 … <prefix>-(count-1)`. */
export async function storedFaultEvents(
  url: string,
  prefix: string,
  count: number,
): Promise<{ rows: number; distinct: number; inRange: number }> {
  const rows = await query<{ rows: string; distinct: string; in_range: string }>(
    url,
    `SELECT count(*) AS rows, count(DISTINCT event_id) AS distinct,
            count(*) FILTER (WHERE CASE WHEN event_id ~ ('^' || $1 || '-[0-9]+$')
                                        THEN substr(event_id, length($1) + 2)::int < $2
                                        ELSE false END) AS in_range
       FROM events
      WHERE starts_with(event_id, $1 || '-')`,
    [prefix, count],
  );
  const row = rows.at(0);
  return {
    rows: Number(row?.rows ?? 0),
    distinct: Number(row?.distinct ?? 0),
    inRange: Number(row?.in_range ?? 0),
  };
}

/**
 * The Redis online state of a `faultEvents` stream: the sum of the users' interest versions and of
 * the items' click counts (each must equal the number of stored events: nothing applied twice).
 */
export async function onlineTotals(
  config: AppConfig,
  prefix: string,
  shape: { users: number; items: number },
): Promise<{ interactions: number; clicks: number }> {
  const redis = createClient({ url: config.redis.url });
  await redis.connect();
  try {
    const keys = onlineKeys(config.redis.keyPrefix);
    let interactions = 0;
    for (let u = 0; u < shape.users; u++) {
      interactions += Number((await redis.hGet(keys.interest(`${prefix}-u${u}`), 'version')) ?? 0);
    }
    let clicks = 0;
    for (let i = 0; i < shape.items; i++) {
      clicks += parsePopularity((await redis.get(keys.popularity(`${prefix}-i${i}`))) ?? '').clk;
    }
    return { interactions, clicks: Math.round(clicks) };
  } finally {
    await redis.close();
  }
}

/**
 * Waits until all `total` events of a `faultEvents` stream are stored and counted in Redis, and
 * checks that both stay exact a second later (a late redelivery or a double apply would show).
 * Returns when each was first complete.
 */
export async function settledExactlyOnce(
  config: AppConfig,
  prefix: string,
  total: number,
  shape: { users: number; items: number },
  storedTimeoutMs: number,
): Promise<{
  stored: { rows: number; distinct: number; inRange: number };
  storedAt: number;
  online: { interactions: number; clicks: number };
  onlineAt: number;
}> {
  const url = config.postgres.url;
  const all = await eventually(() => storedFaultEvents(url, prefix, total), storedTimeoutMs, {
    what: `${total} stored events`,
    until: (stored) => stored.rows >= total,
    intervalMs: 250,
  });
  await sleep(1000);
  const stored = await storedFaultEvents(url, prefix, total);
  expect(stored).toEqual({ rows: total, distinct: total, inRange: total });
  const online = await eventually(() => onlineTotals(config, prefix, shape), 60_000, {
    what: 'the online state to catch up',
    until: (totals) => totals.interactions >= total && totals.clicks >= total,
    intervalMs: 250,
  });
  await sleep(1000);
  expect(await onlineTotals(config, prefix, shape)).toEqual({
    interactions: total,
    clicks: total,
  });
  return { stored, storedAt: all.at, online: online.value, onlineAt: online.at };
}

/**
 * `config` with PostgreSQL and Redis reached through proxies that can go silent (open connections
 * pass nothing, as from a host gone without a reset): `silence` one or both, `cut` when done.
 */
export async function silenceableStores(config: AppConfig) {
  const postgres = new TcpProxy('127.0.0.1', 5432);
  const redis = new TcpProxy('127.0.0.1', 6379);
  await Promise.all([postgres.start(), redis.start()]);
  const postgresUrl = new URL(config.postgres.url);
  postgresUrl.port = String(postgres.port);
  const redisUrl = new URL(config.redis.url);
  redisUrl.port = String(redis.port);
  return {
    config: {
      ...config,
      postgres: {
        ...config.postgres,
        url: postgresUrl.toString(),
        directUrl: postgresUrl.toString(),
      },
      redis: { ...config.redis, url: redisUrl.toString() },
    } satisfies AppConfig,
    silence(which: { postgres?: boolean; redis?: boolean }): void {
      if (which.postgres) postgres.silence();
      if (which.redis) redis.silence();
    },
    cut: () => Promise.all([postgres.cut(), redis.cut()]),
  };
}
