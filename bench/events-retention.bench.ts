import { Pool } from 'pg';
import { DAY_MS, dayOf } from '../src/common/daily-partitions';
import { loadConfig } from '../src/config/config';
import { ExperimentsRepository } from '../src/modules/experiments/experiments.repository';
import { EventPartitionsRepository } from '../src/modules/ingest/event-partitions.repository';
import { IngestRepository } from '../src/modules/ingest/ingest.repository';
import { OnlineStatePostgresRepository } from '../src/modules/online-state/online-state-postgres.repository';
import { POPULARITY_HORIZON_HALF_LIVES } from '../src/modules/online-state/online-state.schema';
import { ServedLogRepository } from '../src/modules/served-log/served-log.repository';
import { databaseUrlFor, dropDatabase, freshDatabase } from './lib/bench-store';
import { Benchmark, integerFlag, progress } from './lib/harness';
import { percentile } from './lib/percentile';

const DATABASE = 'recsys_bench_events_retention';
const ITEMS = 50_000;
const CALLS = 7;
/** The `rank` request's 100 candidates: engaged items (ids skewed towards low numbers). */
const CANDIDATES = Array.from({ length: 100 }, (_, i) => `i${String(i * 7)}`);
/** The cold users' list the reader asks PostgreSQL for (POPULAR_FALLBACK_SIZE). */
const POPULAR_LIST = 5000;
/** The interactions `rank` reads to rebuild a user's vector (RANK_HISTORY_LENGTH). */
const HISTORY = 50;
/** Quiet users: `--events-per-day` (20,000) spread over them, a third to two thirds interactions. */
const USERS = 20_000;
/** Active users: 20 clicks a day each. */
const ACTIVE_USERS = 100;
const ACTIVE_CLICKS_PER_DAY = 20;
/** A version's slates over the last two days (the window its online counts read). */
const VERSION_SLATES = 2000;
const VERSION_WINDOW_MS = 2 * DAY_MS;
const VERSION = '7';

/**
 * Days `from`..`to` back from today (inclusive), `perDay` events each of the quiet users (their
 * impressions carry request ids, one per ten events) and the active users' clicks, at random times of
 * the day, on 50,000 items with engagement skewed (item i drawn with density falling as i^-2/3).
 */
async function insertDays(pool: Pool, from: number, to: number, perDay: number): Promise<void> {
  await pool.query('SELECT setseed($1)', [from / 1000]);
  await pool.query(
    `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id)
     SELECT 'e' || d || '-' || g,
            (ARRAY['impression','impression','impression','click','add_to_cart','purchase'])[1 + g % 6],
            'u' || g % ${USERS},
            'i' || floor(${ITEMS} * power(random(), 3))::int,
            date_trunc('day', now(), 'UTC') - make_interval(days => d) + random() * interval '1 day',
            CASE WHEN g % 6 < 3 THEN 'r' || d || '-' || g / 10 END
     FROM generate_series($1::int, $2::int) d, generate_series(1, $3::int) g`,
    [from, to, perDay],
  );
  await pool.query(
    `INSERT INTO events (event_id, type, user_id, item_id, ts)
     SELECT 'a' || d || '-' || g, 'click', 'a' || g % ${ACTIVE_USERS},
            'i' || floor(${ITEMS} * power(random(), 3))::int,
            date_trunc('day', now(), 'UTC') - make_interval(days => d) + random() * interval '1 day'
     FROM generate_series($1::int, $2::int) d, generate_series(1, $3::int) g`,
    [from, to, ACTIVE_USERS * ACTIVE_CLICKS_PER_DAY],
  );
  await pool.query('ANALYZE events');
}

/**
 * The version's slates (model version 7), spread over the last two days, each with two
 * impressions 5 s after it was served and a click on one in ten.
 */
async function insertVersionSlates(pool: Pool): Promise<void> {
  const now = Date.now();
  await new ServedLogRepository(pool).insertSlates(
    Array.from({ length: VERSION_SLATES }, (_, n) => ({
      requestId: `vs-${String(n)}`,
      userId: `u${String(n % USERS)}`,
      operation: 'rank' as const,
      servedAt: new Date(now - ((n + 0.5) / VERSION_SLATES) * VERSION_WINDOW_MS),
      modelVersion: VERSION,
      profile: 'default',
      experimentId: null,
      arm: null,
      candidates: 2,
      features: [],
      itemIds: [`i${String(n % ITEMS)}`, `i${String((n * 7) % ITEMS)}`],
      scores: [2, 1],
      values: [],
    })),
  );
  await pool.query(
    `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id)
     SELECT 've-' || s.request_id || '-' || k, CASE WHEN k < 3 THEN 'impression' ELSE 'click' END,
            s.user_id, s.item_ids[least(k, 2)], s.served_at + interval '5 seconds', s.request_id
     FROM served_slates s, generate_series(1, 3) k
     WHERE s.model_version = $1 AND (k < 3 OR right(s.request_id, 1) = '0')`,
    [VERSION],
  );
}

/**
 * Median ms of the write-ahead catch-up's read of one stored batch (`batch` events of the last
 * minute, stored as ingest stores them): with the batch's times, as queued now, and without
 * (`NULL`, as rows queued before they were kept). Each call drains a batch stored for it.
 */
async function timeDrains(
  pool: Pool,
  batch: number,
): Promise<{ withTimes: number; withoutTimes: number }> {
  const ingest = new IngestRepository(pool);
  const drain = async (withTimes: boolean) => {
    const now = Date.now();
    await ingest.insertEvents(
      Array.from({ length: batch }, (_, g) => ({
        eventId: `w${String(now)}-${String(g)}`,
        type: 'click' as const,
        // Users and items of their own: the reads above do not see them.
        userId: `w${String(g % 100)}`,
        itemId: `wi${String(g % 1000)}`,
        ts: new Date(now - 60_000 + (g / batch) * 60_000),
        requestId: null,
        position: null,
        context: null,
      })),
    );
    if (!withTimes)
      await pool.query('UPDATE online_state_pending SET min_ts = NULL, max_ts = NULL');
    const started = performance.now();
    const applied = await ingest.drainBacklog(batch, () => Promise.resolve());
    const ms = performance.now() - started;
    if (applied !== batch) throw new Error(`the drain read ${String(applied)} of ${String(batch)}`);
    return ms;
  };
  const median = async (withTimes: boolean) => {
    await drain(withTimes);
    const ms: number[] = [];
    for (let i = 0; i < CALLS; i++) ms.push(await drain(withTimes));
    return percentile(
      ms.sort((a, b) => a - b),
      50,
    );
  };
  return { withTimes: await median(true), withoutTimes: await median(false) };
}

/** Median ms of `CALLS` calls of each read, after one unmeasured call of each. */
async function timeReads(
  store: OnlineStatePostgresRepository,
  experiments: ExperimentsRepository,
): Promise<{
  popularity: number;
  popularItems: number;
  quietRecent: number;
  activeRecent: number;
  versionCounts: number;
}> {
  const time = async (read: (call: number) => Promise<unknown>) => {
    await read(CALLS);
    const ms: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const started = performance.now();
      await read(i);
      ms.push(performance.now() - started);
    }
    return percentile(
      ms.sort((a, b) => a - b),
      50,
    );
  };
  return {
    popularity: await time(() => store.popularity(CANDIDATES, Date.now())),
    popularItems: await time(() => store.popularItems(0, POPULAR_LIST, Date.now())),
    // Another user each call. The newest interactions are not bounded in time (the user tower
    // reads their ages): a quiet user's reach back through every partition.
    quietRecent: await time((call) => store.recent(`u${String(call * 997)}`, HISTORY)),
    activeRecent: await time((call) => store.recent(`a${String(call * 13)}`, HISTORY)),
    // The canary judge's read, every EXPERIMENT_JUDGE_INTERVAL_MS on every api replica.
    versionCounts: await time(() =>
      experiments.versionCounts(VERSION, new Date(Date.now() - VERSION_WINDOW_MS), new Date()),
    ),
  };
}

/**
 * Reads of `events` on the service's request and judging paths with `events` holding the
 * popularity horizon's days only, then `--days` days: the online state's PostgreSQL fallback (Redis
 * down), a version's online counts over two days, and the write-ahead catch-up of one stored batch
 * (`--drain-batch` events) with its times and without. Bounded in time, a read's ratio should stay
 * near 1 however long `EVENTS_RETENTION_DAYS` keeps events. A user's newest interactions have no
 * time bound: an active user's are found in the newest days' partitions, a quiet user's reach back
 * through all of them.
 */
const benchmark: Benchmark = {
  description:
    "reads of events as retention grows: popularity's horizon of days, then --days of them",
  async run(args) {
    const config = loadConfig(process.env);
    const days = integerFlag(args, 'days', 180, 1);
    const drainBatch = integerFlag(args, 'drain-batch', 2000, 1);
    const perDay = integerFlag(args, 'events-per-day', 20_000, 1);
    const halfLifeDays = config.online.popularityHalfLifeMs / DAY_MS;
    const horizonDays = Math.ceil(halfLifeDays * POPULARITY_HORIZON_HALF_LIVES);
    if (days <= horizonDays) {
      throw new Error(`--days must exceed the horizon, ${String(horizonDays)} days`);
    }
    const databaseUrl = databaseUrlFor(config.postgres.directUrl, DATABASE);
    await freshDatabase(databaseUrl);
    const pool = new Pool({ connectionString: databaseUrl });
    try {
      const partitions = new EventPartitionsRepository(pool);
      const today = dayOf(new Date());
      // Each day's partition created with its rows, as maintenance does (tomorrow's ahead).
      const addDays = async (from: number, to: number) => {
        for (let d = from; d <= to; d++) await partitions.createPartition(today - d);
        await insertDays(pool, Math.max(0, from), to, perDay);
      };
      const store = new OnlineStatePostgresRepository(pool, config);
      const experiments = new ExperimentsRepository(pool);
      const rows: Record<string, string | number>[] = [];
      const measure = async (stored: number) => {
        const ms = {
          ...(await timeReads(store, experiments)),
          ...(await timeDrains(pool, drainBatch)),
        };
        rows.push({
          'days of events': stored,
          events: stored * (perDay + ACTIVE_USERS * ACTIVE_CLICKS_PER_DAY),
          'popularity of 100 items, ms': ms.popularity,
          [`${String(POPULAR_LIST)} most engaged, ms`]: ms.popularItems,
          [`a quiet user's newest ${String(HISTORY)} interactions, ms`]: ms.quietRecent,
          [`an active user's, ms`]: ms.activeRecent,
          "a version's online counts, 2 days, ms": ms.versionCounts,
          [`write-ahead catch-up of ${String(drainBatch)} events, ms: with their times / without`]: `${ms.withTimes.toFixed(1)} / ${ms.withoutTimes.toFixed(1)}`,
        });
        return ms;
      };
      progress(`${String(horizonDays)} days of ${String(perDay)} events (the horizon)`);
      await addDays(-1, horizonDays - 1);
      await insertVersionSlates(pool);
      const horizon = await measure(horizonDays);
      progress(`${String(days - horizonDays)} older days`);
      await addDays(horizonDays, days - 1);
      const all = await measure(days);
      const ratios = {
        popularity: all.popularity / horizon.popularity,
        popularItems: all.popularItems / horizon.popularItems,
        quietRecent: all.quietRecent / horizon.quietRecent,
        activeRecent: all.activeRecent / horizon.activeRecent,
        versionCounts: all.versionCounts / horizon.versionCounts,
        drainWithTimes: all.withTimes / horizon.withTimes,
        drainWithoutTimes: all.withoutTimes / horizon.withoutTimes,
      };
      return {
        title: `Reads of events, popularity half-life ${String(halfLifeDays)} d, horizon ${String(horizonDays)} d (median of ${String(CALLS)} calls)`,
        rows,
        figures: { days, perDay, horizonDays, horizon, all, ratios },
        notes: [
          `ratio, ${String(days)} days against the horizon's ${String(horizonDays)}: popularity ${ratios.popularity.toFixed(2)}, most engaged ${ratios.popularItems.toFixed(2)}, a quiet user's newest interactions ${ratios.quietRecent.toFixed(2)}, an active user's ${ratios.activeRecent.toFixed(2)}, a version's online counts ${ratios.versionCounts.toFixed(2)}, the write-ahead catch-up of a batch with its times ${ratios.drainWithTimes.toFixed(2)}, without ${ratios.drainWithoutTimes.toFixed(2)}`,
          `the write-ahead catch-up of ${String(drainBatch)} events at ${String(days)} days, without the batch's times / with them: ${(all.withoutTimes / all.withTimes).toFixed(2)}x`,
        ],
      };
    } finally {
      await pool.end();
      await dropDatabase(databaseUrl);
    }
  },
};

export default benchmark;
