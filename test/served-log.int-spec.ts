import { INestApplicationContext, Type } from '@nestjs/common';
import type { AppConfig } from '../src/config/config';
import { DLQ_HEADERS } from '../src/modules/ingest/ingest.service';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import {
  ServedLogIngestModule,
  ServedLogModule,
} from '../src/modules/served-log/served-log.module';
import { dayOf } from '../src/common/daily-partitions';
import {
  partitionName,
  ServedLogRepository,
} from '../src/modules/served-log/served-log.repository';
import type { ServedSlate } from '../src/modules/served-log/served-slate';
import { encodeServedSlate, SERVED_LOG_TOPICS } from '../src/modules/served-log/served-slate.codec';
import { ServedSlateConsumer } from '../src/modules/served-log/served-slate.consumer';
import { ServedSlateRecorder } from '../src/modules/served-log/served-slate.recorder';
import { ingestCounts } from './support/fault-helpers';
import { produceRaw, query, readTopic } from './support/ingest-helpers';
import { startModules } from './support/module-context';
import { eventually } from './support/poll';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

const DAY_MS = 86_400_000;
const FEATURES = ['model', 'popularity', 'feature:margin'];

/** The recorder (api role) and the consumer (ingest role), with only the modules they need. */
function startServedLog(
  config: AppConfig,
  modules: readonly Type[] = [ServedLogModule, ServedLogIngestModule],
): Promise<INestApplicationContext> {
  return startModules(config, modules);
}

function slate(requestId: string, servedAt: number, items = 4): ServedSlate {
  const values = new Float64Array(items * FEATURES.length);
  for (let p = 0; p < items; p++) {
    values[p * FEATURES.length] = p === 1 ? Number.NaN : 6.5 - p;
    values[p * FEATURES.length + 1] = 0.1 * (p + 1);
    values[p * FEATURES.length + 2] = p * 2;
  }
  return {
    requestId,
    userId: `user-${requestId}`,
    operation: 'rank',
    servedAt,
    modelVersion: '12',
    profile: 'default',
    experiment: null,
    candidates: items + 10,
    features: FEATURES,
    itemIds: Array.from({ length: items }, (_, p) => `item-${requestId}-${p}`),
    scores: new Float64Array(items).map((_, p) => 1 / (p + 1)),
    values,
  };
}

interface StoredSlate {
  request_id: string;
  user_id: string;
  served_at: Date;
  operation: string;
  model_version: string | null;
  profile: string;
  candidates: number;
  features: string[];
  item_ids: string[];
  scores: number[];
  feature_values: number[];
  partition: string;
}

/** The read training uses: slates by request ids within a time range (partitions pruned). */
const SLATES_BY_REQUEST = `
  SELECT request_id, user_id, served_at, operation, model_version::text AS model_version, profile,
         candidates, features, item_ids, scores, feature_values, tableoid::regclass::text AS partition
    FROM served_slates
   WHERE served_at >= $1 AND served_at < $2 AND request_id = ANY($3::text[])
   ORDER BY served_at, request_id`;

async function storedSlates(
  config: AppConfig,
  requestIds: readonly string[],
  from = new Date(0),
  to = new Date(Date.now() + DAY_MS),
): Promise<StoredSlate[]> {
  return query<StoredSlate>(config.postgres.url, SLATES_BY_REQUEST, [from, to, requestIds]);
}

async function slateCounts(app: INestApplicationContext): Promise<Record<string, number>> {
  const metric = app.get(Metrics).registry.getSingleMetric('served_log_slates_total');
  const values = (await metric?.get())?.values ?? [];
  return Object.fromEntries(
    values
      .filter((entry) => entry.value > 0)
      .map((entry): [string, number] => [String(entry.labels.outcome), entry.value]),
  );
}

describe('served-slate log on the real stack', () => {
  let context: TestContext;
  let config: AppConfig;
  let app: INestApplicationContext | undefined;
  const started = (): INestApplicationContext => {
    if (app === undefined) throw new Error('the served-log app did not start');
    return app;
  };

  beforeAll(async () => {
    context = await createTestContext({
      SERVED_LOG_FLUSH_MS: '50',
      SERVED_LOG_DEPTH: '3',
      INGEST_RETRY_INITIAL_MS: '50',
      INGEST_RETRY_MAX_MS: '500',
    });
    config = context.config;
    await context.createTopics([
      { name: SERVED_LOG_TOPICS.slates, partitions: 3 },
      { name: SERVED_LOG_TOPICS.deadLetters },
    ]);
    app = await startServedLog(config);
  });
  afterAll(async () => {
    await app?.close();
    await context.cleanup();
  });

  it('stores recorded slates in daily partitions, in served order, with their values', async () => {
    const recorder = started().get(ServedSlateRecorder);
    const now = Date.now();
    const yesterday = now - DAY_MS;
    recorder.record(slate('today-1', now));
    recorder.record(slate('today-2', now + 1, 2));
    recorder.record(slate('yesterday-1', yesterday));

    const ids = ['today-1', 'today-2', 'yesterday-1'];
    const { value: rows } = await eventually(() => storedSlates(config, ids), 30_000, {
      what: 'three stored slates',
      until: (found) => found.length === 3,
    });
    const byId = new Map(rows.map((row) => [row.request_id, row]));
    const first = byId.get('today-1');
    expect(first).toMatchObject({
      user_id: 'user-today-1',
      operation: 'rank',
      model_version: '12',
      profile: 'default',
      candidates: 14,
      features: FEATURES,
      // Cut to SERVED_LOG_DEPTH (3) in served order.
      item_ids: ['item-today-1-0', 'item-today-1-1', 'item-today-1-2'],
      partition: partitionName(dayOf(new Date(now))),
    });
    expect(first?.served_at.getTime()).toBe(now);
    // Stored as 32-bit reals (PostgreSQL prints the shortest decimal that reads back the same).
    expect(first?.scores.map(Math.fround)).toEqual([1, 0.5, 1 / 3].map(Math.fround));
    // Row-major, one value per feature; NaN where the item had none.
    expect(first?.feature_values.map(Math.fround)).toEqual(
      [6.5, 0.1, 0, Number.NaN, 0.2, 2, 4.5, 0.3, 4].map(Math.fround),
    );
    expect(byId.get('today-2')?.item_ids).toEqual(['item-today-2-0', 'item-today-2-1']);
    expect(byId.get('yesterday-1')?.partition).toBe(partitionName(dayOf(new Date(yesterday))));

    // The time range prunes: only yesterday's slate lies before today's midnight.
    const midnight = new Date(dayOf(new Date(now)) * DAY_MS);
    const older = await storedSlates(config, ids, new Date(yesterday - DAY_MS), midnight);
    expect(older.map((row) => row.request_id)).toEqual(
      yesterday < midnight.getTime() ? ['yesterday-1'] : [],
    );
    await recorder.drain();
    expect(await slateCounts(started())).toEqual({ sent: 3 });
  });

  it('dead-letters a malformed slate with the reason, and stores a redelivered one once', async () => {
    const now = Date.now();
    const valid = encodeServedSlate(slate('redelivered', now), 50);
    // One value short: 4 items × 3 features hold 12.
    const short = slate('short-values', now);
    const shortValues = { ...short, values: short.values.subarray(0, 11) };
    await produceRaw(config, SERVED_LOG_TOPICS.slates, [
      { key: 'user-redelivered', value: valid },
      { key: 'user-bad', value: encodeServedSlate(shortValues, 50) },
      { key: 'user-bad', value: '{"requestId":' },
      { key: 'user-redelivered', value: valid },
    ]);
    const letters = await readTopic(config, SERVED_LOG_TOPICS.deadLetters, 2);
    expect(
      letters.map((letter) => [
        letter.headers[DLQ_HEADERS.field],
        letter.headers[DLQ_HEADERS.reason],
      ]),
    ).toEqual(
      expect.arrayContaining([
        ['values', 'must hold 12 float32 values, 3 per item (got 11)'],
        ['value', expect.stringMatching(/^invalid JSON/)],
      ]),
    );
    for (const letter of letters) {
      expect(letter.key).toBe('user-bad');
      expect(letter.headers[DLQ_HEADERS.topic]).toBe(
        `${config.kafka.topicPrefix}${SERVED_LOG_TOPICS.slates}`,
      );
    }

    // Published again later (a producer retry, a replay): still one row.
    await produceRaw(config, SERVED_LOG_TOPICS.slates, [{ key: 'user-redelivered', value: valid }]);
    await eventually(
      async () => (await ingestCounts(started(), SERVED_LOG_TOPICS.slates)).duplicate,
      30_000,
      { what: 'both redeliveries counted', until: (duplicates) => duplicates === 2 },
    );
    expect(await storedSlates(config, ['redelivered', 'short-values'])).toHaveLength(1);
    expect(await ingestCounts(started(), SERVED_LOG_TOPICS.slates)).toMatchObject({
      dead_lettered: 2,
      duplicate: 2,
    });
  });

  it('skips slates past the retention and drops expired partitions', async () => {
    const retentionMs = config.servedLog.retentionDays * DAY_MS;
    const old = Date.now() - retentionMs - DAY_MS;
    await produceRaw(config, SERVED_LOG_TOPICS.slates, [
      { key: 'user-old', value: encodeServedSlate(slate('too-old', old), 50) },
    ]);
    await eventually(
      async () => (await ingestCounts(started(), SERVED_LOG_TOPICS.slates)).expired,
      30_000,
      { what: 'the expired slate counted', until: (expired) => expired === 1 },
    );
    expect(await storedSlates(config, ['too-old'])).toEqual([]);

    const repository = started().get(ServedLogRepository);
    const expiredDay = dayOf(new Date(old));
    await repository.ensurePartitions([expiredDay]);
    const partitions = async () =>
      (
        await query<{ name: string }>(
          config.postgres.url,
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'served_slates'::regclass ORDER BY 1`,
        )
      ).map((row) => row.name);
    expect(await partitions()).toContain(partitionName(expiredDay));
    await started().get(ServedSlateConsumer).maintain();
    const kept = await partitions();
    expect(kept).not.toContain(partitionName(expiredDay));
    // Today's and tomorrow's exist ahead of their first slate.
    const today = dayOf(new Date());
    expect(kept).toEqual(expect.arrayContaining([partitionName(today), partitionName(today + 1)]));
  });
});

describe('served-slate recorder without a reachable Kafka', () => {
  let context: TestContext;
  let api: INestApplicationContext | undefined;

  beforeAll(async () => {
    context = await createTestContext({
      // Nothing listens there: every send fails.
      KAFKA_BROKERS: '127.0.0.1:1',
      SERVED_LOG_FLUSH_MS: '20',
      SERVED_LOG_BATCH: '10',
      SERVED_LOG_BUFFER: '50',
    });
    api = await startServedLog(context.config, [ServedLogModule]);
  });
  afterAll(async () => {
    await api?.close();
    await context.cleanup();
  });

  it('never holds record, and counts what it drops', async () => {
    if (api === undefined) throw new Error('the api app did not start');
    const recorder = api.get(ServedSlateRecorder);
    const now = Date.now();
    const started = performance.now();
    for (let index = 0; index < 1000; index++) recorder.record(slate(`unreachable-${index}`, now));
    const recordMs = performance.now() - started;
    expect(recordMs).toBeLessThan(50);
    await recorder.drain();
    const counts = await slateCounts(api);
    // The loop fills the buffer (50) before the first send starts; the rest is dropped at once,
    // and every send of what was buffered fails.
    expect(counts).toEqual({ dropped_send_failed: 50, dropped_buffer_full: 950 });
  });
});
