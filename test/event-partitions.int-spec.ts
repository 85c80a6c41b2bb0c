import { INestApplicationContext } from '@nestjs/common';
import { Pool } from 'pg';
import { createLogger } from '../src/common/logger';
import type { AppConfig } from '../src/config/config';
import { migrate } from '../src/infra/migrator';
import { DAY_MS, dayOf } from '../src/common/daily-partitions';
import {
  EventPartitionsRepository,
  eventsPartitionName,
} from '../src/modules/ingest/event-partitions.repository';
import { EventPartitionsService } from '../src/modules/ingest/event-partitions.service';
import { IngestRepository } from '../src/modules/ingest/ingest.repository';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import { TrainingRepository } from '../src/modules/training/training.repository';
import { eventMessage, eventRow, userEvent } from './support/factories';
import { ingestCounts } from './support/fault-helpers';
import { produceRaw, query, startIngest } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { databaseUrl, TEST_STACK, testDatabaseName } from './support/stack';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

const RETENTION_DAYS = 30;
const AHEAD_DAYS = 2;

interface StoredEvent {
  event_id: string;
  seq: string;
  ts: Date;
  partition: string;
}

async function stored(url: string, ids: readonly string[]): Promise<StoredEvent[]> {
  return query<StoredEvent>(
    url,
    `SELECT event_id, seq::text AS seq, ts, tableoid::regclass::text AS partition
       FROM events WHERE event_id = ANY($1::text[]) ORDER BY seq`,
    [ids],
  );
}

async function partitions(url: string): Promise<string[]> {
  const rows = await query<{ name: string }>(
    url,
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'events'::regclass ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}

async function metricValue(app: INestApplicationContext, name: string): Promise<number> {
  const metric = app.get(Metrics).registry.getSingleMetric(name);
  return (await metric?.get())?.values[0]?.value ?? Number.NaN;
}

/** `events` by day (migrations/1796302500000_events-partitioned.sql) with the ingest role's upkeep. */
describe('events partitions on the real stack', () => {
  let context: TestContext;
  let config: AppConfig;
  let app: INestApplicationContext | undefined;
  const today = dayOf(new Date());
  const started = () => {
    if (app === undefined) throw new Error('ingest not started');
    return app;
  };

  beforeAll(async () => {
    context = await createTestContext({
      EVENTS_RETENTION_DAYS: String(RETENTION_DAYS),
      EVENTS_PARTITIONS_AHEAD_DAYS: String(AHEAD_DAYS),
      INGEST_RETRY_INITIAL_MS: '50',
      INGEST_RETRY_MAX_MS: '500',
    });
    config = context.config;
    await context.createTopics([
      { name: 'user.events', partitions: 2 },
      { name: 'user.events.dlq' },
      { name: 'catalog.items' },
      { name: 'catalog.items.dlq' },
    ]);
    app = await startIngest(config);
  });

  afterAll(async () => {
    await app?.close();
    await context.cleanup();
  });

  it('creates today’s partition and the next days’ at start', async () => {
    const ahead = Array.from({ length: AHEAD_DAYS + 1 }, (_, i) => eventsPartitionName(today + i));
    await eventually(() => partitions(config.postgres.url), 30_000, {
      what: 'the partitions ahead',
      until: (names) => ahead.every((name) => names.includes(name)),
    });
    expect(await partitions(config.postgres.url)).toContain('events_default');
  });

  it('stores each event in its day’s partition; a day without one waits in the default partition, then moves into its own', async () => {
    const now = Date.now();
    const late = now - 10 * DAY_MS;
    const fresh = userEvent({ eventId: 'p-today', timestamp: new Date(now).toISOString() });
    const old = userEvent({ eventId: 'p-late', timestamp: new Date(late).toISOString() });
    await produceRaw(config, 'user.events', [eventMessage(fresh), eventMessage(old)]);
    const ids = ['p-today', 'p-late'];
    await eventually(() => stored(config.postgres.url, ids), 30_000, {
      what: 'both events stored',
      until: (rows) => rows.length === 2,
    });
    const before = new Map((await stored(config.postgres.url, ids)).map((r) => [r.event_id, r]));
    expect(before.get('p-today')?.partition).toBe(eventsPartitionName(today));
    expect(before.get('p-late')?.partition).toBe('events_default');

    const round = await started().get(EventPartitionsService).maintain();
    expect(round.created).toEqual([eventsPartitionName(dayOf(new Date(late)))]);
    expect(round.moved).toBe(1);
    expect(round.waiting).toBe(0);
    const after = await stored(config.postgres.url, ['p-late']);
    // Moved as it was: same row, same seq (the online state and training refer to it by seq).
    expect(after).toEqual([
      { ...before.get('p-late'), partition: eventsPartitionName(dayOf(new Date(late))) },
    ]);
  });

  it('still rejects duplicates: the same event again is stored once, whichever partition holds it', async () => {
    const now = Date.now();
    const twice = userEvent({ eventId: 'dup-today', timestamp: new Date(now).toISOString() });
    // A day with no partition yet: the first copy lands in the default partition.
    const lateDay = now - 20 * DAY_MS;
    const lateTwice = userEvent({
      eventId: 'dup-late',
      timestamp: new Date(lateDay).toISOString(),
    });
    const countsBefore = await ingestCounts(started(), 'user.events');
    await produceRaw(config, 'user.events', [
      eventMessage(twice),
      eventMessage(lateTwice),
      eventMessage(twice),
    ]);
    await eventually(() => ingestCounts(started(), 'user.events'), 30_000, {
      what: 'three messages consumed',
      until: (counts) =>
        (counts.stored ?? 0) + (counts.duplicate ?? 0) ===
        (countsBefore.stored ?? 0) + (countsBefore.duplicate ?? 0) + 3,
    });
    expect((await stored(config.postgres.url, ['dup-late']))[0]?.partition).toBe('events_default');
    await started().get(EventPartitionsService).maintain();
    // Redelivered after its day's partition took it over from the default partition.
    await produceRaw(config, 'user.events', [eventMessage(lateTwice)]);
    await eventually(() => ingestCounts(started(), 'user.events'), 30_000, {
      what: 'the redelivery consumed',
      until: (counts) => (counts.duplicate ?? 0) === (countsBefore.duplicate ?? 0) + 2,
    });
    expect(await stored(config.postgres.url, ['dup-today', 'dup-late'])).toEqual([
      expect.objectContaining({ event_id: 'dup-today', partition: eventsPartitionName(today) }),
      expect.objectContaining({
        event_id: 'dup-late',
        partition: eventsPartitionName(dayOf(new Date(lateDay))),
      }),
    ]);
    expect((await ingestCounts(started(), 'user.events')).stored).toBe(
      (countsBefore.stored ?? 0) + 2,
    );
  });

  it('drops the partitions past the retention and the default partition’s rows of those days', async () => {
    const url = config.postgres.url;
    const expiredDay = today - RETENTION_DAYS - 5;
    const keptDay = today - RETENTION_DAYS + 1;
    await started().get(EventPartitionsRepository).createPartition(expiredDay);
    await query(
      url,
      `INSERT INTO events (event_id, type, user_id, item_id, ts) VALUES
         ('r-expired', 'click', 'u-r', 'i-r', $1),
         ('r-expired-default', 'click', 'u-r', 'i-r', $2),
         ('r-kept-default', 'click', 'u-r', 'i-r', $3)`,
      [
        new Date(expiredDay * DAY_MS + 3_600_000),
        new Date((expiredDay - 3) * DAY_MS),
        new Date(keptDay * DAY_MS + 60_000),
      ],
    );
    expect(await partitions(url)).toContain(eventsPartitionName(expiredDay));
    const droppedBefore = await metricValue(started(), 'events_partitions_dropped_total');

    const round = await started().get(EventPartitionsService).maintain();
    expect(round.dropped).toContain(eventsPartitionName(expiredDay));
    expect(round.expired).toBe(1);
    expect(round.created).toContain(eventsPartitionName(keptDay));
    expect(await partitions(url)).not.toContain(eventsPartitionName(expiredDay));
    expect(
      (await stored(url, ['r-expired', 'r-expired-default', 'r-kept-default'])).map((r) => [
        r.event_id,
        r.partition,
      ]),
    ).toEqual([['r-kept-default', eventsPartitionName(keptDay)]]);
    expect(await metricValue(started(), 'events_partitions_dropped_total')).toBe(
      droppedBefore + round.dropped.length,
    );
    // Every day older than the retention is gone: the oldest left is inside it.
    expect(round.oldest?.getTime()).toBeGreaterThanOrEqual((today - RETENTION_DAYS) * DAY_MS);
    expect(await metricValue(started(), 'events_oldest_partition_timestamp_seconds')).toBe(
      (round.oldest?.getTime() ?? 0) / 1000,
    );
  });

  it('bounds training reads by TRAIN_WINDOW_DAYS', async () => {
    const url = config.postgres.url;
    const pool = new Pool({ connectionString: url });
    try {
      const now = Date.now();
      await query(
        url,
        `INSERT INTO events (event_id, type, user_id, item_id, ts) VALUES
           ('w-in', 'click', 'u-w', 'i-w', $1), ('w-out', 'click', 'u-w', 'i-w', $2)`,
        [new Date(now - 2 * DAY_MS), new Date(now - 9 * DAY_MS)],
      );
      const training = new TrainingRepository(pool);
      const [{ maxSeq }] = await query<{ maxSeq: string }>(
        url,
        'SELECT max(seq)::text AS "maxSeq" FROM events',
      );
      const since = new Date(now - 7 * DAY_MS);
      const windowed = await training.events(null, maxSeq, 1000, since);
      expect(windowed.every((event) => event.ts >= since.getTime())).toBe(true);
      expect(windowed.filter((event) => event.userId === 'u-w')).toHaveLength(1);
      const unbounded = await training.events(null, maxSeq, 1000, null);
      expect(unbounded.filter((event) => event.userId === 'u-w')).toHaveLength(2);
      expect(await training.clicksOf(['u-w'], null, since)).toHaveLength(1);
      expect(await training.clicksOf(['u-w'], null, null)).toHaveLength(2);
    } finally {
      await pool.end();
    }
  });

  it('an insert in flight while a partition takes over its day’s rows from the default partition waits for it, and is deduplicated', async () => {
    const day = today - 40;
    const ts = new Date(day * DAY_MS + 3_600_000).toISOString();
    const insert = `INSERT INTO events (event_id, type, user_id, item_id, ts)
                    VALUES ('race-1', 'click', 'race-user', 'race-item', $1)
                    ON CONFLICT (event_id, ts) DO NOTHING`;
    const url = config.postgres.url;
    await query(url, insert, [ts]);
    const pool = new Pool({ connectionString: url, max: 3 });
    const [holder, inserter] = await Promise.all([pool.connect(), pool.connect()]);
    try {
      // Holds the default partition so that the take-over waits at its ATTACH, where an insert
      // that started meanwhile would still route the event to the default partition.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE events_default IN ACCESS SHARE MODE');
      const takeOver = new EventPartitionsRepository(pool).createPartition(day);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const redelivered = inserter.query(insert, [ts]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.query('COMMIT');
      await Promise.all([takeOver, redelivered]);
    } finally {
      holder.release();
      inserter.release();
      await pool.end();
    }
    expect(await stored(url, ['race-1'])).toEqual([
      expect.objectContaining({ partition: eventsPartitionName(day) }),
    ]);
  });
});

/** The migration itself: rows, seqs and the identity's position carried over, and back. */
/** The catch-up of owed online-state updates (ingest.repository.ts: drainBacklog), no ingest role running. */
describe('the write-ahead catch-up on partitioned events', () => {
  let context: TestContext;
  let pool: Pool;

  beforeAll(async () => {
    context = await createTestContext();
    pool = new Pool({ connectionString: context.config.postgres.url });
  });

  afterAll(async () => {
    await pool.end();
    await context.cleanup();
  });

  /** Drains every owed update; the ids each token applied, in the order read. */
  const drainAll = async (ingest: IngestRepository) => {
    const applied = new Map<string, string[]>();
    const count = await ingest.drainBacklog(100, (events, token) => {
      applied.set(
        token,
        events.map((event) => event.eventId),
      );
      return Promise.resolve();
    });
    return { count, applied };
  };

  it('reads a stored batch by the earliest and latest time of its events, across days', async () => {
    const url = context.config.postgres.url;
    const ingest = new IngestRepository(pool);
    const now = Date.now();
    // Out of time order, over three days (today's partition and the default partition's days).
    const times = [now - DAY_MS, now, now - 2 * DAY_MS, now - 1];
    const batch = await ingest.insertEvents(
      times.map((ms, i) => eventRow({ eventId: `wa-${String(i)}`, ts: new Date(ms) })),
    );
    expect(
      await query(
        url,
        'SELECT min_ts, max_ts, cardinality(seqs) AS n FROM online_state_pending WHERE token = $1',
        [batch.token],
      ),
    ).toEqual([{ min_ts: new Date(now - 2 * DAY_MS), max_ts: new Date(now), n: 4 }]);

    const drained = await drainAll(ingest);
    expect(drained.count).toBe(4);
    expect([...drained.applied]).toEqual([[batch.token, ['wa-0', 'wa-1', 'wa-2', 'wa-3']]]);
    expect(await query(url, 'SELECT 1 FROM online_state_pending')).toEqual([]);
  });

  it('reads a batch queued before the times were kept from every partition', async () => {
    const url = context.config.postgres.url;
    const ingest = new IngestRepository(pool);
    const now = Date.now();
    const batch = await ingest.insertEvents([
      eventRow({ eventId: 'wb-old', ts: new Date(now - 3 * DAY_MS) }),
      eventRow({ eventId: 'wb-new', ts: new Date(now) }),
    ]);
    await query(url, 'UPDATE online_state_pending SET min_ts = NULL, max_ts = NULL');
    const drained = await drainAll(ingest);
    expect([...drained.applied]).toEqual([[batch.token, ['wb-old', 'wb-new']]]);
  });
});

describe('events partitioning migration', () => {
  const name = testDatabaseName('evmig');
  const url = databaseUrl(name);
  const logger = createLogger('warn');

  afterAll(async () => {
    await query(TEST_STACK.postgresAdminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  const partitioned = async () =>
    (
      await query<{ partitioned: boolean }>(
        url,
        `SELECT relkind = 'p' AS partitioned FROM pg_class WHERE oid = 'events'::regclass`,
      )
    )[0]?.partitioned;
  /** Reverts migrations, newest first, until `events` is a plain table; returns how many. */
  const downToPlain = async () => {
    let steps = 0;
    while (await partitioned()) {
      await migrate(url, logger, 'down', 1);
      steps += 1;
    }
    return steps;
  };

  it('moves existing rows into one partition per day and reverses', async () => {
    await migrate(url, logger);
    const steps = await downToPlain();
    expect(steps).toBeGreaterThan(0);
    await query(
      url,
      `INSERT INTO events (event_id, type, user_id, item_id, ts)
       SELECT 'm-' || i, 'click', 'u-' || (i % 5), 'i-' || (i % 7),
              timestamptz '2025-03-01' + i * interval '5 hours'
         FROM generate_series(1, 60) i`,
    );
    const plain = await query<{ n: string; max: string }>(
      url,
      'SELECT count(*)::text AS n, max(seq)::text AS max FROM events',
    );

    await migrate(url, logger, 'up', steps);
    const moved = await query<{ n: string; max: string; days: string; stray: string }>(
      url,
      `SELECT count(*)::text AS n, max(seq)::text AS max,
              count(DISTINCT tableoid)::text AS days,
              count(*) FILTER (WHERE tableoid = 'events_default'::regclass)::text AS stray
         FROM events`,
    );
    // 60 events 5 hours apart span 13 UTC days.
    expect(moved).toEqual([{ ...plain[0], days: '13', stray: '0' }]);
    const next = await query<{ seq: string }>(
      url,
      `INSERT INTO events (event_id, type, user_id, item_id, ts)
       VALUES ('m-next', 'click', 'u', 'i', now()) RETURNING seq::text AS seq`,
    );
    expect(BigInt(next[0]?.seq ?? '0')).toBeGreaterThan(BigInt(plain[0]?.max ?? '0'));

    expect(await downToPlain()).toBe(steps);
    const back = await query<{ n: string }>(url, 'SELECT count(*)::text AS n FROM events');
    expect(back).toEqual([{ n: String(Number(plain[0]?.n) + 1) }]);
  });
});
