import { Pool } from 'pg';
import { createClient } from 'redis';
import type { EventType } from '../src/common/event-types';
import { createLogger } from '../src/common/logger';
import { createRedisClient, RedisClient } from '../src/infra/redis';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import { OnlineStatePostgresRepository } from '../src/modules/online-state/online-state-postgres.repository';
import { OnlineStateRedisRepository } from '../src/modules/online-state/online-state-redis.repository';
import {
  COUNT_FIELDS,
  decay,
  engagementOf,
  ItemPopularity,
  OnlineEvent,
  POPULARITY_HORIZON_HALF_LIVES,
} from '../src/modules/online-state/online-state.schema';
import { OnlineStateReader } from '../src/modules/online-state/online-state.reader';
import type { OnlineStateStore } from '../src/modules/online-state/online-state.store';
import { OnlineStateWriter } from '../src/modules/online-state/online-state.writer';
import { Random } from '../src/synthetic';
import { insertEvents } from './support/ranking-helpers';
import { REDIS_MODES, TEST_STACK } from './support/stack';
import { contextWithPool, createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';

const HOUR = 3_600_000;
const DAY_MS = 24 * HOUR;
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
    .map(
      ([itemId, counts]) =>
        [itemId, engagementOf(counts.imp, counts.clk, counts.cart, counts.buy)] as const,
    )
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
  let clusterContext: TestContext;
  const clients: RedisClient[] = [];
  let pool: Pool;
  const stores: Record<string, OnlineStateStore> = {};
  const all = events();

  /** The Redis store of `context`, written as ingest would: several batches, out of time order. */
  async function redisStore(of: TestContext): Promise<OnlineStateRedisRepository> {
    const redis = createRedisClient(of.config.redis, createLogger('silent'));
    clients.push(redis);
    await redis.connect();
    const store = new OnlineStateRedisRepository(redis, of.config);
    const writer = new OnlineStateWriter(store, of.config);
    for (let i = 0; i < all.length; i += 150) await writer.apply(all.slice(i, i + 150));
    return store;
  }

  beforeAll(async () => {
    const [standalone, cluster] = REDIS_MODES;
    const halfLife = { ONLINE_POPULARITY_HALF_LIFE_HOURS: '48' };
    context = await createTestContext({ ...halfLife, ...standalone.env });
    clusterContext = await createTestContext({ ...halfLife, ...cluster.env });
    pool = new Pool({ connectionString: context.config.postgres.url });
    stores.Redis = await redisStore(context);
    stores['Redis Cluster'] = await redisStore(clusterContext);
    await insertEvents(context.config.postgres.url, all);
    stores.PostgreSQL = new OnlineStatePostgresRepository(pool, context.config);
  });

  afterAll(async () => {
    for (const redis of clients) await redis.close();
    await pool.end();
    await context.cleanup();
    await clusterContext.cleanup();
  });

  describe.each(['Redis', 'Redis Cluster', 'PostgreSQL'])('%s', (name) => {
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
      const first = await store().popularItems(0, 10, NOW);
      const next = await store().popularItems(10, 10, NOW);
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

  it('PostgreSQL leaves out events past the horizon, where Redis keeps them at under 1e-9', async () => {
    const halfLifeMs = context.config.online.popularityHalfLifeMs;
    const clickAt = (itemId: string, halfLives: number): OnlineEvent => ({
      eventId: `horizon-${itemId}`,
      type: 'click',
      userId: 'u-horizon',
      itemId,
      ts: new Date(NOW - halfLives * halfLifeMs),
    });
    const inside = POPULARITY_HORIZON_HALF_LIVES - 0.5;
    const outside = POPULARITY_HORIZON_HALF_LIVES + 0.5;
    await insertEvents(context.config.postgres.url, [
      clickAt('h-inside', inside),
      clickAt('h-outside', outside),
    ]);
    const postgres = stores.PostgreSQL;
    const [kept, left] = await postgres.popularity(['h-inside', 'h-outside'], NOW);
    expect(kept?.clicks).toBeCloseTo(2 ** -inside, 15);
    expect(left).toBeUndefined();
    const popular = await postgres.popularItems(0, 100, NOW);
    expect(popular).toContain('h-inside');
    expect(popular).not.toContain('h-outside');
  });
});

describe.each(REDIS_MODES)('online state batches on Redis ($mode)', ({ mode, env }) => {
  let context: TestContext;
  let redis: RedisClient;
  let store: OnlineStateRedisRepository;
  let writer: OnlineStateWriter;

  /** One click of each of `users` users on each of `items` items, all at one time. */
  const batch = (tag: string, users: number, items: number): OnlineEvent[] =>
    Array.from({ length: users * items }, (_, i) => ({
      eventId: `${tag}-${i}`,
      type: 'click',
      userId: `${tag}-u${i % users}`,
      itemId: `${tag}-i${Math.floor(i / users)}`,
      ts: new Date(NOW),
    }));

  beforeAll(async () => {
    context = await createTestContext(env);
    redis = createRedisClient(context.config.redis, createLogger('silent'));
    await redis.connect();
    store = new OnlineStateRedisRepository(redis, context.config);
    writer = new OnlineStateWriter(store, context.config);
  });
  afterAll(async () => {
    await redis.close();
    await context.cleanup();
  });

  it('counts a batch re-applied under its token once, in every user bucket and the items', async () => {
    const events = batch('t', 64, 3);
    await writer.apply(events, 'token-1');
    await writer.apply(events, 'token-1');
    const versions = await Promise.all(
      Array.from({ length: 64 }, (_, u) => store.interestVersion(`t-u${u}`)),
    );
    expect(versions).toEqual(versions.map(() => '3'));
    const popularity = await store.popularity(['t-i0', 't-i1', 't-i2'], NOW);
    expect(popularity.map((p) => p?.clicks)).toEqual([64, 64, 64]);
    expect((await store.recent('t-u5', 10)).map((entry) => entry.itemId)).toHaveLength(3);
    // Under another token the same events count again (tokens are per batch, not per event).
    await writer.apply(events.slice(0, 1), 'token-2');
    expect(await store.interestVersion('t-u0')).toBe('4');
  });

  it('clears every online-state key (on every master) and leaves a reset for the copies', async () => {
    await writer.apply(batch('c', 40, 2));
    // Keys of the layout before hash tags, in other slots: the rebuild removes them too.
    const prefix = context.config.redis.keyPrefix;
    const legacy = [`${prefix}interest:c-u0`, `${prefix}item-pop:c-i0`, `${prefix}pop-rank`];
    for (const key of legacy) await redis.commands.hSet(key, 'version', '1');
    const before = await store.lastPopularityChange();
    const deleted = await writer.clear();
    const left = await Promise.all(legacy.map((key) => redis.commands.hGet(key, 'version')));
    expect(left).toEqual([null, null, null]);
    // 40 recent + 40 interest + 2 item-pop + pop-rank + pop-changes + the legacy keys, and the
    // earlier test's keys.
    expect(deleted).toBeGreaterThanOrEqual(40 * 2 + 2 + 2 + legacy.length);
    expect(await store.interestVersion('c-u0')).toBe('0');
    expect(await store.popularItems(0, 10)).toEqual([]);
    const [reset] = await store.popularityChangesAfter(before, 10);
    expect(reset.reset).toBe(true);
  });

  if (mode === 'cluster') {
    it("spreads users' keys over every master, with every item key on one", async () => {
      await writer.apply(batch('s', 300, 1));
      const perNode: { recent: number; items: number }[] = [];
      for (const node of TEST_STACK.redisClusterNodes.split(',')) {
        const client = createClient({ url: `redis://${node}` });
        await client.connect();
        const count = async (match: string) => {
          let found = 0;
          for await (const keys of client.scanIterator({ MATCH: match, COUNT: 1000 })) {
            found += keys.length;
          }
          return found;
        };
        const prefix = context.config.redis.keyPrefix;
        perNode.push({
          recent: await count(`${prefix}*recent:s-u*`),
          items: await count(`${prefix}*item-pop:*`),
        });
        await client.close();
      }
      expect(perNode).toHaveLength(3);
      expect(perNode.reduce((sum, node) => sum + node.recent, 0)).toBe(300);
      // 16 buckets over 3 masters: 5 or 6 each, so about a third of the users.
      for (const node of perNode) expect(node.recent).toBeGreaterThan(300 * 0.2);
      expect(perNode.filter((node) => node.items > 0)).toHaveLength(1);
    });
  }
});

describe('reading a Redis Cluster with one master stalled', () => {
  let context: TestContext;
  let redis: RedisClient;
  let pool: Pool;
  let store: OnlineStateRedisRepository;
  let reader: OnlineStateReader;

  beforeAll(async () => {
    const [, cluster] = REDIS_MODES;
    context = await createTestContext({
      ...cluster.env,
      REDIS_READ_TIMEOUT_MS: '200',
      REDIS_PING_TIMEOUT_MS: '500',
    });
    redis = createRedisClient(context.config.redis, createLogger('silent'));
    await redis.connect();
    pool = new Pool({ connectionString: context.config.postgres.url });
    store = new OnlineStateRedisRepository(redis, context.config);
    reader = new OnlineStateReader(
      store,
      new OnlineStatePostgresRepository(pool, context.config),
      context.config,
      createLogger('silent'),
      new Metrics({}),
    );
  });
  afterAll(async () => {
    await redis.close();
    await pool.end();
    await context.cleanup();
  });

  it('sends only the stalled master’s users to PostgreSQL; the others and the items still read Redis', async () => {
    const users = Array.from({ length: 64 }, (_, i) => `stall-u${i}`);
    const stalledServer = store.userServer(users[0]);
    const healthy = users.find((userId) => store.userServer(userId) !== stalledServer);
    if (healthy === undefined) throw new Error('every user on one master');
    expect(stalledServer).toMatch(/:\d+$/);
    expect(store.itemsServer()).not.toBe('');

    const master = createClient({ url: `redis://${stalledServer}` });
    await master.connect();
    try {
      await master.sendCommand(['CLIENT', 'PAUSE', '1500', 'ALL']);
      const started = Date.now();
      expect((await reader.recent(users[0], 5)).fromPostgres).toBe(true);
      // Inside the pause: the stalled master's users skip Redis at once, the others read it.
      expect((await reader.recent(users[0], 5)).fromPostgres).toBe(true);
      expect((await reader.recent(healthy, 5)).fromPostgres).toBe(false);
      const popularity = await reader.popularity(['stall-i0'], Date.now());
      expect(popularity.fromPostgres).toBe(store.itemsServer() === stalledServer);
      expect(Date.now() - started).toBeLessThan(1200);
    } finally {
      await master.sendCommand(['CLIENT', 'UNPAUSE']);
      await master.quit();
    }
  });

  it('reconnects a master that answers nothing: what waits on it fails at the ping timeout, not at the end of the stall', async () => {
    const user = 'silent-u0';
    const master = createClient({ url: `redis://${store.userServer(user)}` });
    await master.connect();
    let failedAfterMs: number;
    try {
      await master.sendCommand(['CLIENT', 'PAUSE', '4000', 'ALL']);
      const started = Date.now();
      await expect(store.interestVersion(user)).rejects.toThrow();
      failedAfterMs = Date.now() - started;
    } finally {
      await master.sendCommand(['CLIENT', 'UNPAUSE']);
      await master.quit();
    }
    // REDIS_PING_TIMEOUT_MS is 500 here, the pause 4 s.
    expect(failedAfterMs).toBeLessThan(2500);
    await eventually(
      async () => (await store.interestVersion(user).catch(() => null)) === '0',
      10_000,
      {
        what: 'the master answering over its new connection',
      },
    );
  });
});

describe("the PostgreSQL fallback's recent interactions", () => {
  const own = contextWithPool();

  it("lists a user's interactions from its newest 14 days and older ones, newest first", async () => {
    const now = Date.now();
    const daysAgo = [0.5, 1.9, 13, 13.9, 14.1, 15, 61, 200];
    const events = daysAgo.map((days, i) => ({
      eventId: `window-${i}`,
      type: 'click' as const,
      userId: 'u-windows',
      itemId: `w-i${i}`,
      ts: new Date(now - days * DAY_MS),
    }));
    // An impression among the newest days takes no place among the interactions.
    await insertEvents(own.context.config.postgres.url, [
      ...events,
      { ...events[0], eventId: 'window-imp', type: 'impression', ts: new Date(now - HOUR) },
    ]);
    const store = new OnlineStatePostgresRepository(own.pool, own.context.config);
    const itemIds = async (limit: number) =>
      (await store.recent('u-windows', limit)).map((interaction) => interaction.itemId);
    const all = events.map((event) => event.itemId);
    expect(await itemIds(20)).toEqual(all);
    expect(await itemIds(3)).toEqual(all.slice(0, 3));
    expect(await itemIds(6)).toEqual(all.slice(0, 6));
    expect(await itemIds(4)).toEqual(all.slice(0, 4));
  });
});
