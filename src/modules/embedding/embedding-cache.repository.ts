import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { REDIS } from '../../infra/tokens';
import type { RedisClient } from '../../infra/redis';
import { bytesToVector, vectorToBytes } from './vector-codec';

/**
 * Item vectors in Redis, one hash per encoder (`<prefix>embedding:<encoderId>`, field item id,
 * value float32 bytes), so API replicas read candidates' vectors without PostgreSQL. The worker
 * writes every vector it stores; readers fill misses from PostgreSQL. Commands fail fast when
 * Redis is down (offline queue disabled); callers treat the cache as optional.
 */
@Injectable()
export class EmbeddingCacheRepository {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  key(encoderId: string): string {
    return `${this.config.redis.keyPrefix}embedding:${encoderId}`;
  }

  async put(
    encoderId: string,
    entries: readonly { itemId: string; vector: Float32Array }[],
  ): Promise<void> {
    if (entries.length === 0) return;
    const fields = new Map(entries.map((entry) => [entry.itemId, vectorToBytes(entry.vector)]));
    await this.redis.commands.hSet(this.key(encoderId), fields);
  }

  async get(encoderId: string, itemIds: readonly string[]): Promise<Map<string, Float32Array>> {
    if (itemIds.length === 0) return new Map();
    const values = await this.redis.binary.hmGet(this.key(encoderId), [...itemIds]);
    const found = new Map<string, Float32Array>();
    values.forEach((value, i) => {
      if (value instanceof Buffer) found.set(itemIds[i], bytesToVector(value));
    });
    return found;
  }
}
