import { randomBytes } from 'node:crypto';
import { Global, INestApplicationContext, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Kafka, logLevel } from 'kafkajs';
import { Client } from 'pg';
import { createClient } from 'redis';
import { Counter } from 'prom-client';
import { createLogger } from '../src/common/logger';
import { AppConfig, loadConfig } from '../src/config/config';
import { ConfigModule } from '../src/config/config.module';
import { InfraModule } from '../src/infra/infra.module';
import { migrate } from '../src/infra/migrator';
import { IngestModule } from '../src/modules/ingest/ingest.module';
import { onlineKeys } from '../src/modules/online-state/online-state.schema';
import { MetricsModule } from '../src/modules/metrics/metrics.module';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import { generateBehaviour, generateCatalog } from '../src/synthetic';
import { databaseUrlFor, dropDatabase } from './lib/bench-store';
import { Benchmark, progress } from './lib/harness';
import { percentile } from './lib/percentile';

const MIN_EVENTS = 200_000;
const STEADY_RATE = 2000;
const STEADY_SECONDS = 15;
const TICK_MS = 50;
const DAY_MS = 86_400_000;

async function startIngest(config: AppConfig): Promise<INestApplicationContext> {
  @Global()
  @Module({})
  class Empty {}
  @Module({
    imports: [
      Empty,
      ConfigModule.forRoot(config),
      InfraModule.forRoot(createLogger('warn')),
      MetricsModule,
      IngestModule,
    ],
  })
  class BenchIngestModule {}
  return NestFactory.createApplicationContext(BenchIngestModule, { logger: false });
}

async function processed(app: INestApplicationContext): Promise<number> {
  const metric = app.get(Metrics).registry.getSingleMetric('ingest_messages_total') as
    Counter | undefined;
  if (metric === undefined) return 0;
  const values = (await metric.get()).values;
  return values.reduce((sum, value) => sum + value.value, 0);
}

async function waitUntil(condition: () => Promise<boolean>, pollMs: number): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, pollMs));
}

/** `npm run bench -- ingest [events]`. */
const benchmark: Benchmark = {
  description:
    'raw kafkajs consume rate vs end-to-end ingest (PostgreSQL + Redis) on the same topic, and publish-to-Redis latency at 2,000 events/s',
  async run(args) {
    const wanted = Math.max(MIN_EVENTS, Number(args[0] ?? MIN_EVENTS) || MIN_EVENTS);
    const id = randomBytes(3).toString('hex');
    const base = loadConfig(process.env);
    const database = `recsys_bench_${id}`;
    const config: AppConfig = {
      ...loadConfig({
        ...process.env,
        // DATABASE_URL may reach a pooler (PG_POOLER=transaction): both name the bench's database.
        DATABASE_URL: databaseUrlFor(base.postgres.url, database),
        DATABASE_DIRECT_URL: databaseUrlFor(base.postgres.directUrl, database),
        REDIS_KEY_PREFIX: `bench:${id}:`,
        KAFKA_TOPIC_PREFIX: `bench${id}.`,
        KAFKA_CLIENT_ID: `bench-${id}`,
        LOG_LEVEL: 'warn',
      }),
      role: 'ingest',
    };
    const pooledNote =
      config.postgres.pooler === 'none'
        ? ''
        : ` (queries through a transaction-mode pooler at ${new URL(config.postgres.url).host})`;
    const topic = `${config.kafka.topicPrefix}user.events`;
    const kafka = new Kafka({
      clientId: `bench-${id}`,
      brokers: [...config.kafka.brokers],
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    await admin.connect();
    const redis = createClient({ url: config.redis.url });
    await redis.connect();
    let app: INestApplicationContext | undefined;
    try {
      progress(`database ${database}${pooledNote}, topic prefix ${config.kafka.topicPrefix}`);
      await migrate(config.postgres.directUrl, createLogger('warn'));
      await admin.createTopics({
        topics: ['user.events', 'user.events.dlq', 'catalog.items', 'catalog.items.dlq'].map(
          (name) => ({
            topic: `${config.kafka.topicPrefix}${name}`,
            numPartitions: name === 'user.events' ? 6 : 1,
            replicationFactor: 1,
          }),
        ),
        waitForLeaders: true,
      });

      const catalog = generateCatalog({ items: 5000, seed: 'bench' });
      // Live traffic: the last hour (within today, UTC), so events land in today's partition.
      const to = new Date();
      const from = new Date(
        Math.max(to.getTime() - 3_600_000, to.getTime() - (to.getTime() % DAY_MS)),
      );
      const { events } = generateBehaviour({
        catalog,
        users: 20_000,
        impressions: Math.ceil(wanted * 0.93),
        seed: 'bench',
        from,
        to,
      });
      const total = events.length;
      progress(`producing ${total} synthetic events once`);
      const producer = kafka.producer();
      await producer.connect();
      for (let i = 0; i < total; i += 5000) {
        await producer.send({
          topic,
          acks: 1,
          messages: events
            .slice(i, i + 5000)
            .map((event) => ({ key: event.userId, value: JSON.stringify(event) })),
        });
      }

      progress('raw kafkajs consume (no processing)');
      const raw = kafka.consumer({
        groupId: `bench-raw-${id}`,
        maxBytesPerPartition: config.ingest.fetchMaxBytesPerPartition,
        maxBytes: config.ingest.fetchMaxBytesPerPartition * 4,
        maxWaitTimeInMs: 500,
      });
      await raw.connect();
      await raw.subscribe({ topic, fromBeginning: true });
      let rawCount = 0;
      const rawStart = performance.now();
      await raw.run({
        partitionsConsumedConcurrently: config.ingest.partitionsConcurrency,
        eachBatch: ({ batch }) => {
          rawCount += batch.messages.length;
          return Promise.resolve();
        },
      });
      await waitUntil(() => Promise.resolve(rawCount >= total), 5);
      const rawSeconds = (performance.now() - rawStart) / 1000;
      await raw.disconnect();

      progress('end-to-end ingest (validate, PostgreSQL, Redis)');
      const e2eStart = performance.now();
      app = await startIngest(config);
      const ingestApp = app;
      await waitUntil(async () => (await processed(ingestApp)) >= total, 20);
      const e2eSeconds = (performance.now() - e2eStart) / 1000;
      const pg = new Client({ connectionString: config.postgres.directUrl });
      await pg.connect();
      const stored = Number(
        (await pg.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]?.n,
      );
      // Heap, indexes and TOAST of every partition (or of the table, when not partitioned).
      const storedBytes = Number(
        (
          await pg.query<{ bytes: string }>(
            `SELECT COALESCE(
               (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('events')),
               pg_total_relation_size('events')) AS bytes`,
          )
        ).rows[0]?.bytes,
      );
      await pg.end();
      const bytesPerEvent = storedBytes / stored;

      progress(`steady ${STEADY_RATE} events/s for ${STEADY_SECONDS} s, probing Redis`);
      const keys = onlineKeys(config.redis.keyPrefix);
      const pending = new Map<string, number>();
      const latencies: number[] = [];
      const state = { polling: true };
      const poller = (async () => {
        while (state.polling || pending.size > 0) {
          const probes = [...pending.keys()];
          if (probes.length > 0) {
            const multi = redis.multi();
            for (const user of probes) multi.exists(keys.interest(user));
            const found = (await multi.execAsPipeline()) as unknown as number[];
            const now = performance.now();
            probes.forEach((user, i) => {
              if (found[i] === 1) {
                latencies.push(now - (pending.get(user) ?? now));
                pending.delete(user);
              }
            });
          }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const perTick = (STEADY_RATE * TICK_MS) / 1000;
      const ticks = (STEADY_SECONDS * 1000) / TICK_MS;
      const steadyStart = performance.now();
      let probeId = 0;
      for (let tick = 0; tick < ticks; tick++) {
        const due = steadyStart + tick * TICK_MS;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const messages = Array.from({ length: perTick }, (_, i) => {
          const probe = i % 10 === 0;
          const userId = probe ? `probe-${String(probeId++)}` : `steady-${String(i)}`;
          const event = {
            eventId: `steady-${id}-${String(tick)}-${String(i)}`,
            type: probe ? 'click' : 'impression',
            userId,
            itemId: catalog.items[(tick * perTick + i) % catalog.items.length]?.itemId ?? 'x',
            timestamp: Date.now(),
          };
          return { key: userId, value: JSON.stringify(event) };
        });
        const sentAt = performance.now();
        for (const message of messages) {
          if (message.key.startsWith('probe-')) pending.set(message.key, sentAt);
        }
        void producer.send({ topic, acks: 1, messages });
      }
      const deadline = performance.now() + 10_000;
      state.polling = false;
      while (pending.size > 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const lost = pending.size;
      pending.clear();
      await poller;
      await producer.disconnect();

      latencies.sort((a, b) => a - b);
      const rawRate = total / rawSeconds;
      const e2eRate = total / e2eSeconds;
      const ratio = e2eRate / rawRate;
      const p50 = percentile(latencies, 50);
      const p99 = percentile(latencies, 99);
      const max = latencies.at(-1) ?? Number.NaN;
      return {
        title: `Ingest: ${total.toLocaleString('en-US')} events, ${STEADY_RATE} events/s latency`,
        rows: [
          { measure: 'raw kafkajs consume (no processing)', value: rawRate, unit: 'events/s' },
          { measure: 'end-to-end ingest (PG + Redis)', value: e2eRate, unit: 'events/s' },
          { measure: 'ratio end-to-end / raw (target >= 0.5)', value: ratio, unit: '' },
          { measure: 'stored bytes per event (table + indexes)', value: bytesPerEvent, unit: 'B' },
          { measure: `publish -> Redis p50 @ ${STEADY_RATE}/s`, value: p50, unit: 'ms' },
          {
            measure: `publish -> Redis p99 @ ${STEADY_RATE}/s (target < 1000)`,
            value: p99,
            unit: 'ms',
          },
          { measure: `publish -> Redis max @ ${STEADY_RATE}/s`, value: max, unit: 'ms' },
        ],
        figures: {
          events: total,
          stored,
          rawEventsPerSecond: Math.round(rawRate),
          endToEndEventsPerSecond: Math.round(e2eRate),
          ratio: Number(ratio.toFixed(3)),
          ratioTargetMet: ratio >= 0.5,
          storedBytes,
          bytesPerEvent: Math.round(bytesPerEvent),
          steadyRate: STEADY_RATE,
          latencyProbes: latencies.length,
          latencyProbesMissing: lost,
          latencyP50Ms: Math.round(p50),
          latencyP99Ms: Math.round(p99),
          latencyMaxMs: Math.round(max),
          latencyTargetMet: p99 < 1000 && lost === 0,
          batchSize: config.ingest.batchSize,
          partitionsConcurrency: config.ingest.partitionsConcurrency,
          pooler: config.postgres.pooler,
        },
        notes: [
          'Both rates read the same 6-partition topic from the beginning, group join included, with the same fetch settings.',
          `End-to-end counts a message once it is validated, stored in PostgreSQL${pooledNote} (one transaction per batch) and applied to Redis.`,
          'Latency probes: every 10th steady event is a click of a fresh user; visible = its interest key exists in Redis.',
          'The machine has 2 cores shared with Kafka, PostgreSQL, Redis and other work: rates are noisy.',
        ],
      };
    } finally {
      await app?.close();
      await admin
        .deleteTopics({
          topics: ['user.events', 'user.events.dlq', 'catalog.items', 'catalog.items.dlq'].map(
            (name) => `${config.kafka.topicPrefix}${name}`,
          ),
        })
        .catch(() => undefined);
      await admin.disconnect();
      for await (const found of redis.scanIterator({ MATCH: `bench:${id}:*`, COUNT: 1000 })) {
        if (found.length > 0) await redis.unlink(found);
      }
      await redis.close();
      await dropDatabase(config.postgres.directUrl);
    }
  },
};

export default benchmark;
