import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import { DAY_MS } from '../../common/daily-partitions';
import { PG_POOL } from '../../infra/tokens';

export interface ItemRecord {
  readonly itemId: string;
  readonly title: string;
  readonly description: string | null;
  readonly category: string | null;
  readonly tags: readonly string[];
  readonly price: number | null;
  readonly createdAt: Date | null;
  readonly deleted: boolean;
}

export interface DailyEvents {
  readonly day: Date;
  readonly impressions: number;
  readonly clicks: number;
  readonly addToCarts: number;
  readonly purchases: number;
}

interface ItemRow {
  item_id: string;
  title: string;
  description: string | null;
  category: string | null;
  tags: string[];
  price: number | null;
  created_at: Date | null;
  deleted: boolean;
}

/** The inspector's reads of the catalog and of events (the system of record). */
@Injectable()
export class InspectorRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async items(itemIds: readonly string[]): Promise<Map<string, ItemRecord>> {
    const { rows } = await this.pool.query<ItemRow>(
      `SELECT item_id, title, description, category, tags, price, created_at, deleted
         FROM items WHERE item_id = ANY($1)`,
      [itemIds],
    );
    return new Map(
      rows.map((row) => [
        row.item_id,
        {
          itemId: row.item_id,
          title: row.title,
          description: row.description,
          category: row.category,
          tags: row.tags,
          price: row.price,
          createdAt: row.created_at,
          deleted: row.deleted,
        },
      ]),
    );
  }

  /** The item's events per UTC day over the last `days` days, oldest first (days without none). */
  async dailyEvents(itemId: string, days: number): Promise<DailyEvents[]> {
    const { rows } = await this.pool.query<{
      day: Date;
      impressions: number;
      clicks: number;
      carts: number;
      purchases: number;
    }>(
      `SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
              count(*) FILTER (WHERE type = 'impression')::int AS impressions,
              count(*) FILTER (WHERE type = 'click')::int AS clicks,
              count(*) FILTER (WHERE type = 'add_to_cart')::int AS carts,
              count(*) FILTER (WHERE type = 'purchase')::int AS purchases
         FROM events
        WHERE item_id = $1 AND ts >= $2
        GROUP BY 1 ORDER BY 1`,
      // A value, not `now() - …`: the planner then leaves out the partitions before it.
      [itemId, new Date(Date.now() - days * DAY_MS)],
    );
    return rows.map((row) => ({
      day: row.day,
      impressions: row.impressions,
      clicks: row.clicks,
      addToCarts: row.carts,
      purchases: row.purchases,
    }));
  }
}
