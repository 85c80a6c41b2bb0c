import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { DAY_MS } from '../../common/daily-partitions';
import type { EventType } from '../../common/event-types';
import { PG_POOL } from '../../infra/tokens';
import {
  decaySql,
  ENGAGEMENT_WEIGHT_SQL,
  ItemPopularity,
  POPULARITY_HORIZON_HALF_LIVES,
} from './online-state.schema';
import type { Interaction, OnlineStateStore } from './online-state.store';

/** Days of a user's interactions `recent` reads first (enough for active users). */
const RECENT_FIRST_DAYS = 14;

/**
 * The online state computed from `events`, for when Redis fails: the same answers (the contract
 * test holds both to it, but for events past POPULARITY_HORIZON_HALF_LIVES, which Redis keeps at
 * a weight under 1e-9), at the cost of scanning events. Slow: callers cache what they can.
 */
@Injectable()
export class OnlineStatePostgresRepository implements OnlineStateStore {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * The last RECENT_FIRST_DAYS first, older days only when those were not enough: a read bounded
   * by a value is planned over its days' partitions alone, an unbounded one over every retained
   * day (docs/operations/retention.md), so an active user's history costs two weeks of partitions.
   */
  async recent(userId: string, limit: number): Promise<Interaction[]> {
    const since = new Date(Date.now() - RECENT_FIRST_DAYS * DAY_MS);
    const newest = await this.interactions(userId, limit, 'ts >= $3', since);
    if (newest.length >= limit) return newest;
    const older = await this.interactions(userId, limit - newest.length, 'ts < $3', since);
    return [...newest, ...older];
  }

  /** The user's newest `limit` interactions whose `ts` meets `bound` (against $3, `at`). */
  private async interactions(
    userId: string,
    limit: number,
    bound: 'ts >= $3' | 'ts < $3',
    at: Date,
  ): Promise<Interaction[]> {
    const { rows } = await this.pool.query<{ type: EventType; item_id: string; ts: Date }>(
      `SELECT type, item_id, ts FROM events
       WHERE user_id = $1 AND type <> 'impression' AND ${bound}
       ORDER BY ts DESC, event_id DESC LIMIT $2`,
      [userId, limit, at],
    );
    return rows.map((row) => ({ type: row.type, itemId: row.item_id, ts: row.ts.getTime() }));
  }

  async popularity(
    itemIds: readonly string[],
    nowMs: number,
  ): Promise<(ItemPopularity | undefined)[]> {
    if (itemIds.length === 0) return [];
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
       FROM (SELECT item_id, type, ${decaySql('ts', 'to_timestamp($3::float8 / 1000)', '$2')} AS d
             FROM events WHERE item_id = ANY($1) AND ts >= $4) e
       GROUP BY item_id`,
      [itemIds, this.config.online.popularityHalfLifeMs, nowMs, this.horizonStart(nowMs)],
    );
    const found = new Map(
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
    return itemIds.map((itemId) => found.get(itemId));
  }

  async popularItems(offset: number, count: number, nowMs: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ item_id: string }>(
      `SELECT item_id FROM events
       WHERE ts >= $5
       GROUP BY item_id
       HAVING sum(${ENGAGEMENT_WEIGHT_SQL}) > 0
       ORDER BY sum(${ENGAGEMENT_WEIGHT_SQL} * ${decaySql('ts', 'to_timestamp($4::float8 / 1000)', '$3')}) DESC, item_id
       OFFSET $1 LIMIT $2`,
      [offset, count, this.config.online.popularityHalfLifeMs, nowMs, this.horizonStart(nowMs)],
    );
    return rows.map((row) => row.item_id);
  }

  /**
   * The oldest event time the horizon takes, as a value rather than an expression: the planner
   * then leaves out the partitions before it (an expression is pruned only at execution, after
   * planning every partition).
   */
  private horizonStart(nowMs: number): Date {
    return new Date(
      nowMs - this.config.online.popularityHalfLifeMs * POPULARITY_HORIZON_HALF_LIVES,
    );
  }
}
