import { INestApplicationContext, Module, Global } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Kafka, logLevel, Message } from 'kafkajs';
import { Client } from 'pg';
import type { LevelWithSilent } from 'pino';
import { ConfigModule } from '../../src/config/config.module';
import { InfraModule } from '../../src/infra/infra.module';
import { IngestModule } from '../../src/modules/ingest/ingest.module';
import { MetricsModule } from '../../src/modules/metrics/metrics.module';
import { createLogger, Logger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import { INGEST_FAULTS, IngestFaults } from '../../src/modules/ingest/ingest.faults';
import { eventually } from './poll';

/**
 * Starts the ingest module's consumers in-process, with only the modules it needs (so other
 * modules of the ingest role do not affect these tests); optionally with a fault hook.
 */
export async function startIngest(
  config: AppConfig,
  faults?: IngestFaults,
  log: LevelWithSilent | Logger = 'warn',
): Promise<INestApplicationContext> {
  const ingestConfig = { ...config, role: 'ingest' as const };
  @Global()
  @Module({
    providers: [{ provide: INGEST_FAULTS, useValue: faults ?? {} }],
    exports: [INGEST_FAULTS],
  })
  class FaultsModule {}
  @Module({
    imports: [
      FaultsModule,
      ConfigModule.forRoot(ingestConfig),
      InfraModule.forRoot(typeof log === 'string' ? createLogger(log) : log),
      MetricsModule,
      IngestModule,
    ],
  })
  class TestIngestModule {}
  return NestFactory.createApplicationContext(TestIngestModule, {
    logger: false,
    abortOnError: false,
  });
}

export function kafkaFor(config: AppConfig): Kafka {
  return new Kafka({
    clientId: `${config.kafka.clientId}-test`,
    brokers: [...config.kafka.brokers],
    logLevel: logLevel.NOTHING,
  });
}

/** Produces raw messages to a prefixed topic. */
export async function produceRaw(
  config: AppConfig,
  topic: string,
  messages: readonly Message[],
): Promise<void> {
  const producer = kafkaFor(config).producer();
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 1000) {
      await producer.send({
        topic: `${config.kafka.topicPrefix}${topic}`,
        messages: messages.slice(i, i + 1000),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

export interface ReadMessage {
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
}

/** Reads `count` messages from the beginning of a prefixed topic (fails after `timeoutMs`). */
export async function readTopic(
  config: AppConfig,
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<ReadMessage[]> {
  const consumer = kafkaFor(config).consumer({ groupId: `reader-${String(Math.random())}` });
  const out: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: `${config.kafka.topicPrefix}${topic}`, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          if (value !== undefined) headers[name] = value.toString();
        }
        out.push({ key: message.key?.toString() ?? null, value: message.value, headers });
        return Promise.resolve();
      },
    });
    await eventually(() => Promise.resolve(out.length >= count), timeoutMs, {
      what: `${count} messages on ${topic}`,
    });
    // A little longer, to catch unexpected extra messages.
    await sleep(500);
  } finally {
    await consumer.disconnect();
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One-off query on the test database (direct, not through any proxy). */
export async function query<T extends object>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Where stored events are, by partition and time: what a failed count shows to explain itself. */
export function eventsByPartition(url: string) {
  return query<{ partition: string; ts: Date; rows: string; distinct: string; seqs: string }>(
    url,
    `SELECT tableoid::regclass::text AS partition, ts, count(*) AS rows,
            count(DISTINCT event_id) AS distinct, min(seq) || '-' || max(seq) AS seqs
       FROM events GROUP BY 1, 2 ORDER BY 1, 2`,
  );
}

export async function countEvents(url: string): Promise<{ rows: number; distinct: number }> {
  const rows = await query<{ rows: string; distinct: string }>(
    url,
    'SELECT count(*) AS rows, count(DISTINCT event_id) AS distinct FROM events',
  );
  const row = rows.at(0);
  return { rows: Number(row?.rows ?? 0), distinct: Number(row?.distinct ?? 0) };
}
