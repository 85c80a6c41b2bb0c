import { Inject, Injectable } from '@nestjs/common';
import { WarningThrottle } from '../../common/logger';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { OnlineStatePostgresRepository } from './online-state-postgres.repository';
import { OnlineStateRedisRepository } from './online-state-redis.repository';
import type { ItemPopularity } from './online-state.schema';
import type { Interaction, OnlineStateStore } from './online-state.store';

/** A read and whether it had to come from PostgreSQL because Redis failed. */
export interface Read<T> {
  readonly value: T;
  readonly fromPostgres: boolean;
}

const POPULAR_FALLBACK_SIZE = 5000;
const POPULAR_FALLBACK_TTL_MS = 30_000;
const POPULAR_PAGE = 500;
const POPULAR_MAX_SCAN = 20_000;

/**
 * The online state for the api role: Redis first, PostgreSQL (slower, computed from events) while
 * Redis is down or failing; each answer says which it came from.
 */
@Injectable()
export class OnlineStateReader {
  private readonly logger: Logger;
  private popularFallback: { at: number; ids: Promise<string[]> } | undefined;
  private readonly warnings = new WarningThrottle();

  constructor(
    private readonly redis: OnlineStateRedisRepository,
    private readonly postgres: OnlineStatePostgresRepository,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'online-state-reader' });
  }

  private async read<T>(query: (store: OnlineStateStore) => Promise<T>): Promise<Read<T>> {
    if (this.redis.available) {
      try {
        return { value: await query(this.redis), fromPostgres: false };
      } catch (error) {
        this.warn(error);
      }
    }
    return { value: await query(this.postgres), fromPostgres: true };
  }

  /** Logs a failed Redis read at most every few seconds (they come in bursts). */
  warn(error: unknown): void {
    if (this.warnings.allows()) {
      this.logger.warn({ err: error }, 'redis read failed; reading PostgreSQL');
    }
  }

  /** The user's interest version; undefined without Redis (nothing can be cached against it). */
  async interestVersion(userId: string): Promise<string | undefined> {
    if (!this.redis.available) return undefined;
    try {
      return await this.redis.interestVersion(userId);
    } catch (error) {
      this.warn(error);
      return undefined;
    }
  }

  recent(userId: string, limit: number): Promise<Read<Interaction[]>> {
    return this.read((store) => store.recent(userId, limit));
  }

  popularity(
    itemIds: readonly string[],
    nowMs: number,
  ): Promise<Read<(ItemPopularity | undefined)[]>> {
    return this.read((store) => store.popularity(itemIds, nowMs));
  }

  /** Up to `count` popular items that `accept` lets through, best first. */
  popularItems(count: number, accept: (itemId: string) => boolean): Promise<Read<string[]>> {
    return this.read(async (store) => {
      if (store === this.postgres) {
        return (await this.popularFromPostgres()).filter(accept).slice(0, count);
      }
      const out: string[] = [];
      for (let offset = 0; out.length < count && offset < POPULAR_MAX_SCAN;) {
        const page = await store.popularItems(offset, POPULAR_PAGE);
        for (const itemId of page) if (out.length < count && accept(itemId)) out.push(itemId);
        if (page.length < POPULAR_PAGE) break;
        offset += POPULAR_PAGE;
      }
      return out;
    });
  }

  /** Shared by concurrent requests and kept a while: the query scans the events table. */
  private popularFromPostgres(): Promise<string[]> {
    const now = Date.now();
    if (
      this.popularFallback === undefined ||
      now - this.popularFallback.at > POPULAR_FALLBACK_TTL_MS
    ) {
      const ids = this.postgres.popularItems(0, POPULAR_FALLBACK_SIZE);
      this.popularFallback = { at: now, ids };
      ids.catch(() => {
        this.popularFallback = undefined;
      });
    }
    return this.popularFallback.ids;
  }
}
