import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { REDIS } from '../../infra/tokens';
import { RedisClient, RedisScript } from '../../infra/redis';
import {
  decayLua,
  decodeRecent,
  engagementLua,
  ItemPopularity,
  OnlineDelta,
  onlineKeys,
  parsePopularity,
  parsePopularityChanges,
  popularityAt,
  POPULARITY_CHANGES_RETENTION_MS,
  StoredPopularity,
  userBucket,
  USER_TAGS,
} from './online-state.schema';
import type {
  Interaction,
  InterestChange,
  InterestChangeFeed,
  OnlineStateStore,
  PopularityChange,
  PopularityFeed,
} from './online-state.store';

/** Lua appending `fields` to the change stream `key`, trimming entries past the retention. */
function appendChangeLua(key: string, fields: string): string {
  return `  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ${POPULARITY_CHANGES_RETENTION_MS}
  redis.call('XADD', ${key}, 'MINID', '~', oldest, '*', ${fields})`;
}

/**
 * A batch's update of the users in one bucket (one hash tag, so one slot): atomic, one round
 * trip. KEYS: the bucket's applied-batch marker, then `recent`, `interest` of each user, last the
 * bucket's `interest-changes`. ARGV: recentCap, token ('' for none), JSON
 * [[[ts, member, ...], interactions, userId], ...] aligned with the users' keys. A token already
 * seen (within a day) makes the call a no-op, so a batch re-applied after a crash counts once.
 * The users whose interest version moved go to `interest-changes`, for the ranking replicas'
 * copies of their interest vectors.
 */
const APPLY_USERS = new RedisScript(`
local cap = tonumber(ARGV[1])
if ARGV[2] ~= '' and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then
  return -1
end
local d = cjson.decode(ARGV[3])
local changed = {}
for i, u in ipairs(d) do
  local key = KEYS[2 * i]
  local pairs_ = u[1]
  for j = 1, #pairs_, 500 do
    local args = {}
    for k = j, math.min(j + 499, #pairs_) do args[#args + 1] = pairs_[k] end
    redis.call('ZADD', key, unpack(args))
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  redis.call('HINCRBY', KEYS[2 * i + 1], 'version', u[2])
  if u[2] > 0 then changed[#changed + 1] = u[3] end
end
if #changed > 0 then
${appendChangeLua('KEYS[#KEYS]', "'u', table.concat(changed, '\\n')")}
end
return #d
`);

/**
 * A batch's update of item popularity (every item key shares one tag): atomic, one round trip.
 * KEYS: the applied-batch marker, `pop-rank`, `pop-changes`, then `item-pop` of each item.
 * ARGV: halfLifeMs, token ('' for none), JSON [[itemId, ref, imp, clk, cart, buy], ...] aligned
 * with the items' keys. The new values also go to the `pop-changes` stream, for the ranking
 * replicas' copies.
 */
const APPLY_ITEMS = new RedisScript(`
local h = tonumber(ARGV[1])
if ARGV[2] ~= '' and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then
  return -1
end
local d = cjson.decode(ARGV[3])
local changes = {}
for i, it in ipairs(d) do
  local key = KEYS[3 + i]
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
    redis.call('ZADD', KEYS[2], math.log(engagement) / math.log(2) + newRef / h, it[1])
  end
end
if #changes > 0 then
${appendChangeLua('KEYS[3]', "'v', table.concat(changes, '\\n')")}
end
return #d
`);

/** The only code touching the online state in Redis: the batch writer and every read. */
@Injectable()
export class OnlineStateRedisRepository
  implements OnlineStateStore, PopularityFeed, InterestChangeFeed
{
  private readonly keys: ReturnType<typeof onlineKeys>;

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.keys = onlineKeys(config.redis.keyPrefix);
  }

  /** The server of `userId`'s keys (RedisClient.serverOf). */
  userServer(userId: string): string {
    return this.redis.serverOf(this.keys.interest(userId));
  }

  /** The server of every item key (one hash tag). */
  itemsServer(): string {
    return this.redis.serverOf(this.keys.popularityRank);
  }

  /** False while disconnected: readers go to PostgreSQL without waiting for a failure. */
  get available(): boolean {
    return this.redis.isReady;
  }

  /**
   * One script call per user bucket the batch touches and one for its items, sent together. Each
   * is atomic and marks the token in its own slot, so after a partial failure the retry (under the
   * same token) applies only what is missing.
   */
  async apply(delta: OnlineDelta, token = ''): Promise<void> {
    const buckets = new Map<number, OnlineDelta['users'][number][]>();
    for (const user of delta.users) {
      const bucket = userBucket(user.userId);
      const users = buckets.get(bucket);
      if (users === undefined) buckets.set(bucket, [user]);
      else users.push(user);
    }
    const calls = [...buckets].map(([bucket, users]) =>
      this.redis.runScript(
        APPLY_USERS,
        [
          this.keys.userApplied(bucket, token),
          ...users.flatMap((u) => [this.keys.recent(u.userId), this.keys.interest(u.userId)]),
          this.keys.interestChanges(bucket),
        ],
        [
          String(this.config.online.recentCap),
          token,
          JSON.stringify(users.map((u) => [u.recent.flat(), u.interactions, u.userId])),
        ],
      ),
    );
    if (delta.items.length > 0) {
      calls.push(
        this.redis.runScript(
          APPLY_ITEMS,
          [
            this.keys.itemsApplied(token),
            this.keys.popularityRank,
            this.keys.popularityChanges,
            ...delta.items.map((i) => this.keys.popularity(i.itemId)),
          ],
          [
            String(this.config.online.popularityHalfLifeMs),
            token,
            JSON.stringify(delta.items.map((i) => [i.itemId, i.ref, i.imp, i.clk, i.cart, i.buy])),
          ],
        ),
      );
    }
    await Promise.all(calls);
  }

  /**
   * Deletes every online-state key under the prefix; returns how many. Then tells the followers of
   * `pop-changes` and `interest-changes` to drop their copies (a `reset` entry).
   */
  async clear(): Promise<number> {
    let deleted = 0;
    for (const pattern of this.keys.patterns) {
      for await (const keys of this.redis.scan(pattern, { count: 1000 })) {
        deleted += await this.redis.unlinkAll(keys);
      }
    }
    await Promise.all([
      this.redis.commands.xAdd(this.keys.popularityChanges, '*', { reset: '1' }),
      ...USER_TAGS.map((_, bucket) =>
        this.redis.commands.xAdd(this.keys.interestChanges(bucket), '*', { reset: '1' }),
      ),
    ]);
    return deleted;
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** `interest:{userId}` version; '0' for a user without interactions. */
  async interestVersion(userId: string): Promise<string> {
    return (await this.redis.commands.hGet(this.keys.interest(userId), 'version')) ?? '0';
  }

  async recent(userId: string, limit: number): Promise<Interaction[]> {
    const members = await this.redis.commands.zRange(this.keys.recent(userId), 0, limit - 1, {
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
    return this.redis.commands.zRange(this.keys.popularityRank, offset, offset + count - 1, {
      REV: true,
    });
  }

  async lastPopularityChange(): Promise<string> {
    const last = await this.redis.commands.xRevRange(this.keys.popularityChanges, '+', '-', {
      COUNT: 1,
    });
    return last.length === 0 ? '0-0' : last[0].id;
  }

  async popularityChangesAfter(id: string, count: number): Promise<PopularityChange[]> {
    const entries = await this.redis.commands.xRange(this.keys.popularityChanges, `(${id}`, '+', {
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

  async lastInterestChanges(): Promise<string[]> {
    return Promise.all(
      USER_TAGS.map(async (_, bucket) => {
        const last = await this.redis.commands.xRevRange(
          this.keys.interestChanges(bucket),
          '+',
          '-',
          {
            COUNT: 1,
          },
        );
        return last.length === 0 ? '0-0' : last[0].id;
      }),
    );
  }

  async interestChangesAfter(bucket: number, id: string, count: number): Promise<InterestChange[]> {
    const entries = await this.redis.commands.xRange(
      this.keys.interestChanges(bucket),
      `(${id}`,
      '+',
      { COUNT: count },
    );
    return entries.map(({ id: entryId, message }) => {
      const fields = message as Record<string, string | undefined>;
      return {
        id: entryId,
        reset: fields.reset !== undefined,
        userIds: fields.u === undefined ? [] : fields.u.split('\n'),
      };
    });
  }

  async popularityOf(itemIds: readonly string[]): Promise<(StoredPopularity | undefined)[]> {
    const out: (StoredPopularity | undefined)[] = [];
    for (let start = 0; start < itemIds.length; start += 1000) {
      const keys = itemIds.slice(start, start + 1000).map((id) => this.keys.popularity(id));
      for (const value of await this.redis.commands.mGet(keys)) {
        out.push(value === null ? undefined : parsePopularity(value));
      }
    }
    return out;
  }

  async *allPopularity(): AsyncIterable<[string, StoredPopularity][]> {
    const prefix = this.keys.popularity('');
    // Every item key shares one slot: only its master is scanned, and one MGET reads a page.
    for await (const keys of this.redis.scan(`${prefix}*`, { count: 1000, slotOf: prefix })) {
      if (keys.length === 0) continue;
      const values = await this.redis.commands.mGet(keys);
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
