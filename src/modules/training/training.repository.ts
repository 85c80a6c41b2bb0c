import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { PG_POOL } from '../../infra/tokens';
import { readItemTexts } from '../embedding/embedding.repository';
import { bytesToVector } from '../embedding/vector-codec';
import { ClickRow, EventRow, ServedSlateRow } from './dataset/events';

interface EventRecord {
  seq: string;
  type: 'impression' | 'click';
  user_id: string;
  item_id: string;
  ts: Date;
  request_id: string | null;
}

/** The only SQL of the training module: events to learn from, clicks for histories, vectors, texts. */
function toEventRow(row: EventRecord): EventRow {
  return {
    seq: row.seq,
    type: row.type,
    userId: row.user_id,
    itemId: row.item_id,
    ts: row.ts.getTime(),
    requestId: row.request_id,
  };
}

@Injectable()
export class TrainingRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * Impressions and clicks with seq in (afterSeq, untilSeq] and time from `since`, the newest
   * `limit` of them (returned oldest first). afterSeq null = from the beginning; since null = any
   * time (a time bound lets PostgreSQL skip the day partitions before it).
   */
  async events(
    afterSeq: string | null,
    untilSeq: string,
    limit: number,
    since: Date | null,
  ): Promise<EventRow[]> {
    const result = await this.pool.query<EventRecord>(
      `SELECT seq::text AS seq, type, user_id, item_id, ts, request_id FROM (
         SELECT seq, type, user_id, item_id, ts, request_id FROM events
         WHERE type IN ('impression', 'click') AND seq <= $2::bigint
           AND ($1::bigint IS NULL OR seq > $1::bigint)
           AND ($4::timestamptz IS NULL OR ts >= $4::timestamptz)
         ORDER BY seq DESC LIMIT $3
       ) newest ORDER BY seq`,
      [afterSeq, untilSeq, limit, since],
    );
    return result.rows.map(toEventRow);
  }

  /** Impressions and clicks in a time window (validation of a stored version). */
  async eventsBetween(from: Date, to: Date, limit: number): Promise<EventRow[]> {
    const result = await this.pool.query<EventRecord>(
      `SELECT seq::text AS seq, type, user_id, item_id, ts, request_id FROM events
       WHERE type IN ('impression', 'click') AND ts >= $1 AND ts <= $2
       ORDER BY seq LIMIT $3`,
      [from, to, limit],
    );
    return result.rows.map(toEventRow);
  }

  /** Every click of these users up to untilSeq and from `since` (null: any time): the histories. */
  async clicksOf(
    userIds: readonly string[],
    untilSeq: string | null,
    since: Date | null,
  ): Promise<ClickRow[]> {
    if (userIds.length === 0) return [];
    const result = await this.pool.query<{ user_id: string; item_id: string; ts: Date }>(
      `SELECT user_id, item_id, ts FROM events
       WHERE type = 'click' AND user_id = ANY($1::text[])
         AND ($2::bigint IS NULL OR seq <= $2::bigint)
         AND ($3::timestamptz IS NULL OR ts >= $3::timestamptz)
       ORDER BY user_id, ts`,
      [userIds, untilSeq, since],
    );
    return result.rows.map((row) => ({
      userId: row.user_id,
      itemId: row.item_id,
      ts: row.ts.getTime(),
    }));
  }

  /**
   * Served slates of these request ids served in [from, to] (the time bounds let PostgreSQL skip
   * the day partitions outside them).
   */
  async servedSlates(
    requestIds: readonly string[],
    from: Date,
    to: Date,
  ): Promise<ServedSlateRow[]> {
    if (requestIds.length === 0) return [];
    const result = await this.pool.query<{
      request_id: string;
      user_id: string;
      served_at: Date;
      features: string[];
      item_ids: string[];
      feature_values: number[];
    }>(
      `SELECT request_id, user_id, served_at, features, item_ids, feature_values
       FROM served_slates
       WHERE request_id = ANY($1::text[]) AND served_at >= $2 AND served_at <= $3`,
      [requestIds, from, to],
    );
    return result.rows.map((row) => ({
      requestId: row.request_id,
      userId: row.user_id,
      servedAt: row.served_at.getTime(),
      features: row.features,
      itemIds: row.item_ids,
      values: row.feature_values,
    }));
  }

  /** Newest events.seq (null when there are no events). */
  async latestSeq(): Promise<string | null> {
    const result = await this.pool.query<{ seq: string | null }>(
      'SELECT max(seq)::text AS seq FROM events',
    );
    return result.rows[0]?.seq ?? null;
  }

  /** Stored text vectors of this encoder for these items (items without one are absent). */
  /** Whether any item has a stored text vector of this encoder. */
  async hasVectors(encoderId: string): Promise<boolean> {
    const result = await this.pool.query<{ found: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM item_embeddings WHERE encoder_id = $1) AS found',
      [encoderId],
    );
    return result.rows[0].found;
  }

  /** Whether catalog items wait for the embedding worker (new or changed text). */
  async itemsAwaitVectors(): Promise<boolean> {
    const result = await this.pool.query<{ waiting: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM items WHERE embed_pending AND NOT deleted) AS waiting',
    );
    return result.rows[0].waiting;
  }

  async vectors(encoderId: string, itemIds: readonly string[]): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    if (itemIds.length === 0) return out;
    const result = await this.pool.query<{ item_id: string; vector: Buffer }>(
      `SELECT item_id, vector FROM item_embeddings
       WHERE encoder_id = $1 AND item_id = ANY($2::text[])`,
      [encoderId, itemIds],
    );
    for (const row of result.rows) out.set(row.item_id, bytesToVector(row.vector));
    return out;
  }

  /** The current encoder input text of these items (models with token attention encode them). */
  itemTexts(itemIds: readonly string[]): Promise<Map<string, string>> {
    return readItemTexts(this.pool, itemIds);
  }
}
