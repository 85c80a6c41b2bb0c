import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { randomUUID } from 'node:crypto';
import { inTransaction } from '../../infra/postgres';
import { PG_POOL } from '../../infra/tokens';
import type { EventRow, ItemRow } from './ingest.batch';
import type { EventType } from '../../common/event-types';

export interface StoredEvent extends EventRow {
  readonly seq: string;
}

/** Newly stored events and the token their owed online-state update is queued under. */
export interface StoredBatch {
  readonly events: StoredEvent[];
  readonly token: string | undefined;
}

export interface ItemUpsertCounts {
  readonly inserted: number;
  readonly updated: number;
  /** Writes older than what is stored (last write by timestamp wins). */
  readonly stale: number;
}

interface EventRecord {
  event_id: string;
  seq: string;
  type: EventType;
  user_id: string;
  item_id: string;
  ts: Date;
  request_id: string | null;
  position: number | null;
  context: Record<string, unknown> | null;
}

const EVENT_COLUMNS = 'event_id, seq, type, user_id, item_id, ts, request_id, position, context';

function toStored(record: EventRecord): StoredEvent {
  return {
    eventId: record.event_id,
    seq: record.seq,
    type: record.type,
    userId: record.user_id,
    itemId: record.item_id,
    ts: record.ts,
    requestId: record.request_id,
    position: record.position,
    context: record.context,
  };
}

/** The earliest and latest event time of a stored batch (not empty). */
function timeSpan(events: readonly StoredEvent[]): { from: Date; to: Date } {
  let from = events[0].ts;
  let to = from;
  for (const { ts } of events) {
    if (ts < from) from = ts;
    if (ts > to) to = ts;
  }
  return { from, to };
}

/** What makes an event a duplicate: its id and time (the key of the partitioned `events`). */
function eventKey(eventId: string, ts: Date): string {
  return `${eventId}\u0000${String(ts.getTime())}`;
}

/** Applies owed online-state updates to Redis, guarded by their token. */
export type OwedApply = (events: StoredEvent[], token: string) => Promise<void>;

/** All SQL of the ingest module: multi-row (unnest) writes, one transaction per batch. */
@Injectable()
export class IngestRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  /**
   * Inserts a batch in one transaction; returns the rows that were new (with their seq), so that
   * only those reach the online state, and the token their owed online-state update is queued
   * under (write-ahead: a crash between this commit and the Redis write loses nothing). Replayed
   * events (same id and time) change nothing.
   */
  async insertEvents(rows: readonly EventRow[]): Promise<StoredBatch> {
    if (rows.length === 0) return { events: [], token: undefined };
    return inTransaction(this.pool, async (client) => {
      const result = await client.query<{ event_id: string; ts: Date; seq: string }>(
        `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id, position, context)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                              $6::text[], $7::int[], $8::jsonb[])
         ON CONFLICT (event_id, ts) DO NOTHING
         RETURNING event_id, ts, seq`,
        [
          rows.map((row) => row.eventId),
          rows.map((row) => row.type),
          rows.map((row) => row.userId),
          rows.map((row) => row.itemId),
          rows.map((row) => row.ts.toISOString()),
          rows.map((row) => row.requestId),
          rows.map((row) => row.position),
          rows.map((row) => (row.context === null ? null : JSON.stringify(row.context))),
        ],
      );
      const seqs = new Map(result.rows.map((row) => [eventKey(row.event_id, row.ts), row.seq]));
      const events: StoredEvent[] = [];
      for (const row of rows) {
        const key = eventKey(row.eventId, row.ts);
        const seq = seqs.get(key);
        if (seq === undefined) continue;
        // The same event twice in one batch: only the first insert won.
        seqs.delete(key);
        events.push({ ...row, seq });
      }
      if (events.length === 0) return { events, token: undefined };
      const token = randomUUID();
      const stored = events.map((event) => event.seq);
      const times = timeSpan(events);
      await client.query(
        `INSERT INTO online_state_pending (token, seqs, max_seq, min_ts, max_ts)
         VALUES ($1, $2::bigint[], (SELECT max(s) FROM unnest($2::bigint[]) s), $3, $4)`,
        [token, stored, times.from, times.to],
      );
      return { events, token };
    });
  }

  /**
   * Upserts one write per item (callers dedupe): a write older than the stored `source_ts` is
   * ignored; a deletion keeps the stored text; a changed text hash marks the item for embedding.
   */
  async upsertItems(rows: readonly ItemRow[]): Promise<ItemUpsertCounts> {
    if (rows.length === 0) return { inserted: 0, updated: 0, stale: 0 };
    return inTransaction(this.pool, async (client) => {
      const result = await client.query<{ inserted: boolean }>(
        `INSERT INTO items AS i (item_id, title, description, category, tags, price, created_at,
                                 source_ts, deleted, text_hash, embed_pending)
         SELECT u.item_id, u.title, u.description, u.category,
                COALESCE(ARRAY(SELECT jsonb_array_elements_text(u.tags)), '{}'),
                u.price, u.created_at, u.source_ts, u.deleted, u.text_hash, NOT u.deleted
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                     $6::float8[], $7::timestamptz[], $8::timestamptz[], $9::bool[], $10::text[])
              AS u(item_id, title, description, category, tags, price, created_at, source_ts,
                   deleted, text_hash)
         ON CONFLICT (item_id) DO UPDATE SET
           title = CASE WHEN EXCLUDED.deleted THEN i.title ELSE EXCLUDED.title END,
           description = CASE WHEN EXCLUDED.deleted THEN i.description ELSE EXCLUDED.description END,
           category = CASE WHEN EXCLUDED.deleted THEN i.category ELSE EXCLUDED.category END,
           tags = CASE WHEN EXCLUDED.deleted THEN i.tags ELSE EXCLUDED.tags END,
           price = CASE WHEN EXCLUDED.deleted THEN i.price ELSE EXCLUDED.price END,
           created_at = COALESCE(EXCLUDED.created_at, i.created_at),
           source_ts = EXCLUDED.source_ts,
           deleted = EXCLUDED.deleted,
           text_hash = CASE WHEN EXCLUDED.deleted THEN i.text_hash ELSE EXCLUDED.text_hash END,
           embed_pending = CASE
             WHEN EXCLUDED.deleted THEN i.embed_pending
             WHEN i.text_hash IS DISTINCT FROM EXCLUDED.text_hash OR i.deleted THEN true
             ELSE i.embed_pending END,
           ingested_at = now()
         WHERE EXCLUDED.source_ts >= i.source_ts
         RETURNING (xmax = 0) AS inserted`,
        [
          rows.map((row) => row.itemId),
          rows.map((row) => row.title),
          rows.map((row) => row.description),
          rows.map((row) => row.category),
          rows.map((row) => JSON.stringify(row.tags)),
          rows.map((row) => row.price),
          rows.map((row) => row.createdAt?.toISOString() ?? null),
          rows.map((row) => row.sourceTs.toISOString()),
          rows.map((row) => row.deleted),
          rows.map((row) => row.textHash),
        ],
      );
      const inserted = result.rows.filter((row) => row.inserted).length;
      const updated = result.rows.length - inserted;
      return { inserted, updated, stale: rows.length - result.rows.length };
    });
  }

  /** Marks a queued online-state update as applied. */
  async settlePending(token: string): Promise<void> {
    await this.pool.query('DELETE FROM online_state_pending WHERE token = $1', [token]);
  }

  /**
   * Applies the oldest owed updates, up to about `limit` events, each under its own token (the
   * Redis side applies a token at most once, so racing the live path or another replica is
   * harmless), then settles them. Returns how many events.
   */
  async drainBacklog(limit: number, apply: OwedApply): Promise<number> {
    const pending = await this.pool.query<{
      token: string;
      seqs: string[];
      min_ts: Date | null;
      max_ts: Date | null;
    }>(
      `SELECT token, seqs::text[] AS seqs, min_ts, max_ts
       FROM online_state_pending ORDER BY max_seq LIMIT $1`,
      [Math.max(1, Math.ceil(limit / 100))],
    );
    let applied = 0;
    for (const { token, seqs, min_ts: from, max_ts: to } of pending.rows) {
      if (applied >= limit) break;
      // Bounded by the batch's times, passed as values, the read is planned over its days'
      // partitions alone; a row queued before the times were kept (NULL) reads every partition.
      const result = await this.pool.query<EventRecord>(
        `SELECT ${EVENT_COLUMNS} FROM events
         WHERE seq = ANY($1::bigint[])
           AND ($2::timestamptz IS NULL OR ts >= $2) AND ($3::timestamptz IS NULL OR ts <= $3)
         ORDER BY seq`,
        [seqs, from, to],
      );
      if (result.rows.length > 0) await apply(result.rows.map(toStored), token);
      await this.settlePending(token);
      applied += result.rows.length;
    }
    return applied;
  }

  /** Highest seq stored so far (0 when empty) and the number of events up to it. */
  async eventWatermark(): Promise<{ maxSeq: string; count: number }> {
    const result = await this.pool.query<{ max_seq: string | null; n: string }>(
      'SELECT max(seq)::text AS max_seq, count(*) AS n FROM events',
    );
    return { maxSeq: result.rows[0]?.max_seq ?? '0', count: Number(result.rows[0]?.n ?? 0) };
  }

  /** Events with afterSeq < seq <= maxSeq, in seq order (keyset pagination for the rebuild). */
  async eventsPage(afterSeq: string, maxSeq: string, limit: number): Promise<StoredEvent[]> {
    const result = await this.pool.query<EventRecord>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
      [afterSeq, maxSeq, limit],
    );
    return result.rows.map(toStored);
  }

  /** Drops owed updates of events up to maxSeq (a rebuild replayed them); keeps the later ones. */
  async clearBacklogUpTo(maxSeq: string): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      await client.query(
        `UPDATE online_state_pending
            SET seqs = ARRAY(SELECT s FROM unnest(seqs) s WHERE s > $1::bigint ORDER BY s)
          WHERE EXISTS (SELECT 1 FROM unnest(seqs) s WHERE s <= $1::bigint)`,
        [maxSeq],
      );
      await client.query('DELETE FROM online_state_pending WHERE cardinality(seqs) = 0');
    });
  }

  async isEmpty(): Promise<boolean> {
    const result = await this.pool.query<{ empty: boolean }>(
      'SELECT NOT EXISTS (SELECT 1 FROM items) AND NOT EXISTS (SELECT 1 FROM events) AS empty',
    );
    return result.rows[0]?.empty ?? true;
  }
}
