import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { REDIS } from '../../infra/tokens';
import { RedisClient, RedisScript } from '../../infra/redis';

/** A user's interest vector as pooled by one model version at one interest version. */
export interface CachedUserVector {
  readonly modelVersion: string;
  readonly interestVersion: string;
  /**
   * Set when some of the history had no item vector yet: the served vectors' generation then;
   * the vector is stale once they changed (the missing items may have been embedded since).
   */
  readonly vectorsGeneration: number | undefined;
  readonly vector: Float32Array;
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

/** Replaces the hash at KEYS[1] with the field/value pairs ARGV[2..] and expires it in ARGV[1] s. */
const REPLACE_HASH = new RedisScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
`);

/**
 * Ranking's own Redis: the user interest vector cache `rank:uvec:{userId}` (HASH m = model
 * version, v = interest version it was built at, g = vectors generation when history items
 * lacked vectors, x = base64 float32), kept RANK_USER_VECTOR_TTL_SECONDS.
 */
@Injectable()
export class UserVectorCacheRepository {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  get available(): boolean {
    return this.redis.isReady;
  }

  /** The server of `userId`'s cached vector (RedisClient.serverOf). */
  serverOf(userId: string): string {
    return this.redis.serverOf(this.key(userId));
  }

  private key(userId: string): string {
    return `${this.config.redis.keyPrefix}rank:uvec:${userId}`;
  }

  async get(userId: string): Promise<CachedUserVector | undefined> {
    const [m, v, g, x] = await this.redis.commands.hmGet(this.key(userId), ['m', 'v', 'g', 'x']);
    if (typeof m !== 'string' || typeof v !== 'string' || typeof x !== 'string') return undefined;
    return {
      modelVersion: m,
      interestVersion: v,
      vectorsGeneration: typeof g === 'string' ? Number(g) : undefined,
      vector: decodeVector(x),
    };
  }

  async put(userId: string, entry: CachedUserVector): Promise<void> {
    const fields = [
      ['m', entry.modelVersion],
      ['v', entry.interestVersion],
      ...(entry.vectorsGeneration === undefined ? [] : [['g', String(entry.vectorsGeneration)]]),
      ['x', encodeVector(entry.vector)],
    ];
    await this.redis.runScript(
      REPLACE_HASH,
      [this.key(userId)],
      [String(this.config.ranking.userVectorTtlSeconds), ...fields.flat()],
    );
  }
}
