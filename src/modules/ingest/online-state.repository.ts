import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { REDIS } from '../../infra/tokens';
import type { RedisClient } from '../../infra/redis';
import type { OnlineDelta } from './ingest.batch';
import {
  ENGAGEMENT_WEIGHTS,
  onlineKeys,
  POPULARITY_CHANGES_RETENTION_MS,
} from './online-state.keys';

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
if ARGV[5] ~= '' and not redis.call('SET', p .. 'applied:' .. ARGV[5], '1', 'NX', 'EX', 86400) then
  return -1
end
for _, u in ipairs(d.u) do
  local key = p .. 'recent:' .. u[1]
  local pairs_ = u[2]
  for j = 1, #pairs_, 500 do
    local args = {}
    for k = j, math.min(j + 499, #pairs_) do args[#args + 1] = pairs_[k] end
    redis.call('ZADD', key, unpack(args))
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  redis.call('HINCRBY', p .. 'interest:' .. u[1], 'version', u[3])
end
local rank = p .. 'pop-rank'
local changes = {}
for _, it in ipairs(d.i) do
  local key = p .. 'item-pop:' .. it[1]
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
    if ref > ts then newRef = ref; oldScale = 1; incScale = 2 ^ ((ts - ref) / h)
    else oldScale = 2 ^ ((ref - ts) / h) end
  end
  local v = {}
  for k = 1, 4 do v[k] = (c[k] or 0) * oldScale + it[k + 2] * incScale end
  local packed = string.format('%d,%.17g,%.17g,%.17g,%.17g', newRef, v[1], v[2], v[3], v[4])
  redis.call('SET', key, packed)
  changes[#changes + 1] = it[1] .. '\\t' .. packed
  local engagement = v[2] * ${ENGAGEMENT_WEIGHTS.click} + v[3] * ${ENGAGEMENT_WEIGHTS.add_to_cart} + v[4] * ${ENGAGEMENT_WEIGHTS.purchase}
  if engagement > 0 then
    redis.call('ZADD', rank, math.log(engagement) / math.log(2) + newRef / h, it[1])
  end
end
if #changes > 0 then
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ${POPULARITY_CHANGES_RETENTION_MS}
  redis.call('XADD', p .. 'pop-changes', 'MINID', '~', oldest, '*', 'v', table.concat(changes, '\\n'))
end
return #d.u + #d.i
`;

/** The only code touching the online state in Redis. */
@Injectable()
export class OnlineStateRepository {
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
}
