import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import { PG_POOL } from '../../infra/tokens';
import type { Boost, ItemPopularity, RankingProfile } from './profile';

export interface StoredProfile extends RankingProfile {
  readonly updatedAt: Date;
}

export interface ItemFeatures {
  readonly itemId: string;
  readonly category: string | undefined;
  readonly price: number | undefined;
  readonly createdAtMs: number | undefined;
  readonly deleted: boolean;
}

export interface Interaction {
  readonly type: string;
  readonly itemId: string;
  readonly ts: number;
}

interface ProfileRow {
  name: string;
  weights: Record<string, number>;
  boosts: Boost[];
  recency_half_life_days: number;
  updated_at: Date;
}

const toProfile = (row: ProfileRow): StoredProfile => ({
  name: row.name,
  weights: row.weights,
  boosts: row.boosts,
  recencyHalfLifeDays: row.recency_half_life_days,
  updatedAt: row.updated_at,
});

/** Engagement weights of `pop-rank` (online-state.keys.ts ENGAGEMENT_WEIGHTS), in SQL. */
const ENGAGEMENT_SQL = `CASE type WHEN 'click' THEN 1 WHEN 'add_to_cart' THEN 3 WHEN 'purchase' THEN 5 ELSE 0 END`;

/** 2^-(age / half-life) with the half-life in $2 (ms); clamped, as float8 underflow is an error. */
const decay = (now: string) =>
  `power(2::float8, greatest(-1000, -extract(epoch FROM ${now} - ts)::float8 * 1000 / $2::float8))`;

/** Ranking's PostgreSQL: profiles, catalog features, and the online state's slow fallback. */
@Injectable()
export class RankingRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async profiles(): Promise<StoredProfile[]> {
    const { rows } = await this.pool.query<ProfileRow>(
      'SELECT name, weights, boosts, recency_half_life_days, updated_at FROM ranking_profiles',
    );
    return rows.map(toProfile);
  }

  async upsertProfile(profile: RankingProfile): Promise<StoredProfile> {
    const { rows } = await this.pool.query<ProfileRow>(
      `INSERT INTO ranking_profiles (name, weights, boosts, recency_half_life_days, updated_at)
       VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (name) DO UPDATE SET weights = EXCLUDED.weights, boosts = EXCLUDED.boosts,
         recency_half_life_days = EXCLUDED.recency_half_life_days, updated_at = now()
       RETURNING name, weights, boosts, recency_half_life_days, updated_at`,
      [
        profile.name,
        JSON.stringify(profile.weights),
        JSON.stringify(profile.boosts),
        profile.recencyHalfLifeDays,
      ],
    );
    const row = rows.at(0);
    if (row === undefined) throw new Error('upsert returned no row');
    return toProfile(row);
  }

  /** Items changed at or after `since` (all items without it), and the database clock of the read. */
  async itemFeatures(since: Date | undefined): Promise<{ items: ItemFeatures[]; readAt: Date }> {
    const { rows } = await this.pool.query<{
      read_at: Date;
      item_id: string | null;
      category: string | null;
      price: number | null;
      created_at: Date | null;
      deleted: boolean | null;
    }>(
      // One row even when nothing changed, so the caller always learns the database clock.
      `SELECT r.read_at, i.item_id, i.category, i.price, i.created_at, i.deleted
       FROM (SELECT now() AS read_at) r
       LEFT JOIN items i ON $1::timestamptz IS NULL OR i.ingested_at >= $1`,
      [since ?? null],
    );
    const items: ItemFeatures[] = [];
    for (const row of rows) {
      if (row.item_id === null) continue;
      items.push({
        itemId: row.item_id,
        category: row.category ?? undefined,
        price: row.price ?? undefined,
        createdAtMs: row.created_at?.getTime(),
        deleted: row.deleted === true,
      });
    }
    return { items, readAt: rows[0].read_at };
  }

  /** The user's newest interactions (impressions are not interactions), most recent first. */
  async recentInteractions(userId: string, limit: number): Promise<Interaction[]> {
    const { rows } = await this.pool.query<{ type: string; item_id: string; ts: Date }>(
      `SELECT type, item_id, ts FROM events
       WHERE user_id = $1 AND type <> 'impression' ORDER BY ts DESC LIMIT $2`,
      [userId, limit],
    );
    return rows.map((row) => ({ type: row.type, itemId: row.item_id, ts: row.ts.getTime() }));
  }

  /** Decayed counts per item as of now, like the online state keeps them. */
  async popularity(
    itemIds: readonly string[],
    halfLifeMs: number,
  ): Promise<Map<string, ItemPopularity>> {
    const { rows } = await this.pool.query<{
      item_id: string;
      imp: number | null;
      clk: number | null;
      cart: number | null;
      buy: number | null;
    }>(
      `SELECT item_id,
              sum(d) FILTER (WHERE type = 'impression') AS imp,
              sum(d) FILTER (WHERE type = 'click') AS clk,
              sum(d) FILTER (WHERE type = 'add_to_cart') AS cart,
              sum(d) FILTER (WHERE type = 'purchase') AS buy
       FROM (SELECT item_id, type,
                    ${decay('now()')} AS d
             FROM events WHERE item_id = ANY($1)) e
       GROUP BY item_id`,
      [itemIds, halfLifeMs],
    );
    return new Map(
      rows.map((row) => [
        row.item_id,
        {
          impressions: row.imp ?? 0,
          clicks: row.clk ?? 0,
          addToCarts: row.cart ?? 0,
          purchases: row.buy ?? 0,
        },
      ]),
    );
  }

  /** Items by decayed engagement, best first. Scans the events table: a fallback, cache it. */
  async popularItems(limit: number, halfLifeMs: number): Promise<string[]> {
    // Decay relative to the newest event keeps the numbers representable for old data sets.
    const { rows } = await this.pool.query<{ item_id: string }>(
      `WITH newest AS (SELECT max(ts) AS t FROM events)
       SELECT item_id FROM events, newest
       WHERE type <> 'impression'
       GROUP BY item_id
       ORDER BY sum(${ENGAGEMENT_SQL} * ${decay('newest.t')}) DESC,
                item_id
       LIMIT $1`,
      [limit, halfLifeMs],
    );
    return rows.map((row) => row.item_id);
  }
}
