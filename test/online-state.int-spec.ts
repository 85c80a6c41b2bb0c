import { Pool } from 'pg';
import type { EventType } from '../src/common/event-types';
import { createLogger } from '../src/common/logger';
import { createRedisClient, RedisClient } from '../src/infra/redis';
import { OnlineStatePostgresRepository } from '../src/modules/online-state/online-state-postgres.repository';
import { OnlineStateRedisRepository } from '../src/modules/online-state/online-state-redis.repository';
import {
  COUNT_FIELDS,
  decay,
  engagement,
  ItemPopularity,
  OnlineEvent,
} from '../src/modules/online-state/online-state.schema';
import type { OnlineStateStore } from '../src/modules/online-state/online-state.store';
import { OnlineStateWriter } from '../src/modules/online-state/online-state.writer';
import { Random } from '../src/synthetic';
import { insertEvents } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 20, 12);
const TYPES: readonly EventType[] = [
  'impression',
  'impression',
  'click',
  'add_to_cart',
  'purchase',
];

/** Events over two weeks: 12 users, 40 items, every type; times distinct (no ties in order). */
function events(): OnlineEvent[] {
  const random = new Random('online-state-contract');
  return Array.from({ length: 600 }, (_, i) => ({
    eventId: `oc-${i}`,
    type: TYPES[Math.floor(random.next() * TYPES.length)],
    userId: `u-${Math.floor(random.next() * 12)}`,
    itemId: `i-${Math.floor(random.next() ** 2 * 40)}`,
    ts: new Date(NOW - Math.floor(random.next() * 14 * 24 * HOUR) - i),
  }));
}

/** What every implementation must answer, computed from the events with the schema's formulas. */
function expected(all: readonly OnlineEvent[], halfLifeMs: number) {
  const popularity = new Map<string, Record<'imp' | 'clk' | 'cart' | 'buy', number>>();
  for (const event of all) {
    const counts = popularity.get(event.itemId) ?? { imp: 0, clk: 0, cart: 0, buy: 0 };
    counts[COUNT_FIELDS[event.type]] += decay(event.ts.getTime(), NOW, halfLifeMs);
    popularity.set(event.itemId, counts);
  }
  const asPopularity = (
    counts: Record<'imp' | 'clk' | 'cart' | 'buy', number>,
  ): ItemPopularity => ({
    impressions: counts.imp,
    clicks: counts.clk,
    addToCarts: counts.cart,
    purchases: counts.buy,
  });
  const ranked = [...popularity]
    .map(([itemId, counts]) => [itemId, engagement(asPopularity(counts))] as const)
    .filter(([, value]) => value > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([itemId]) => itemId);
  const recent = (userId: string) =>
    all
      .filter((event) => event.userId === userId && event.type !== 'impression')
      .sort((a, b) => b.ts.getTime() - a.ts.getTime())
      .map((event) => ({ type: event.type, itemId: event.itemId, ts: event.ts.getTime() }));
  return {
    popularity: (itemId: string) => {
      const counts = popularity.get(itemId);
      return counts === undefined ? undefined : asPopularity(counts);
    },
    ranked,
    recent,
  };
}

function expectClose(actual: ItemPopularity | undefined, wanted: ItemPopularity | undefined) {
  if (wanted === undefined) {
    expect(actual).toBeUndefined();
    return;
  }
  if (actual === undefined) throw new Error('expected popularity, got none');
  for (const key of ['impressions', 'clicks', 'addToCarts', 'purchases'] as const) {
    expect(actual[key]).toBeCloseTo(wanted[key], 9);
  }
}

/**
 * The contract of the online state: Redis (written by the ingest batch script) and the
 * PostgreSQL fallback (computed from `events`) answer the same, and both what the schema's
 * TypeScript formulas (decay, engagement weights) say.
 */
describe('online state contract', () => {
  let context: TestContext;
  let redis: RedisClient;
  let pool: Pool;
  const stores: Record<string, OnlineStateStore> = {};
  const all = events();

  beforeAll(async () => {
    context = await createTestContext({ ONLINE_POPULARITY_HALF_LIFE_HOURS: '48' });
    redis = createRedisClient(context.config.redis, createLogger('silent'));
    await redis.connect();
    pool = new Pool({ connectionString: context.config.postgres.url });
    const redisStore = new OnlineStateRedisRepository(redis, context.config);
    const writer = new OnlineStateWriter(redisStore, context.config);
    // In several batches and out of time order, as ingest would see them.
    for (let i = 0; i < all.length; i += 150) await writer.apply(all.slice(i, i + 150));
    await insertEvents(context.config.postgres.url, all);
    stores.Redis = redisStore;
    stores.PostgreSQL = new OnlineStatePostgresRepository(pool, context.config);
  });

  afterAll(async () => {
    await redis.close();
    await pool.end();
    await context.cleanup();
  });

  describe.each(['Redis', 'PostgreSQL'])('%s', (name) => {
    const store = () => stores[name];
    const halfLifeMs = () => context.config.online.popularityHalfLifeMs;

    it('decays every count to the time asked for, per event type', async () => {
      const want = expected(all, halfLifeMs());
      const itemIds = [...Array.from({ length: 40 }, (_, i) => `i-${i}`), 'never-seen'];
      const got = await store().popularity(itemIds, NOW);
      expect(got).toHaveLength(itemIds.length);
      itemIds.forEach((itemId, i) => {
        expectClose(got[i], want.popularity(itemId));
      });
      // A day later, everything is worth 2^(-24/48) of itself.
      const later = await store().popularity(['i-0'], NOW + 24 * HOUR);
      const now = got[0];
      expect(later[0]?.clicks).toBeCloseTo((now?.clicks ?? 0) * 2 ** -0.5, 9);
    });

    it('orders items by decayed engagement (clicks 1, carts 3, purchases 5, impressions 0)', async () => {
      const want = expected(all, halfLifeMs());
      const first = await store().popularItems(0, 10);
      const next = await store().popularItems(10, 10);
      expect([...first, ...next]).toEqual(want.ranked.slice(0, 20));
    });

    it("lists a user's interactions, newest first, without impressions", async () => {
      const want = expected(all, halfLifeMs());
      for (const userId of ['u-0', 'u-5', 'u-11']) {
        expect(await store().recent(userId, 20)).toEqual(want.recent(userId).slice(0, 20));
      }
      expect(await store().recent('nobody', 5)).toEqual([]);
    });
  });
});
