import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { inTransaction } from '../../infra/postgres';
import { PG_POOL } from '../../infra/tokens';
import { DAY_MS, dailyPartitionNames } from '../../common/daily-partitions';

/** Key of the transaction advisory lock under which `events` partitions are created and dropped. */
const PARTITION_LOCK_KEY = 0x65766e74; // 'evnt'
/**
 * How long a partition change may wait for its lock: the lock queues ahead of later inserts (and
 * a drop's ahead of every read), so it gives up and waits for the next round instead of holding
 * them up behind a long training read.
 */
const DDL_LOCK_TIMEOUT = '2s';
const EVENTS_PARTITIONS = dailyPartitionNames('events');
export const eventsPartitionName = EVENTS_PARTITIONS.nameOf;
export const dayOfPartition = EVENTS_PARTITIONS.dayOfName;

export interface DefaultPartitionDay {
  readonly day: number;
  readonly rows: number;
}

/**
 * The SQL of `events`' daily partitions (migrations/1796302500000_events-partitioned.sql): list,
 * create ahead (taking over the default partition's rows of that day), drop past the retention.
 */
@Injectable()
export class EventPartitionsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /** Days that have a daily partition, ascending. */
  async partitionDays(): Promise<number[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass`,
    );
    return rows
      .map(({ name }) => dayOfPartition(name))
      .filter((day): day is number => day !== undefined)
      .sort((a, b) => a - b);
  }

  /** The days of the rows waiting in the default partition, with how many each. */
  async defaultPartitionDays(): Promise<DefaultPartitionDay[]> {
    const { rows } = await this.pool.query<{ day: number; rows: number }>(
      `SELECT floor(extract(epoch FROM ts) / 86400)::int AS day, count(*)::int AS rows
         FROM events_default GROUP BY 1 ORDER BY 1`,
    );
    return rows;
  }

  /**
   * Creates the partition of `day` unless it exists; returns the rows it took over from the
   * default partition, or undefined when it existed. The table is built apart and attached,
   * which locks `events` only against other schema changes, unless it takes rows over: then
   * writes to `events` wait for it too (reads do not). The default partition is locked
   * exclusively while it is checked for (and cleared of) the day's rows, so reads that cover it
   * (no upper time bound) wait for that, or it for them.
   */
  async createPartition(day: number): Promise<number | undefined> {
    const name = eventsPartitionName(day);
    // Only integers reach this text: the name and bounds are derived from the day number.
    const from = new Date(day * DAY_MS).toISOString();
    const to = new Date((day + 1) * DAY_MS).toISOString();
    return inTransaction(this.pool, async (client) => {
      await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      const exists = await client.query<{ found: boolean }>(
        'SELECT to_regclass($1) IS NOT NULL AS found',
        [name],
      );
      if (exists.rows[0]?.found) return undefined;
      const waiting = await client.query<{ found: boolean }>(
        'SELECT EXISTS (SELECT 1 FROM events_default WHERE ts >= $1 AND ts < $2) AS found',
        [from, to],
      );
      // Taking rows over, writers wait for the attach (reads go on): an insert of this day that
      // began before it would route to the default partition and fail its new constraint, where
      // waiting, it finds the day's rows in their partition (and a replay is a duplicate).
      if (waiting.rows[0]?.found) await client.query('LOCK TABLE events IN SHARE MODE');
      await client.query(
        `CREATE TABLE ${name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
      );
      const moved = await client.query(
        `WITH moved AS (
           DELETE FROM events_default WHERE ts >= $1 AND ts < $2 RETURNING *
         )
         INSERT INTO ${name} SELECT * FROM moved`,
        [from, to],
      );
      await client.query(
        `ALTER TABLE events ATTACH PARTITION ${name} FOR VALUES FROM ('${from}') TO ('${to}')`,
      );
      return moved.rowCount ?? 0;
    });
  }

  /** Drops the partition of `day` (if it still exists). */
  async dropPartition(day: number): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      await client.query(`DROP TABLE IF EXISTS ${eventsPartitionName(day)}`);
    });
  }

  /** Deletes the default partition's rows from before `day` began; returns how many. */
  async deleteDefaultBefore(day: number): Promise<number> {
    const result = await this.pool.query('DELETE FROM events_default WHERE ts < $1', [
      new Date(day * DAY_MS).toISOString(),
    ]);
    return result.rowCount ?? 0;
  }
}
