import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { PopularityMirror } from './popularity-mirror';
import type { ItemPopularity } from './profile';
import { CachedUserVector, RankingRedisRepository, UserState } from './ranking-redis.repository';
import { Interaction, RankingRepository } from './ranking.repository';
import type { ModelCatalog } from './serving-model';

/** A read and whether it had to come from PostgreSQL because Redis failed. */
export interface Read<T> {
  readonly value: T;
  readonly fromPostgres: boolean;
}

const POPULAR_FALLBACK_SIZE = 5000;
const POPULAR_FALLBACK_TTL_MS = 30_000;
const POPULAR_PAGE = 500;
const POPULAR_MAX_SCAN = 20_000;
const WARN_INTERVAL_MS = 10_000;

/**
 * The online state as ranking needs it: Redis first, PostgreSQL (slower, computed from events)
 * when Redis is down or fails. The vector cache simply has no hits while Redis is down.
 */
@Injectable()
export class OnlineStateReader {
  private readonly logger: Logger;
  private popularFallback: { at: number; ids: Promise<string[]> } | undefined;
  private lastWarned = 0;

  constructor(
    private readonly redis: RankingRedisRepository,
    private readonly postgres: RankingRepository,
    private readonly mirror: PopularityMirror,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'ranking-online-state' });
  }

  private async read<T>(
    fromRedis: () => Promise<T>,
    fromPostgres: () => Promise<T>,
  ): Promise<Read<T>> {
    if (this.redis.available) {
      try {
        return { value: await fromRedis(), fromPostgres: false };
      } catch (error) {
        this.warn(error);
      }
    }
    return { value: await fromPostgres(), fromPostgres: true };
  }

  private warn(error: unknown): void {
    const now = Date.now();
    if (now - this.lastWarned < WARN_INTERVAL_MS) return;
    this.lastWarned = now;
    this.logger.warn({ err: error }, 'redis read failed; ranking from PostgreSQL');
  }

  /** Interest version and cached vector; undefined without Redis (no cache then). */
  async userState(userId: string): Promise<UserState | undefined> {
    if (!this.redis.available) return undefined;
    try {
      return await this.redis.userState(userId);
    } catch (error) {
      this.warn(error);
      return undefined;
    }
  }

  recent(userId: string, limit: number): Promise<Read<Interaction[]>> {
    return this.read(
      () => this.redis.recent(userId, limit),
      () => this.postgres.recentInteractions(userId, limit),
    );
  }

  /**
   * Decayed engagement of each item, aligned with `itemIds` (undefined: none yet): from the
   * replica's copy while it is fresh (`rows`, the items' catalog rows, spare its id lookups).
   */
  popularity(
    itemIds: readonly string[],
    nowMs: number,
    rows?: { readonly catalog: ModelCatalog; readonly rows: Int32Array },
  ): Promise<Read<(ItemPopularity | undefined)[]>> {
    if (itemIds.length === 0) return Promise.resolve({ value: [], fromPostgres: false });
    if (this.mirror.isFresh()) {
      return Promise.resolve({
        value: this.mirror.popularity(itemIds, nowMs, rows),
        fromPostgres: false,
      });
    }
    return this.read(
      () => this.redis.popularity(itemIds, nowMs),
      async () => {
        const found = await this.postgres.popularity(
          itemIds,
          this.config.online.popularityHalfLifeMs,
        );
        return itemIds.map((itemId) => found.get(itemId));
      },
    );
  }

  /** Up to `count` popular items that `accept` lets through, best first. */
  popularItems(count: number, accept: (itemId: string) => boolean): Promise<Read<string[]>> {
    return this.read(
      async () => {
        const out: string[] = [];
        for (let offset = 0; out.length < count && offset < POPULAR_MAX_SCAN;) {
          const page = await this.redis.popularItems(offset, POPULAR_PAGE);
          for (const itemId of page) if (out.length < count && accept(itemId)) out.push(itemId);
          if (page.length < POPULAR_PAGE) break;
          offset += POPULAR_PAGE;
        }
        return out;
      },
      async () => (await this.popularFromPostgres()).filter(accept).slice(0, count),
    );
  }

  /** Shared by concurrent requests and kept a while: the query scans the events table. */
  private popularFromPostgres(): Promise<string[]> {
    const now = Date.now();
    if (
      this.popularFallback === undefined ||
      now - this.popularFallback.at > POPULAR_FALLBACK_TTL_MS
    ) {
      const ids = this.postgres.popularItems(
        POPULAR_FALLBACK_SIZE,
        this.config.online.popularityHalfLifeMs,
      );
      this.popularFallback = { at: now, ids };
      ids.catch(() => {
        this.popularFallback = undefined;
      });
    }
    return this.popularFallback.ids;
  }

  /** Best effort: a failed write only costs a recomputation next time. */
  cacheUserVector(userId: string, entry: CachedUserVector): void {
    if (!this.redis.available) return;
    this.redis.cacheUserVector(userId, entry).catch((error: unknown) => {
      this.warn(error);
    });
  }
}
