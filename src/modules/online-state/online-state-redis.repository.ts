import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { REDIS } from '../../infra/tokens';
import type { RedisClient } from '../../infra/redis';
import {
  decayLua,
  decodeRecent,
  engagementLua,
  ItemPopularity,
  KEY,
  OnlineDelta,
  onlineKeys,
  parsePopularity,
  parsePopularityChanges,
  popularityAt,
  POPULARITY_CHANGES_RETENTION_MS,
  StoredPopularity,
} from './online-state.schema';
import type {
  Interaction,
  OnlineStateStore,
  PopularityChange,
  PopularityFeed,
} from './online-state.store';

/**
 * Applies a whole batch in one script call: atomic (all or nothing, so a failed call can simply be
 * retried later) and one round trip. Standalone Redis only (keys are computed in the script).
 * ARGV: halfLifeMs, recentCap, prefix, JSON {u: [[userId, [ts, member, ...], n]],
 * i: [[itemId, ref, imp, clk, cart, buy]]}, batch token ('' for none). A token already seen (within
 * a day) makes the call a no-op, so a batch re-applied after a crash counts once. The new
 * popularity values also go to the `pop-changes` stream, for the ranking replicas' copies.
 */
const APPLY_SCRIPT = `
local h = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local p = ARGV[3]
local d = cjson.decode(ARGV[4])
if ARGV[5] ~= '' and not redis.call('SET', p .. '${KEY.applied}' .. ARGV[5], '1', 'NX', 'EX', 86400) then
  return -1
end
for _, u in ipairs(d.u) do
  local key = p .. '${KEY.recent}' .. u[1]
  local pairs_ = u[2]
  for j = 1, #pairs_, 500 do
    local args = {}
    for k = j, math.min(j + 499, #pairs_) do args[#args + 1] = pairs_[k] end
    redis.call('ZADD', key, unpack(args))
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  redis.call('HINCRBY', p .. '${KEY.interest}' .. u[1], 'version', u[3])
end
local rank = p .. '${KEY.popularityRank}'
local changes = {}
for _, it in ipairs(d.i) do
  local key = p .. '${KEY.popularity}' .. it[1]
  local cur = redis.call('GET', key)
  local ref, c = nil, {}
  if cur then
    local r, i1, i2, i3, i4 = string.match(cur, '^([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)$')
    ref = tonumber(r)
    c = { tonumber(i1), tonumber(i2), tonumber(i3), tonumber(i4) }
  end
  local ts = it[2]
  local newRef, oldScale, incScale = ts, 0, 1
  if ref then
    if ref > ts then newRef = ref; oldScale = 1; incScale = ${decayLua('ts', 'ref', 'h')}
    else oldScale = ${decayLua('ref', 'ts', 'h')} end
  end
  local v = {}
  for k = 1, 4 do v[k] = (c[k] or 0) * oldScale + it[k + 2] * incScale end
  local packed = string.format('%d,%.17g,%.17g,%.17g,%.17g', newRef, v[1], v[2], v[3], v[4])
  redis.call('SET', key, packed)
  changes[#changes + 1] = it[1] .. '\\t' .. packed
  local engagement = ${engagementLua('v[1]', 'v[2]', 'v[3]', 'v[4]')}
  if engagement > 0 then
    redis.call('ZADD', rank, math.log(engagement) / math.log(2) + newRef / h, it[1])
  end
end
if #changes > 0 then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ${POPULARITY_CHANGES_RETENTION_MS}
  redis.call('XADD', p .. '${KEY.popularityChanges}', 'MINID', '~', oldest, '*', 'v', table.concat(changes, '\\n'))
end
return #d.u + #d.i
`;

/** The only code touching the online state in Redis: the batch writer and every read. */
@Injectable()
export class OnlineStateRedisRepository implements OnlineStateStore, PopularityFeed {
  private readonly keys: ReturnType<typeof onlineKeys>;
  private scriptSha: string | undefined;

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.keys = onlineKeys(config.redis.keyPrefix);
    // A reconnect may reach a restarted Redis without the script.
    redis.on('ready', () => {
      this.scriptSha = undefined;
    });
  }

  /** False while disconnected: readers go to PostgreSQL without waiting for a failure. */
  get available(): boolean {
    return this.redis.isReady;
  }

  async apply(delta: OnlineDelta, token = ''): Promise<void> {
    if (delta.users.length === 0 && delta.items.length === 0) return;
    const payload = JSON.stringify({
      u: delta.users.map((u) => [u.userId, u.recent.flat(), u.interactions]),
      i: delta.items.map((i) => [i.itemId, i.ref, i.imp, i.clk, i.cart, i.buy]),
    });
    const args = [
      String(this.config.online.popularityHalfLifeMs),
      String(this.config.online.recentCap),
      this.config.redis.keyPrefix,
      payload,
      token,
    ];
    this.scriptSha ??= await this.redis.scriptLoad(APPLY_SCRIPT);
    try {
      await this.redis.evalSha(this.scriptSha, { arguments: args });
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      this.scriptSha = await this.redis.scriptLoad(APPLY_SCRIPT);
      await this.redis.evalSha(this.scriptSha, { arguments: args });
    }
  }

  /**
   * Deletes every online-state key under the prefix; returns how many. Then tells the followers of
   * `pop-changes` to drop their copies (a `reset` entry).
   */
  async clear(): Promise<number> {
    let deleted = 0;
    for (const pattern of this.keys.patterns) {
      for await (const keys of this.redis.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
        if (keys.length > 0) deleted += await this.redis.unlink(keys);
      }
    }
    await this.redis.xAdd(this.keys.popularityChanges, '*', { reset: '1' });
    return deleted;
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** `interest:{userId}` version; '0' for a user without interactions. */
  async interestVersion(userId: string): Promise<string> {
    return (await this.redis.hGet(this.keys.interest(userId), 'version')) ?? '0';
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

  /** Every item's popularity (one MGET per 1,000), aligned with `itemIds` (undefined: none yet). */
  async popularity(
    itemIds: readonly string[],
    nowMs: number,
  ): Promise<(ItemPopularity | undefined)[]> {
    const halfLifeMs = this.config.online.popularityHalfLifeMs;
    return (await this.popularityOf(itemIds)).map((stored) =>
      stored === undefined ? undefined : popularityAt(stored, nowMs, halfLifeMs),
    );
  }

  async popularItems(offset: number, count: number): Promise<string[]> {
    return this.redis.zRange(this.keys.popularityRank, offset, offset + count - 1, { REV: true });
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

  async popularityOf(itemIds: readonly string[]): Promise<(StoredPopularity | undefined)[]> {
    const out: (StoredPopularity | undefined)[] = [];
    for (let start = 0; start < itemIds.length; start += 1000) {
      const keys = itemIds.slice(start, start + 1000).map((id) => this.keys.popularity(id));
      for (const value of await this.redis.mGet(keys)) {
        out.push(value === null ? undefined : parsePopularity(value));
      }
    }
    return out;
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
}
