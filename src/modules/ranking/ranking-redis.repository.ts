import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { REDIS } from '../../infra/tokens';
import type { RedisClient } from '../../infra/redis';
import {
  decodeRecent,
  onlineKeys,
  parsePopularity,
  parsePopularityChanges,
  popularityAt,
  StoredPopularity,
} from '../ingest/online-state.keys';
import type { PopularityChange, PopularityFeed } from './popularity-mirror';
import type { ItemPopularity } from './profile';
import type { Interaction } from './ranking.repository';

export interface CachedUserVector {
  readonly modelVersion: string;
  readonly interestVersion: string;
  readonly vector: Float32Array;
}

export interface UserState {
  /** `interest:{userId}` version; '0' for a user without interactions. */
  readonly interestVersion: string;
  readonly cached: CachedUserVector | undefined;
}

function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

function decodeVector(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  // Copy into an aligned buffer: Float32Array needs a 4-byte aligned offset.
  const vector = new Float32Array(bytes.length / 4);
  new Uint8Array(vector.buffer).set(bytes);
  return vector;
}

/**
 * Ranking's Redis: reads the online state the ingest module writes (layout in
 * online-state.keys.ts) and owns the user interest vector cache `rank:uvec:{userId}`
 * (HASH m = model version, v = interest version it was built at, x = base64 float32).
 */
@Injectable()
export class RankingRedisRepository implements PopularityFeed {
  private readonly keys: ReturnType<typeof onlineKeys>;
  private readonly prefix: string;

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.keys = onlineKeys(config.redis.keyPrefix);
    this.prefix = config.redis.keyPrefix;
  }

  /** False while disconnected: callers go to PostgreSQL without waiting for a failure. */
  get available(): boolean {
    return this.redis.isReady;
  }

  private userVectorKey(userId: string): string {
    return `${this.prefix}rank:uvec:${userId}`;
  }

  /** The user's interest version and cached vector in one round trip. */
  async userState(userId: string): Promise<UserState> {
    const [version, cached] = await Promise.all([
      this.redis.hGet(this.keys.interest(userId), 'version'),
      this.redis.hmGet(this.userVectorKey(userId), ['m', 'v', 'x']),
    ]);
    const [m, v, x] = cached;
    return {
      interestVersion: version ?? '0',
      cached:
        typeof m === 'string' && typeof v === 'string' && typeof x === 'string'
          ? { modelVersion: m, interestVersion: v, vector: decodeVector(x) }
          : undefined,
    };
  }

  async recent(userId: string, limit: number): Promise<Interaction[]> {
    const members = await this.redis.zRange(this.keys.recent(userId), 0, limit - 1, {
      REV: true,
    });
    return members.map((member) => {
      const entry = decodeRecent(member);
      return { type: entry.type, itemId: entry.itemId, ts: entry.ts };
    });
  }

  async cacheUserVector(userId: string, entry: CachedUserVector): Promise<void> {
    const key = this.userVectorKey(userId);
    await Promise.all([
      this.redis.hSet(key, {
        m: entry.modelVersion,
        v: entry.interestVersion,
        x: encodeVector(entry.vector),
      }),
      this.redis.expire(key, this.config.ranking.userVectorTtlSeconds),
    ]);
  }

  /** Every item's popularity in one MGET, aligned with `itemIds` (undefined: no engagement yet). */
  async popularity(
    itemIds: readonly string[],
    nowMs: number,
  ): Promise<(ItemPopularity | undefined)[]> {
    const packed = await this.redis.mGet(itemIds.map((itemId) => this.keys.popularity(itemId)));
    const halfLifeMs = this.config.online.popularityHalfLifeMs;
    return packed.map((value) =>
      value === null ? undefined : popularityAt(parsePopularity(value), nowMs, halfLifeMs),
    );
  }

  async lastPopularityChange(): Promise<string> {
    const last = await this.redis.xRevRange(this.keys.popularityChanges, '+', '-', { COUNT: 1 });
    return last.length === 0 ? '0-0' : last[0].id;
  }

  async popularityChangesAfter(id: string, count: number): Promise<PopularityChange[]> {
    const entries = await this.redis.xRange(this.keys.popularityChanges, `(${id}`, '+', {
      COUNT: count,
    });
    return entries.map(({ id: entryId, message }) => {
      const fields = message as Record<string, string | undefined>;
      return {
        id: entryId,
        reset: fields.reset !== undefined,
        items: fields.v === undefined ? [] : parsePopularityChanges(fields.v),
      };
    });
  }

  async *allPopularity(): AsyncIterable<[string, StoredPopularity][]> {
    const prefix = this.keys.popularity('');
    for await (const keys of this.redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      if (keys.length === 0) continue;
      const values = await this.redis.mGet(keys);
      const page: [string, StoredPopularity][] = [];
      keys.forEach((key, i) => {
        const value = values[i];
        if (typeof value === 'string')
          page.push([key.slice(prefix.length), parsePopularity(value)]);
      });
      yield page;
    }
  }

  /** Items by current decayed engagement, best first. */
  async popularItems(offset: number, count: number): Promise<string[]> {
    return this.redis.zRange(this.keys.popularityRank, offset, offset + count - 1, { REV: true });
  }
}
