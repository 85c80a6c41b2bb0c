import { createLogger } from '../src/common/logger';
import { createRedisClient, RedisClient } from '../src/infra/redis';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import { InterestChangeFollower } from '../src/modules/online-state/interest-change-follower';
import { OnlineStateRedisRepository } from '../src/modules/online-state/online-state-redis.repository';
import { onlineKeys, parsePopularity } from '../src/modules/online-state/online-state.schema';
import { PopularityMirror } from '../src/modules/online-state/popularity-mirror';
import { MapKeeper } from './support/fakes/popularity-feed';
import { REDIS_MODES } from './support/stack';
import { createTestContext, TestContext } from './support/test-context';

const NOW = Date.now();

function itemDelta(itemId: string, clk: number, imp = 0) {
  return { itemId, ref: NOW, imp, clk, cart: 0, buy: 0 };
}

describe.each(REDIS_MODES)(
  'replica popularity copy on the real Redis ($mode, pop-changes stream)',
  ({ env }) => {
    let context: TestContext;
    let redis: RedisClient;
    let writer: OnlineStateRedisRepository;
    let mirror: PopularityMirror;

    const apply = (items: ReturnType<typeof itemDelta>[]) =>
      writer.apply({ users: [], items, events: items.length });
    const keeper = new MapKeeper(new Set(['m-a', 'm-b', 'm-c', 'm-d', 'm-e']));
    const clicks = (itemIds: string[]) => itemIds.map((itemId) => keeper.values.get(itemId)?.clk);

    beforeAll(async () => {
      context = await createTestContext({ RANK_POPULARITY_SYNC_MS: '100', ...env });
      redis = createRedisClient(context.config.redis, createLogger('silent'));
      await redis.connect();
      writer = new OnlineStateRedisRepository(redis, context.config);
      mirror = new PopularityMirror(
        writer,
        context.config,
        createLogger('silent'),
        new Metrics({}),
      );
      mirror.keepIn(keeper);
    });
    afterAll(async () => {
      await redis.close();
      await context.cleanup();
    });

    it('loads what ingest wrote, follows each later batch and matches the item-pop keys', async () => {
      await apply([itemDelta('m-a', 2, 10), itemDelta('m-b', 1)]);
      await mirror.sync();
      expect(clicks(['m-a', 'm-b', 'm-none'])).toEqual([2, 1, undefined]);

      await apply([itemDelta('m-a', 3), itemDelta('m-c', 4)]);
      await apply([itemDelta('m-b', 1)]);
      await mirror.sync();
      const keys = onlineKeys(context.config.redis.keyPrefix);
      for (const itemId of ['m-a', 'm-b', 'm-c']) {
        const stored = parsePopularity((await redis.commands.get(keys.popularity(itemId))) ?? '');
        expect(clicks([itemId])[0]).toBeCloseTo(stored.clk, 9);
      }
      expect(clicks(['m-a', 'm-b', 'm-c'])).toEqual([5, 2, 4]);
    });

    it('drops its copy on the reset a clear leaves, then takes what follows', async () => {
      await writer.clear();
      await apply([itemDelta('m-d', 6)]);
      await mirror.sync();
      expect(clicks(['m-a', 'm-d'])).toEqual([undefined, 6]);
    });

    it('writes one stream entry per batch, carrying the new values', async () => {
      const keys = onlineKeys(context.config.redis.keyPrefix);
      const before = await redis.commands.xLen(keys.popularityChanges);
      await apply([itemDelta('m-e', 1)]);
      expect(await redis.commands.xLen(keys.popularityChanges)).toBe(before + 1);
      const newest = await redis.commands.xRevRange(keys.popularityChanges, '+', '-', { COUNT: 1 });
      expect(newest.map((entry) => entry.message)).toEqual([{ v: `m-e\t${NOW},0,1,0,0` }]);
    });
  },
);

describe.each(REDIS_MODES)(
  "users' interest changes on the real Redis ($mode, interest-changes streams)",
  ({ env }) => {
    let context: TestContext;
    let redis: RedisClient;
    let writer: OnlineStateRedisRepository;
    let follower: InterestChangeFollower;
    const told: string[] = [];

    const interacted = (...userIds: string[]) =>
      writer.apply({
        users: userIds.map((userId) => ({
          userId,
          recent: [[NOW, `["click","item-1",${NOW},"e-${userId}"]`] as const],
          interactions: 1,
        })),
        items: [],
        events: userIds.length,
      });

    beforeAll(async () => {
      context = await createTestContext({ RANK_POPULARITY_SYNC_MS: '100', ...env });
      redis = createRedisClient(context.config.redis, createLogger('silent'));
      await redis.connect();
      writer = new OnlineStateRedisRepository(redis, context.config);
      follower = new InterestChangeFollower(
        writer,
        context.config,
        createLogger('silent'),
        new Metrics({}),
      );
      follower.follow({
        changed: (userIds) => told.push(...userIds),
        reset: () => told.push('(reset)'),
      });
    });
    afterAll(async () => {
      await redis.close();
      await context.cleanup();
    });

    it('tells which users interacted since the last sync, across user buckets, once each', async () => {
      await interacted('ic-before');
      await follower.sync();
      expect(told).toEqual(['(reset)']);
      const users = Array.from({ length: 40 }, (_, i) => `ic-${i}`);
      await interacted(...users.slice(0, 25));
      await interacted(...users.slice(25));
      await follower.sync();
      expect(told.slice(1).sort()).toEqual([...users].sort());
      await follower.sync();
      expect(told).toHaveLength(1 + users.length);
      expect(follower.isFresh()).toBe(true);
    });

    it('tells of a reset after a clear of the online state', async () => {
      told.length = 0;
      await writer.clear();
      await follower.sync();
      expect(told).toContain('(reset)');
    });
  },
);
