import { Inject, Injectable } from '@nestjs/common';
import type { Counter } from 'prom-client';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { WarningThrottle } from '../../common/logger';
import type { Logger } from '../../common/logger';
import { DomainError } from '../../common/errors';
import { withTimeout } from '../../common/timeout';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
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
/** How long requests skip a Redis server after one of its reads timed out. */
const SLOW_REDIS_SKIP_MS = 1000;

/**
 * The online state for the api role: Redis first, PostgreSQL (slower, computed from events) while
 * Redis is down, failing or slow; each answer says which it came from. A read Redis has not
 * answered in REDIS_READ_TIMEOUT_MS fails, and requests skip that server (one master of a
 * cluster: the others still answer theirs) for a second after it, so that a stalled Redis costs
 * a request at most the timeout instead of its whole RANK_TIMEOUT_MS.
 */
@Injectable()
export class OnlineStateReader {
  private readonly logger: Logger;
  private popularFallback: { at: number; ids: Promise<string[]> } | undefined;
  private readonly warnings = new WarningThrottle();
  private readonly timeoutMs: number;
  /** Until when (ms) requests skip each server (RedisClient.serverOf), after a read that timed out. */
  private readonly skipUntil = new Map<string, number>();
  private readonly timeouts: Counter;

  constructor(
    private readonly redis: OnlineStateRedisRepository,
    private readonly postgres: OnlineStatePostgresRepository,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'online-state-reader' });
    this.timeoutMs = config.redis.readTimeoutMs;
    this.timeouts = metrics.counter(
      'online_state_redis_read_timeouts_total',
      'Redis reads on a request path that took longer than REDIS_READ_TIMEOUT_MS (each sends the next second of requests to PostgreSQL)',
    );
  }

  /** Connected, and `server` not skipped after a slow read. */
  private usable(server: string): boolean {
    return this.redis.available && Date.now() >= (this.skipUntil.get(server) ?? 0);
  }

  /**
   * A read from the Redis `server` (RedisClient.serverOf) on a request's path; undefined when it
   * is not usable or the read failed or timed out. For what has no other source, such as the
   * ranking's cached user vectors.
   */
  async fromRedis<T>(server: string, read: () => Promise<T>): Promise<T | undefined> {
    if (!this.usable(server)) return undefined;
    try {
      return await this.timed(server, read());
    } catch (error) {
      this.warn(error);
      return undefined;
    }
  }

  private async timed<T>(server: string, read: Promise<T>): Promise<T> {
    try {
      return await withTimeout(read, this.timeoutMs, 'redis read');
    } catch (error) {
      if (isTimeout(error)) {
        this.timeouts.inc();
        this.skipUntil.set(server, Date.now() + SLOW_REDIS_SKIP_MS);
      }
      throw error;
    }
  }

  private async read<T>(
    server: string,
    query: (store: OnlineStateStore) => Promise<T>,
  ): Promise<Read<T>> {
    if (this.usable(server)) {
      try {
        return { value: await this.timed(server, query(this.redis)), fromPostgres: false };
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
  interestVersion(userId: string): Promise<string | undefined> {
    return this.fromRedis(this.redis.userServer(userId), () => this.redis.interestVersion(userId));
  }

  /** The items' popularity from Redis alone; undefined when it is not usable, fails or is slow. */
  popularityFromRedis(
    itemIds: readonly string[],
    nowMs: number,
  ): Promise<(ItemPopularity | undefined)[] | undefined> {
    return this.fromRedis(this.redis.itemsServer(), () => this.redis.popularity(itemIds, nowMs));
  }

  recent(userId: string, limit: number): Promise<Read<Interaction[]>> {
    return this.read(this.redis.userServer(userId), (store) => store.recent(userId, limit));
  }

  popularity(
    itemIds: readonly string[],
    nowMs: number,
  ): Promise<Read<(ItemPopularity | undefined)[]>> {
    return this.read(this.redis.itemsServer(), (store) => store.popularity(itemIds, nowMs));
  }

  /** Up to `count` popular items that `accept` lets through, best first. */
  popularItems(count: number, accept: (itemId: string) => boolean): Promise<Read<string[]>> {
    return this.read(this.redis.itemsServer(), async (store) =>
      store === this.postgres
        ? (await this.popularFromPostgres()).filter(accept).slice(0, count)
        : this.popularFromRedis(count, accept),
    );
  }

  /** The same from Redis alone; undefined when it is not usable, fails or is slow. */
  popularItemsFromRedis(
    count: number,
    accept: (itemId: string) => boolean,
  ): Promise<string[] | undefined> {
    return this.fromRedis(this.redis.itemsServer(), () => this.popularFromRedis(count, accept));
  }

  private async popularFromRedis(
    count: number,
    accept: (itemId: string) => boolean,
  ): Promise<string[]> {
    const out: string[] = [];
    for (let offset = 0; out.length < count && offset < POPULAR_MAX_SCAN;) {
      const page = await this.redis.popularItems(offset, POPULAR_PAGE);
      for (const itemId of page) if (out.length < count && accept(itemId)) out.push(itemId);
      if (page.length < POPULAR_PAGE) break;
      offset += POPULAR_PAGE;
    }
    return out;
  }

  /** Shared by concurrent requests and kept a while: the query scans the events table. */
  private popularFromPostgres(): Promise<string[]> {
    const now = Date.now();
    if (
      this.popularFallback === undefined ||
      now - this.popularFallback.at > POPULAR_FALLBACK_TTL_MS
    ) {
      const ids = this.postgres.popularItems(0, POPULAR_FALLBACK_SIZE, now);
      this.popularFallback = { at: now, ids };
      ids.catch(() => {
        this.popularFallback = undefined;
      });
    }
    return this.popularFallback.ids;
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof DomainError && error.code === 'TIMEOUT';
}
