import { spawn } from 'node:child_process';
import path from 'node:path';
import pino from 'pino';
import { createClient } from 'redis';
import type { AppConfig } from '../src/config/config';
import type { SourceBatch } from '../src/modules/ingest/ingest-kafka.repository';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import { onlineKeys, parsePopularity } from '../src/modules/online-state/online-state.schema';
import { eventMessage, userEvent } from './support/factories';
import {
  countEvents,
  kafkaFor,
  produceRaw,
  query,
  readTopic,
  sleep,
  startIngest,
} from './support/ingest-helpers';
import { reportFigures, topicMessages } from './support/fault-helpers';
import { TcpProxy } from './support/tcp-proxy';
import { contextEnv, createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';

jest.setTimeout(120_000);

const TOPICS = [
  { name: 'user.events', partitions: 2 },
  { name: 'catalog.items' },
  { name: 'user.events.dlq' },
  { name: 'catalog.items.dlq' },
];
const TS = '2025-01-01T00:00:00.000Z';

function envOf(config: AppConfig): Record<string, string> {
  return {
    ...contextEnv(config),
    LOG_LEVEL: 'error',
    INGEST_SESSION_TIMEOUT_MS: String(config.ingest.sessionTimeoutMs),
  };
}

/** Runs the worker until it exits (the crash) and returns its exit signal. */
function runWorker(
  config: AppConfig,
  extra: Record<string, string>,
): Promise<NodeJS.Signals | null> {
  const root = path.resolve(__dirname, '..');
  const child = spawn(
    process.execPath,
    [require.resolve('ts-node/dist/bin.js'), 'test/support/ingest-worker.ts'],
    { cwd: root, env: { ...process.env, ...envOf(config), ...extra }, stdio: 'ignore' },
  );
  return new Promise((resolve) =>
    child.once('exit', (_code, signal) => {
      resolve(signal);
    }),
  );
}

/** A bug that only some messages trip: the ones produced with a `poison` header. */
const POISON_HEADER = 'x-test-poison';
const poisoned = (batch: SourceBatch) =>
  batch.messages.some((message) => POISON_HEADER in message.headers);

async function committedOffsets(config: AppConfig): Promise<Map<number, string>> {
  const admin = kafkaFor(config).admin();
  await admin.connect();
  try {
    const topics = await admin.fetchOffsets({
      groupId: `${config.kafka.topicPrefix}${config.ingest.eventsGroupId}`,
      topics: [`${config.kafka.topicPrefix}user.events`],
    });
    return new Map((topics.at(0)?.partitions ?? []).map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

/** 50 click events with ids `<prefix>-<from + i>`, over five users. */
function fiftyEvents(prefix: string, from: number) {
  return Array.from({ length: 50 }, (_, i) =>
    userEvent({
      eventId: `${prefix}-${String(from + i)}`,
      userId: `${prefix}-user-${String(i % 5)}`,
    }),
  );
}

/** Produces the last 50 of 150 events and checks that all 150 are stored, each once. */
async function expectAllStoredOnce(
  config: AppConfig,
  direct: AppConfig,
  last: ReturnType<typeof fiftyEvents>,
): Promise<void> {
  await produceRaw(config, 'user.events', last.map(eventMessage));
  await eventually(async () => (await countEvents(direct.postgres.url)).rows >= 150, 60_000, {
    what: 'all',
  });
  await sleep(500);
  expect(await countEvents(direct.postgres.url)).toEqual({ rows: 150, distinct: 150 });
}

/** `direct` with PostgreSQL reached through a proxy of its own (both pools), and that proxy. */
async function throughPostgresProxy(
  direct: AppConfig,
  postgres: Partial<AppConfig['postgres']> = {},
): Promise<{ proxy: TcpProxy; config: AppConfig }> {
  const proxy = new TcpProxy('127.0.0.1', 5432);
  await proxy.start();
  const viaProxy = new URL(direct.postgres.url);
  viaProxy.port = String(proxy.port);
  const url = viaProxy.toString();
  return {
    proxy,
    config: { ...direct, postgres: { ...direct.postgres, url, directUrl: url, ...postgres } },
  };
}

describe('ingest faults', () => {
  let context: TestContext;

  beforeEach(async () => {
    context = await createTestContext({
      INGEST_RETRY_INITIAL_MS: '100',
      INGEST_RETRY_MAX_MS: '500',
      INGEST_SESSION_TIMEOUT_MS: '6000',
    });
    await context.createTopics(TOPICS);
  });
  afterEach(async () => {
    await context.cleanup();
  });

  it('loses and duplicates nothing when killed between the database and the offset commit', async () => {
    const { config } = context;
    const events = Array.from({ length: 60 }, (_, i) =>
      userEvent({ userId: `k-user-${String(i % 3)}`, itemId: 'k-item', timestamp: TS }),
    );
    await produceRaw(config, 'user.events', events.map(eventMessage));

    // Partitions are consumed concurrently, so the kill also catches other batches between their
    // PostgreSQL commit and their Redis write, or between the Redis write and settling its pending row.
    const signal = await runWorker(config, { CRASH_AFTER_STORE: '1' });
    expect(signal).toBe('SIGKILL');
    const afterCrash = await countEvents(config.postgres.url);
    expect(afterCrash.rows).toBeGreaterThan(0);
    // The stored batch's offsets were never committed.
    const committed = await committedOffsets(config);
    expect([...committed.values()].every((offset) => offset === '-1')).toBe(true);

    const app = await startIngest(config);
    const redis = createClient({ url: config.redis.url });
    await redis.connect();
    try {
      await eventually(async () => (await countEvents(config.postgres.url)).rows === 60, 60_000, {
        what: 'rows',
      });
      const keys = onlineKeys(config.redis.keyPrefix);
      // Redis follows the PostgreSQL commit; on a loaded machine that can take a moment.
      await eventually(
        async () => parsePopularity((await redis.get(keys.popularity('k-item'))) ?? '').clk >= 60,
        30_000,
        { what: 'online state' },
      );
      await sleep(1000);
      expect(await countEvents(config.postgres.url)).toEqual({ rows: 60, distinct: 60 });
      // The crashed batch was applied to Redis once, before the crash, and not again after.
      expect(parsePopularity((await redis.get(keys.popularity('k-item'))) ?? '').clk).toBe(60);
      expect(await redis.hGet(keys.interest('k-user-0'), 'version')).toBe('20');
    } finally {
      await redis.close();
      await app.close();
    }
  });

  it('stores every event exactly once when PostgreSQL is cut mid-stream and restored', async () => {
    const direct = context.config;
    const { proxy, config } = await throughPostgresProxy(direct);
    const app = await startIngest(config);
    try {
      const batch = (from: number) => fiftyEvents('pg', from);
      await produceRaw(config, 'user.events', batch(0).map(eventMessage));
      await eventually(async () => (await countEvents(direct.postgres.url)).rows === 50, 30_000, {
        what: 'first',
      });
      await sleep(500);
      const before = await committedOffsets(config);

      await proxy.cut();
      await produceRaw(config, 'user.events', batch(50).map(eventMessage));
      await sleep(3000);
      expect((await countEvents(direct.postgres.url)).rows).toBe(50);
      // Nothing committed while the database is unreachable.
      expect(await committedOffsets(config)).toEqual(before);

      await proxy.restore();
      await expectAllStoredOnce(config, direct, batch(100));
    } finally {
      await app.close();
      await proxy.cut();
    }
  });

  // A PostgreSQL host gone without a reset: its connections stay open and answer nothing, and the
  // server's statement_timeout cannot fire. The client gives up on a query a little after it and
  // drops that connection and the idle ones; new connections pass (as to a replacement behind the
  // address).
  it('stores every event exactly once when its PostgreSQL connections go silent', async () => {
    const direct = context.config;
    const { proxy, config } = await throughPostgresProxy(direct, { statementTimeoutMs: 1000 });
    const app = await startIngest(config, undefined, 'silent');
    try {
      const batch = (from: number) => fiftyEvents('pgs', from);
      await produceRaw(config, 'user.events', batch(0).map(eventMessage));
      await eventually(async () => (await countEvents(direct.postgres.url)).rows === 50, 30_000, {
        what: 'first',
      });
      proxy.silence();
      const silenced = Date.now();
      await produceRaw(config, 'user.events', batch(50).map(eventMessage));
      await eventually(async () => (await countEvents(direct.postgres.url)).rows >= 100, 30_000, {
        what: 'stored over new connections',
      });
      const storedMs = Date.now() - silenced;
      reportFigures('postgres-silent', { storedMs });
      // One query's wait (1 s and the client's 2 s after it), not one per idle connection: the
      // first read timeout drops the pool's other idle connections to the silent server.
      expect(storedMs).toBeLessThan(2 * (1000 + 2000));
      await expectAllStoredOnce(config, direct, batch(100));
    } finally {
      await app.close();
      await proxy.cut();
    }
  });

  it('replaces a consumer kafkajs stopped for good, and stores what it had not committed', async () => {
    const { config } = context;
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    let thrown = 0;
    // A bug in a handler: kafkajs neither retries a TypeError nor restarts the consumer after it.
    const app = await startIngest(
      config,
      {
        afterStore: (topic) => {
          if (topic.endsWith('user.events') && thrown++ === 0) throw new TypeError('a handler bug');
        },
      },
      logger,
    );
    const running = async () =>
      (
        await app.get(Metrics).registry.getSingleMetric('ingest_consumer_running')?.get()
      )?.values.find((value) => value.labels.topic === 'user.events')?.value;
    try {
      await produceRaw(config, 'user.events', [eventMessage(userEvent({ userId: 'bug-1' }))]);
      await eventually(
        () => lines.some((line) => line.includes('consumer stopped by an error kafkajs')),
        30_000,
        { what: 'the stopped consumer reported' },
      );
      expect(await running()).toBe(0);

      await produceRaw(config, 'user.events', [eventMessage(userEvent({ userId: 'bug-2' }))]);
      // The new consumer re-reads the batch whose offsets were never committed (stored once) and
      // goes on.
      await eventually(async () => (await countEvents(config.postgres.url)).rows === 2, 30_000, {
        what: 'both events stored',
      });
      expect(await countEvents(config.postgres.url)).toEqual({ rows: 2, distinct: 2 });
      await eventually(running, 10_000, { what: 'the gauge back at 1', until: (v) => v === 1 });
    } finally {
      await app.close();
    }
  });
  it('dead-letters a message the service fails on, and stores the rest of its chunk', async () => {
    const { config } = context;
    const app = await startIngest(config, {
      handling: (batch) => {
        if (poisoned(batch)) throw new TypeError('a bug this message trips');
      },
    });
    try {
      // One send, one key: one partition, one record batch, so one chunk.
      const messages = Array.from({ length: 5 }, (_, i) => ({
        ...eventMessage(userEvent({ eventId: `poison-${String(i)}`, userId: 'poison-user' })),
        headers: i === 2 ? { [POISON_HEADER]: '1' } : {},
      }));
      await produceRaw(config, 'user.events', messages);
      const [letter] = await readTopic(config, 'user.events.dlq', 1);
      expect(letter.value?.toString()).toBe(messages[2].value);
      expect(letter.headers['dlq-error-field']).toBe('value');
      expect(letter.headers['dlq-error-reason']).toBe(
        'the service failed on this message (others of its chunk were stored): a bug this message trips',
      );
      await eventually(async () => (await countEvents(config.postgres.url)).rows === 4, 30_000, {
        what: 'the other four stored',
      });
      const ids = await query<{ event_id: string }>(
        config.postgres.url,
        'SELECT event_id FROM events ORDER BY event_id',
      );
      expect(ids.map((row) => row.event_id)).toEqual([
        'poison-0',
        'poison-1',
        'poison-3',
        'poison-4',
      ]);
      // The partition goes on.
      await produceRaw(config, 'user.events', [
        eventMessage(userEvent({ eventId: 'poison-after', userId: 'poison-user' })),
      ]);
      await eventually(async () => (await countEvents(config.postgres.url)).rows === 5, 30_000, {
        what: 'the next event stored',
      });
      expect(await topicMessages(config, 'user.events.dlq')).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('dead-letters nothing when every message fails: the chunk waits for a fixed service', async () => {
    const { config } = context;
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    let broken = true;
    const app = await startIngest(
      config,
      {
        handling: (batch) => {
          if (broken && batch.topic.endsWith('user.events'))
            throw new TypeError('a bug in every call');
        },
      },
      logger,
    );
    try {
      await produceRaw(
        config,
        'user.events',
        Array.from({ length: 4 }, (_, i) =>
          eventMessage(userEvent({ eventId: `broken-${String(i)}`, userId: 'broken-user' })),
        ),
      );
      await eventually(
        () => lines.some((line) => line.includes('consumer stopped by an error kafkajs')),
        30_000,
        { what: 'the consumer stopped by the bug' },
      );
      expect(lines.some((line) => line.includes('looking for the messages it fails on'))).toBe(
        true,
      );
      expect((await countEvents(config.postgres.url)).rows).toBe(0);
      expect(await topicMessages(config, 'user.events.dlq')).toBe(0);

      broken = false;
      await eventually(async () => (await countEvents(config.postgres.url)).rows === 4, 30_000, {
        what: 'all four stored once the bug is gone',
      });
      expect(await topicMessages(config, 'user.events.dlq')).toBe(0);
    } finally {
      await app.close();
    }
  });
});
