import { spawn, ChildProcess } from 'node:child_process';
import { INestApplicationContext } from '@nestjs/common';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createClient } from 'redis';
import { createLogger } from '../src/common/logger';
import type { AppConfig } from '../src/config/config';
import { DLQ_HEADERS } from '../src/modules/ingest/ingest.service';
import {
  decodeRecent,
  onlineKeys,
  parsePopularity,
} from '../src/modules/online-state/online-state.schema';
import { OnlineStateService } from '../src/modules/ingest/online-state.service';
import { createServer } from '../src/server';
import { catalogItem, eventMessage, userEvent } from './support/factories';
import {
  countEvents,
  eventsByPartition,
  kafkaFor,
  produceRaw,
  query,
  readTopic,
  sleep,
  startIngest,
} from './support/ingest-helpers';
import { POSTGRES_MODES, TEST_STACK } from './support/stack';
import { TcpProxy } from './support/tcp-proxy';
import { createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';
import { reportFigures } from './support/fault-helpers';

jest.setTimeout(60_000);

const TOPICS = [
  { name: 'user.events', partitions: 3 },
  { name: 'catalog.items', partitions: 1 },
  { name: 'user.events.dlq' },
  { name: 'catalog.items.dlq' },
];
const MAX_BYTES = 2048;
const TS = '2025-01-01T00:00:00.000Z';

type Redis = ReturnType<typeof createClient>;

describe.each(POSTGRES_MODES)('ingest on the real stack (PostgreSQL $mode)', ({ env }) => {
  let context: TestContext;
  let config: AppConfig;
  let app: INestApplicationContext | undefined;
  let redis: Redis;
  let keys: ReturnType<typeof onlineKeys>;

  beforeAll(async () => {
    context = await createTestContext({
      ...env,
      INGEST_MAX_VALUE_BYTES: String(MAX_BYTES),
      INGEST_RETRY_INITIAL_MS: '50',
      INGEST_RETRY_MAX_MS: '500',
    });
    config = context.config;
    keys = onlineKeys(config.redis.keyPrefix);
    await context.createTopics(TOPICS);
    redis = createClient({ url: config.redis.url });
    await redis.connect();
    app = await startIngest(config);
  });
  afterAll(async () => {
    await app?.close();
    await redis.close();
    await context.cleanup();
  });

  it('stores N valid events and dead-letters M malformed ones with reasons', async () => {
    const valid = Array.from({ length: 40 }, (_, i) =>
      userEvent({
        userId: `v-user-${String(i % 4)}`,
        itemId: `v-item-${String(i % 5)}`,
        timestamp: TS,
      }),
    );
    const malformed = [
      { value: '{"eventId": "x", ', field: 'value', reason: /invalid JSON/ },
      { value: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), field: 'value', reason: /UTF-8/ },
      {
        value: JSON.stringify({ ...userEvent(), userId: undefined }),
        field: 'userId',
        reason: /required/,
      },
      { value: JSON.stringify({ ...userEvent(), itemId: 7 }), field: 'itemId', reason: /string/ },
      { value: JSON.stringify({ ...userEvent(), type: 'like' }), field: 'type', reason: /one of/ },
      {
        value: JSON.stringify({ ...userEvent(), context: { pad: 'x'.repeat(MAX_BYTES) } }),
        field: 'value',
        reason: /exceeds the limit/,
      },
      { value: JSON.stringify({ ...userEvent(), position: -3 }), field: 'position', reason: /0/ },
    ];
    const messages = [
      ...valid.slice(0, 20).map(eventMessage),
      ...malformed.map((m) => ({ key: 'bad', value: m.value })),
      ...valid.slice(20).map(eventMessage),
    ];
    await produceRaw(config, 'user.events', messages);

    await eventually(async () => (await countEvents(config.postgres.url)).rows >= 40, 30_000, {
      what: 'rows',
    });
    const dead = await readTopic(config, 'user.events.dlq', malformed.length);
    expect(await countEvents(config.postgres.url)).toEqual({ rows: 40, distinct: 40 });
    const stored = await query<{ event_id: string }>(
      config.postgres.url,
      'SELECT event_id FROM events',
    );
    expect(new Set(stored.map((row) => row.event_id))).toEqual(
      new Set(valid.map((e) => e.eventId)),
    );

    expect(dead).toHaveLength(malformed.length);
    for (const message of dead) {
      expect(message.key).toBe('bad');
      expect(message.headers[DLQ_HEADERS.topic]).toBe(`${config.kafka.topicPrefix}user.events`);
      expect(Number(message.headers[DLQ_HEADERS.partition])).toBeGreaterThanOrEqual(0);
      expect(message.headers[DLQ_HEADERS.offset]).toMatch(/^\d+$/);
    }
    // Original bytes are kept (an oversized value cut to the limit); match letters by value.
    for (const input of malformed) {
      const bytes = Buffer.isBuffer(input.value) ? input.value : Buffer.from(input.value);
      const letter = dead.find((m) => m.value?.equals(bytes.subarray(0, MAX_BYTES)));
      if (bytes.length > MAX_BYTES) {
        expect(letter?.headers[DLQ_HEADERS.valueBytes]).toBe(String(bytes.length));
      }
      expect(letter?.headers[DLQ_HEADERS.field]).toBe(input.field);
      expect(letter?.headers[DLQ_HEADERS.reason]).toMatch(input.reason);
    }

    // Online state: recent clicks, popularity and the interest version.
    await eventually(async () => (await redis.exists(keys.interest('v-user-0'))) === 1, 10_000, {
      what: 'state',
    });
    const recent = await redis.zRange(keys.recent('v-user-0'), 0, -1, { REV: true });
    expect(recent).toHaveLength(10);
    expect(decodeRecent(recent[0] ?? '')).toMatchObject({ type: 'click', ts: Date.parse(TS) });
    expect(await redis.hGet(keys.interest('v-user-0'), 'version')).toBe('10');
    expect(parsePopularity((await redis.get(keys.popularity('v-item-0'))) ?? '').clk).toBe(8);
    expect(await redis.zScore(keys.popularityRank, 'v-item-0')).not.toBeNull();
  });

  it('ignores duplicate deliveries and replayed batches (rows and counters)', async () => {
    const events = Array.from({ length: 30 }, (_, i) =>
      userEvent({ userId: 'd-user', itemId: `d-item-${String(i % 3)}`, timestamp: TS }),
    );
    const first = events.map(eventMessage);
    // The same event id twice in one delivery.
    await produceRaw(config, 'user.events', [...first, eventMessage(events[0] ?? userEvent())]);
    await eventually(
      async () => (await redis.hGet(keys.interest('d-user'), 'version')) === '30',
      30_000,
      { what: 'first delivery applied' },
    );
    const before = (await countEvents(config.postgres.url)).rows;
    // A replayed batch: the same messages published again, and the group rewound to the start.
    await produceRaw(config, 'user.events', first);
    await app?.close();
    const admin = kafkaFor(config).admin();
    await admin.connect();
    try {
      await admin.resetOffsets({
        groupId: `${config.kafka.topicPrefix}${config.ingest.eventsGroupId}`,
        topic: `${config.kafka.topicPrefix}user.events`,
        earliest: true,
      });
      app = await startIngest(config);
      const groupId = `${config.kafka.topicPrefix}${config.ingest.eventsGroupId}`;
      const topic = `${config.kafka.topicPrefix}user.events`;
      await eventually(
        async () => {
          const committed = (await admin.fetchOffsets({ groupId, topics: [topic] })).at(0);
          const ends = await admin.fetchTopicOffsets(topic);
          return ends.every(
            (end) =>
              end.high === '0' ||
              committed?.partitions.some(
                (p) => p.partition === end.partition && p.offset === end.high,
              ),
          );
        },
        30_000,
        { what: 'replay consumed' },
      );
    } finally {
      await admin.disconnect();
    }
    // A failure shows where the events are, to tell a replay stored again from a partition move.
    expect({
      ...(await countEvents(config.postgres.url)),
      where: await eventsByPartition(config.postgres.url),
    }).toEqual({ rows: before, distinct: before, where: expect.anything() as unknown });
    expect(await redis.hGet(keys.interest('d-user'), 'version')).toBe('30');
    expect(await redis.zCard(keys.recent('d-user'))).toBe(30);
    expect(parsePopularity((await redis.get(keys.popularity('d-item-0'))) ?? '').clk).toBe(10);
  });

  it('upserts items (newest wins), soft-deletes and marks changed text for embedding', async () => {
    const a = catalogItem({
      itemId: 'it-a',
      title: 'Old title',
      updatedAt: '2025-01-02T00:00:00Z',
    });
    await produceRaw(config, 'catalog.items', [
      { key: 'it-a', value: JSON.stringify(a) },
      {
        key: 'it-a',
        value: JSON.stringify({ ...a, title: 'Older', updatedAt: '2025-01-01T00:00:00Z' }),
      },
      { key: 'it-b', value: JSON.stringify(catalogItem({ itemId: 'it-b' })) },
      { key: 'it-c', value: JSON.stringify({ itemId: 'it-c' }) },
    ]);
    await eventually(
      async () => (await query(config.postgres.url, 'SELECT 1 FROM items')).length === 2,
      30_000,
      { what: 'items stored' },
    );
    await query(config.postgres.url, 'UPDATE items SET embed_pending = false');
    await produceRaw(config, 'catalog.items', [
      {
        key: 'it-a',
        value: JSON.stringify({ ...a, title: 'New title', updatedAt: '2025-01-03T00:00:00Z' }),
      },
      {
        key: 'it-b',
        value: JSON.stringify({ itemId: 'it-b', deleted: true, updatedAt: '2025-02-01T00:00:00Z' }),
      },
    ]);
    await eventually(
      async () =>
        (await query(config.postgres.url, 'SELECT 1 FROM items WHERE deleted')).length === 1 &&
        (await query(config.postgres.url, "SELECT 1 FROM items WHERE title = 'New title'"))
          .length === 1,
      30_000,
      { what: 'second round' },
    );
    const rows = await query<{
      item_id: string;
      title: string;
      deleted: boolean;
      embed_pending: boolean;
    }>(
      config.postgres.url,
      'SELECT item_id, title, deleted, embed_pending FROM items ORDER BY item_id',
    );
    expect(rows).toEqual([
      { item_id: 'it-a', title: 'New title', deleted: false, embed_pending: true },
      { item_id: 'it-b', title: 'Trail running shoe', deleted: true, embed_pending: false },
    ]);
    const dead = await readTopic(config, 'catalog.items.dlq', 1);
    expect(dead[0]?.headers[DLQ_HEADERS.error]).toBe('title: required');
  });

  it('answers the upsertItems mutation and rejects bad input naming the field', async () => {
    const server: NestFastifyApplication = await createServer(
      { ...config, role: 'api' },
      createLogger('silent'),
    );
    await server.init();
    await server.getHttpAdapter().getInstance().ready();
    try {
      const mutation = `mutation($items: [ItemInput!]!) {
        upsertItems(items: $items) { received inserted updated stale } }`;
      const ok = await server.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: mutation,
          variables: { items: [{ itemId: 'gql-1', title: 'Desk lamp', tags: ['office'] }] },
        },
      });
      expect(ok.json()).toEqual({
        data: { upsertItems: { received: 1, inserted: 1, updated: 0, stale: 0 } },
      });
      const bad = await server.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: mutation,
          variables: { items: [{ itemId: 'gql-2', title: 'x', price: -1 }] },
        },
      });
      const body = bad.json<{ errors: { extensions: { code: string; field: string } }[] }>();
      expect(body.errors[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'items[0].price',
      });
      expect(
        await query(config.postgres.url, "SELECT 1 FROM items WHERE item_id = 'gql-2'"),
      ).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('ingest with Redis down', () => {
  const port = 16_379 + Math.floor(Math.random() * 1000);
  let redisServer: ChildProcess | undefined;
  let context: TestContext;

  const startRedis = async () => {
    redisServer = spawn(
      'redis-server',
      ['--port', String(port), '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    await sleep(300);
  };
  const stopRedis = async () => {
    const server = redisServer;
    redisServer = undefined;
    if (server?.pid === undefined) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGKILL');
    await exited;
  };

  beforeAll(async () => {
    await startRedis();
    context = await createTestContext({
      REDIS_URL: `redis://127.0.0.1:${String(port)}`,
      ONLINE_CATCH_UP_INTERVAL_MS: '300',
      INGEST_RETRY_INITIAL_MS: '50',
    });
    await context.createTopics(TOPICS);
  });
  afterAll(async () => {
    await stopRedis();
    await startRedis();
    await context.cleanup();
    await stopRedis();
  });

  it('stores events while Redis is down, catches up after, and rebuilds identically', async () => {
    const { config } = context;
    const keys = onlineKeys(config.redis.keyPrefix);
    const app = await startIngest(config);
    try {
      await stopRedis();
      const events = Array.from({ length: 25 }, (_, i) =>
        userEvent({ userId: 'r-user', itemId: `r-item-${String(i % 5)}`, timestamp: TS }),
      );
      await produceRaw(config, 'user.events', events.map(eventMessage));
      await eventually(async () => (await countEvents(config.postgres.url)).rows === 25, 30_000, {
        what: 'rows',
      });
      const owed = await query<{ n: string }>(
        config.postgres.url,
        'SELECT sum(cardinality(seqs)) AS n FROM online_state_pending',
      );
      expect(owed).toEqual([{ n: '25' }]);

      await startRedis();
      const redis = createClient({ url: config.redis.url });
      await redis.connect();
      try {
        await eventually(
          async () => (await redis.hGet(keys.interest('r-user'), 'version')) === '25',
          20_000,
          { what: 'catch-up' },
        );
        expect(await query(config.postgres.url, 'SELECT 1 FROM online_state_pending')).toEqual([]);
        const snapshot = async () => ({
          recent: await redis.zRange(keys.recent('r-user'), 0, -1),
          pop: parsePopularity((await redis.get(keys.popularity('r-item-0'))) ?? ''),
          rank: await redis.zRangeWithScores(keys.popularityRank, 0, -1),
        });
        const before = await snapshot();
        expect(before.recent).toHaveLength(25);
        expect(before.pop.clk).toBe(5);

        const progress: number[] = [];
        const result = await app.get(OnlineStateService).rebuild((p) => progress.push(p.applied));
        expect(result).toEqual({ applied: 25, total: 25 });
        expect(progress.at(-1)).toBe(25);
        expect(await snapshot()).toEqual(before);
      } finally {
        await redis.close();
      }
    } finally {
      await app.close();
    }
  });
});

describe('ingest with Redis silent', () => {
  const proxy = new TcpProxy('127.0.0.1', 6379);
  let context: TestContext;

  beforeAll(async () => {
    await proxy.start();
    context = await createTestContext({
      REDIS_URL: `redis://127.0.0.1:${String(proxy.port)}`,
      REDIS_PING_TIMEOUT_MS: '1000',
      ONLINE_CATCH_UP_INTERVAL_MS: '300',
      INGEST_RETRY_INITIAL_MS: '50',
    });
    await context.createTopics(TOPICS);
  });
  afterAll(async () => {
    await proxy.cut();
    await context.cleanup();
  });

  // A Redis host gone without a reset (a crashed node, a partition): its connection stays open and
  // answers nothing. Ingest must not wait on it for good: it stores on, then catches Redis up
  // through a new connection (here the proxy passes new ones, as a replacement behind the address).
  it('stores on while its Redis connection answers nothing, and catches up over a new one', async () => {
    const { config } = context;
    const keys = onlineKeys(config.redis.keyPrefix);
    const redis = createClient({ url: TEST_STACK.redisUrl });
    await redis.connect();
    const app = await startIngest(config, undefined, 'silent');
    const produce = (from: number) =>
      produceRaw(
        config,
        'user.events',
        Array.from({ length: 10 }, (_, i) =>
          eventMessage(
            userEvent({
              userId: 's-user',
              itemId: `s-item-${String((from + i) % 4)}`,
              timestamp: TS,
            }),
          ),
        ),
      );
    const version = async () => redis.hGet(keys.interest('s-user'), 'version');
    try {
      await produce(0);
      await eventually(async () => (await version()) === '10', 20_000, { what: 'first batch' });
      proxy.silence();
      const silenced = Date.now();
      for (const batch of [1, 2, 3]) {
        await produce(batch * 10);
        await eventually(
          async () => (await countEvents(config.postgres.url)).rows === (batch + 1) * 10,
          20_000,
          { what: `batch ${String(batch)} stored` },
        );
      }
      const storedMs = Date.now() - silenced;
      await eventually(async () => (await version()) === '40', 20_000, { what: 'catch-up' });
      const caughtUpMs = Date.now() - silenced;
      reportFigures('redis-silent', { storedMs, caughtUpMs });
      expect(await query(config.postgres.url, 'SELECT 1 FROM online_state_pending')).toEqual([]);
    } finally {
      await app.close();
      await redis.close();
    }
  });
});
