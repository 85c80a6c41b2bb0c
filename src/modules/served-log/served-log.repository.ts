import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { inTransaction } from '../../infra/postgres';
import { PG_POOL } from '../../infra/tokens';
import { DAY_MS, dailyPartitionNames, dayOf } from '../../common/daily-partitions';
import type { ServedSlateRow } from './served-slate.codec';

/** Key of the transaction advisory lock under which partitions are created and dropped. */
const PARTITION_LOCK_KEY = 0x73657276; // 'serv'
/**
 * How long creating or dropping a partition may wait for its lock on `served_slates`: the DDL
 * queues ahead of every later insert, so it gives up (and is retried) rather than hold them.
 */
const DDL_LOCK_TIMEOUT = '2s';
const SLATE_PARTITIONS = dailyPartitionNames('served_slates');
/** `served_slates_pYYYYMMDD`: the partition holding that UTC day. */
export const partitionName = SLATE_PARTITIONS.nameOf;
const dayOfPartition = SLATE_PARTITIONS.dayOfName;

/** A PostgreSQL array literal of strings: every element quoted, `"` and `\` escaped. */
export function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
}

/**
 * A PostgreSQL `real[]` literal. Values are rounded to 32 bits first: the column's precision, and
 * a value outside real's range would fail the insert (overflow becomes ±Infinity, underflow 0).
 */
export function realArrayLiteral(values: readonly number[]): string {
  return `{${values.map((value) => String(Math.fround(value))).join(',')}}`;
}

/**
 * All SQL of the served-slate log: batch inserts into `served_slates`, partitioned by day of
 * `served_at` (partitions created on demand, remembered per process), and retention by partition.
 */
@Injectable()
export class ServedLogRepository {
  /** Days whose partition this process knows exists. */
  private readonly partitions = new Set<number>();

  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * Stores a batch in one statement; a slate already stored (same `served_at` and `request_id`,
   * a redelivery) is skipped. Returns how many were new.
   */
  async insertSlates(rows: readonly ServedSlateRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    await this.ensurePartitions(rows.map((row) => dayOf(row.servedAt)));
    // Arrays differ in length per row, which no multi-dimensional parameter can carry: each row's
    // array travels as its literal, cast per row.
    const result = await this.pool.query(
      `INSERT INTO served_slates (served_at, request_id, user_id, operation, model_version, profile,
                                  candidates, features, item_ids, scores, feature_values,
                                  experiment_id, arm)
       SELECT u.served_at, u.request_id, u.user_id, u.operation, u.model_version, u.profile,
              u.candidates, u.features::text[], u.item_ids::text[], u.scores::real[],
              u.feature_values::real[], u.experiment_id, u.arm
       FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                   $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[],
                   $13::text[])
            AS u(served_at, request_id, user_id, operation, model_version, profile, candidates,
                 features, item_ids, scores, feature_values, experiment_id, arm)
       ON CONFLICT (served_at, request_id) DO NOTHING`,
      [
        rows.map((row) => row.servedAt.toISOString()),
        rows.map((row) => row.requestId),
        rows.map((row) => row.userId),
        rows.map((row) => row.operation),
        rows.map((row) => row.modelVersion),
        rows.map((row) => row.profile),
        rows.map((row) => row.candidates),
        rows.map((row) => textArrayLiteral(row.features)),
        rows.map((row) => textArrayLiteral(row.itemIds)),
        rows.map((row) => realArrayLiteral(row.scores)),
        rows.map((row) => realArrayLiteral(row.values)),
        rows.map((row) => row.experimentId),
        rows.map((row) => row.arm),
      ],
    );
    return result.rowCount ?? 0;
  }

  /**
   * Creates the daily partitions of `days` that this process has not seen yet. Concurrent
   * creators (other ingest replicas, other partitions' batches) take turns under an advisory lock
   * and `IF NOT EXISTS` makes the later ones no-ops.
   */
  async ensurePartitions(days: Iterable<number>): Promise<void> {
    const missing = [...new Set(days)]
      .filter((day) => !this.partitions.has(day))
      .sort((a, b) => a - b);
    if (missing.length === 0) return;
    await inTransaction(this.pool, async (client) => {
      await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      for (const day of missing) {
        // Only integers reach this text: the name and bounds are derived from the day number.
        const from = new Date(day * DAY_MS).toISOString();
        const to = new Date((day + 1) * DAY_MS).toISOString();
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF served_slates
             FOR VALUES FROM ('${from}') TO ('${to}')`,
        );
      }
    });
    for (const day of missing) this.partitions.add(day);
  }

  /** Drops the daily partitions that ended at or before `cutoff`; returns their names. */
  async dropPartitionsBefore(cutoff: Date): Promise<string[]> {
    const listed = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'served_slates'::regclass`,
    );
    const expired = listed.rows
      .map(({ name }) => ({ name, day: dayOfPartition(name) }))
      .filter(
        (entry): entry is { name: string; day: number } =>
          entry.day !== undefined && (entry.day + 1) * DAY_MS <= cutoff.getTime(),
      );
    const dropped: string[] = [];
    // One transaction each: a partition that cannot get its lock now waits for the next round
    // without keeping the others.
    for (const { name, day } of expired) {
      await inTransaction(this.pool, async (client) => {
        await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
        await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
        await client.query(`DROP TABLE IF EXISTS ${name}`);
      });
      this.partitions.delete(day);
      dropped.push(name);
    }
    return dropped;
  }
}
