import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Pool } from 'pg';
import type { AppConfig } from '../src/config/config';
import { PG_POOL } from '../src/infra/tokens';
import { ApiKeyService } from '../src/modules/auth/api-key.service';
import { generateApiKey } from '../src/modules/auth/api-key';
import { EmbeddingService } from '../src/modules/embedding/embedding.service';
import { DLQ_HEADERS, TOPICS } from '../src/modules/ingest/ingest.service';
import { OnlineStateWriter } from '../src/modules/online-state/online-state.writer';
import { PopularityMirror } from '../src/modules/online-state/popularity-mirror';
import { ServingService } from '../src/modules/serving/serving.service';
import { PinnedModels, startApp } from './support/app';
import { catalogItem, eventMessage, userEvent } from './support/factories';
import { fakeCategoryModel } from './support/fakes/category-model';
import { reportFigures } from './support/fault-helpers';
import { graphql, GraphqlResponse } from './support/graphql';
import { produceRaw, query, readTopic, sleep } from './support/ingest-helpers';
import { eventually } from './support/poll';
import {
  insertEvents,
  insertItems,
  insertItemVectors,
  RANK_QUERY,
  RankResultView,
  RECOMMEND_QUERY,
} from './support/ranking-helpers';
import { TcpProxy } from './support/tcp-proxy';
import { activateUntrainedModel } from './support/untrained-model';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(90_000);

const FUTURE = '2090-01-01T00:00:00Z';
const ITEMS = ['x-price', 'x-old', 'x-empty', 'x-plain', 'x-popular'].map((itemId, i) => ({
  itemId,
  category: i % 2 === 0 ? 'alpha' : 'beta',
}));
const model = () => fakeCategoryModel(ITEMS, { versionId: 'hardening' });

type Ranked = GraphqlResponse<{ rank: RankResultView }>;

function expectFinite(result: RankResultView | undefined): void {
  if (result === undefined) throw new Error('no result');
  for (const item of result.items) {
    expect(Number.isFinite(item.score)).toBe(true);
    for (const part of item.parts) expect(Number.isFinite(part.value)).toBe(true);
  }
}

/**
 * Issue #16's probes: producer clocks far off, extreme values, cost-based limits, bounded
 * encoding, floods of unknown keys, memory bounded by the catalog, readiness during PostgreSQL and
 * Redis trouble, and who did what. Each asserts what a user sees; each prints its figures.
 */
describe('extreme times and values', () => {
  let context: TestContext;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext({ INGEST_MAX_CLOCK_SKEW_MS: '300000' });
    await context.createServiceTopics();
    app = await startApp(context.config, {
      role: 'all',
      models: new PinnedModels({ model: model() }),
    });
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it('dead-letters clocks far ahead, stays finite on whatever got stored, and keeps answering', async () => {
    const { config } = context;
    const refused = [
      catalogItem({ itemId: 'x-bad-updated', updatedAt: FUTURE }),
      catalogItem({ itemId: 'x-bad-created', createdAt: FUTURE }),
    ];
    await produceRaw(config, TOPICS.items, [
      ...refused.map((item) => ({ key: item.itemId, value: JSON.stringify(item) })),
      ...[
        catalogItem({ itemId: 'x-price', price: 1e300, updatedAt: new Date().toISOString() }),
        catalogItem({ itemId: 'x-old', createdAt: '2000-01-01T00:00:00Z' }),
        catalogItem({ itemId: 'x-empty', description: '', tags: [] }),
        catalogItem({ itemId: 'x-plain' }),
        catalogItem({ itemId: 'x-popular' }),
      ].map((item) => ({ key: item.itemId, value: JSON.stringify(item) })),
    ]);
    const now = Date.now();
    await produceRaw(config, TOPICS.events, [
      eventMessage(userEvent({ userId: 'u-x', itemId: 'x-price', timestamp: FUTURE })),
      eventMessage(userEvent({ userId: 'u-x', itemId: 'x-old', timestamp: 0 })),
      eventMessage(
        userEvent({ userId: 'u-x', itemId: 'x-old', timestamp: '2000-01-02T00:00:00Z' }),
      ),
      ...Array.from({ length: 5 }, (_, i) =>
        eventMessage(userEvent({ userId: 'u-x', itemId: 'x-plain', timestamp: now - i })),
      ),
    ]);
    const itemLetters = await readTopic(config, TOPICS.itemsDlq, 2);
    expect(itemLetters.map((letter) => letter.headers[DLQ_HEADERS.field]).sort()).toEqual([
      'createdAt',
      'updatedAt',
    ]);
    expect(itemLetters[0]?.headers[DLQ_HEADERS.reason]).toMatch(/ms ahead of the broker time/);
    const eventLetters = await readTopic(config, TOPICS.eventsDlq, 2);
    expect(eventLetters.map((letter) => letter.headers[DLQ_HEADERS.field])).toEqual([
      'timestamp',
      'timestamp',
    ]);

    // What a producer with a wrong clock left before ingest refused such times: a click in 2090
    // and thousands more, stored and counted.
    const writer = app.get(OnlineStateWriter, { strict: false });
    await writer.apply(
      Array.from({ length: 5000 }, (_, i) => ({
        eventId: `old-bad-${i}`,
        type: 'purchase' as const,
        userId: `old-${i % 50}`,
        itemId: 'x-popular',
        ts: new Date(FUTURE),
      })),
    );

    const candidates = [
      ...ITEMS.map(({ itemId }) => ({ itemId })),
      { itemId: 'never-seen' },
      { itemId: 'with-text', text: 'alpha' },
    ];
    const ranked = await eventually(
      async () =>
        await graphql<{ rank: RankResultView }>(app, RANK_QUERY, { userId: 'u-x', candidates }),
      30_000,
      {
        what: 'the events ingested and the rank answered',
        until: (response: Ranked) =>
          response.data?.rank.degraded.length === 0 &&
          (response.data.rank.items
            .find((item) => item.itemId === 'x-popular')
            ?.parts.find((part) => part.name === 'popularity')?.value ?? 0) > 0.9,
      },
    );
    expect(ranked.value.errors).toBeUndefined();
    expectFinite(ranked.value.data?.rank);
    const recommended = await graphql<{ recommend: RankResultView }>(app, RECOMMEND_QUERY, {
      userId: 'u-x',
      first: 5,
    });
    expect(recommended.errors).toBeUndefined();
    expectFinite(recommended.data?.recommend);
    const cold = await graphql<{ recommend: RankResultView }>(app, RECOMMEND_QUERY, {
      userId: 'nobody',
      first: 5,
    });
    expect(cold.errors).toBeUndefined();
    expectFinite(cold.data?.recommend);
    reportFigures('extreme-values', {
      deadLettered: itemLetters.length + eventLetters.length,
      rankErrors: 0,
      popularityOfFutureItem: ranked.value.data?.rank.items
        .find((item) => item.itemId === 'x-popular')
        ?.parts.find((part) => part.name === 'popularity')?.value,
    });
  });

  it('keeps the item table to the catalog: events for unknown ids are not mirrored', async () => {
    const serving = app.get(ServingService, { strict: false });
    const before = serving.items.size;
    await produceRaw(
      context.config,
      TOPICS.events,
      Array.from({ length: 500 }, (_, i) =>
        eventMessage(
          userEvent({ userId: 'u-flood', itemId: `stranger-${i}`, timestamp: Date.now() }),
        ),
      ),
    );
    await eventually(
      async () =>
        (
          await query<{ n: number }>(
            context.config.postgres.url,
            "SELECT count(*)::int AS n FROM events WHERE user_id = 'u-flood'",
          )
        )[0]?.n,
      30_000,
      { what: 'the strangers’ events stored', until: (n) => n === 500 },
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(serving.items.size).toBe(before);
    expect(serving.items.row('stranger-1')).toBe(-1);
    reportFigures('memory-bound', { itemRowsBefore: before, itemRowsAfter: serving.items.size });
  });
});

describe('cost-based limits and unknown-key floods (AUTH_MODE=api-key)', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  let keys: ApiKeyService;

  beforeAll(async () => {
    context = await createTestContext({ AUTH_MODE: 'api-key', ROLE: 'api' });
    await context.createServiceTopics();
    await insertItems(
      context.config.postgres.url,
      ITEMS.map((item) => ({ ...item, title: item.itemId })),
    );
    app = await startApp(context.config, { models: new PinnedModels({ model: model() }) });
    keys = app.get(ApiKeyService, { strict: false });
    // A user with history: only then are candidate texts encoded (and charged).
    await app
      .get(OnlineStateWriter, { strict: false })
      .apply([{ eventId: 'h-1', type: 'click', userId: 'u-x', itemId: 'x-plain', ts: new Date() }]);
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  const withKey = (key: string) => ({ 'x-api-key': key });

  it('charges every aliased field and every encoded text to the key', async () => {
    const { key } = await keys.create({ name: 'small', role: 'read', rateLimitPerSecond: 5 });
    // Burst 10: one request with 12 aliased rank fields cannot pay.
    const fields = Array.from(
      { length: 12 },
      (_, i) => `r${i}: rank(userId: "u", candidates: [{ itemId: "x-plain" }]) { requestId }`,
    ).join(' ');
    const aliased = await graphql(app, `{ ${fields} }`, {}, withKey(key));
    const codes = new Set(aliased.errors?.map((error) => error.extensions.code));
    expect(codes).toEqual(new Set(['RATE_LIMITED']));
    await new Promise((resolve) => setTimeout(resolve, 2100));
    // 1 for the field + 12 texts to encode > a full bucket of 10.
    const texts = Array.from({ length: 12 }, (_, i) => ({ itemId: `t-${i}`, text: `alpha ${i}` }));
    const costly = await graphql(
      app,
      RANK_QUERY,
      { userId: 'u-x', candidates: [{ itemId: 'x-plain' }, ...texts] },
      withKey(key),
    );
    expect(costly.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', cost: 12 });
    reportFigures('cost-limits', {
      aliasedFieldsRefused: aliased.errors?.length,
      textCostRefused: costly.errors?.[0]?.extensions.cost,
    });
  });

  it('serves every real key during a flood of random keys on a fresh replica', async () => {
    const { key: real } = await keys.create({ name: 'storefront', role: 'read' });
    const fresh = await startApp(context.config, { models: new PinnedModels({ model: model() }) });
    try {
      const flood = Array.from({ length: 400 }, () =>
        graphql(fresh, '{ rankingProfiles { name } }', {}, withKey(generateApiKey().key)),
      );
      const served = Array.from({ length: 40 }, () =>
        graphql(fresh, '{ rankingProfiles { name } }', {}, withKey(real)),
      );
      const [floodAnswers, realAnswers] = await Promise.all([
        Promise.all(flood),
        Promise.all(served),
      ]);
      expect(realAnswers.every((answer) => answer.errors === undefined)).toBe(true);
      const floodCodes = floodAnswers.map((answer) => answer.errors?.[0]?.extensions.code);
      expect(new Set(floodCodes)).toEqual(new Set(['UNAUTHENTICATED', 'RATE_LIMITED']));
      reportFigures('unknown-key-flood', {
        randomKeys: flood.length,
        realRequests: served.length,
        realServed: realAnswers.filter((answer) => answer.errors === undefined).length,
      });
    } finally {
      await fresh.close();
    }
  });

  it('records the API key that triggered an ops change', async () => {
    const { key } = await keys.create({ name: 'operator-ana', role: 'ops' });
    const queued = await graphql<{ trainModel: { id: string } }>(
      app,
      'mutation { trainModel(mode: FULL) { id } }',
      {},
      withKey(key),
    );
    const rows = await query<{ triggered_by: string }>(
      context.config.postgres.url,
      'SELECT triggered_by FROM training_runs WHERE id = $1',
      [queued.data?.trainModel.id],
    );
    expect(rows[0]?.triggered_by).toBe('graphql (api key "operator-ana")');
  });
});

describe('on-demand encoding: bounded, and withdrawn when the request gives up', () => {
  let context: TestContext;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext({
      ROLE: 'api',
      // A model run of 48 long texts takes seconds on 2 cores; its tokenization alone blocks the
      // event loop for a good part of a second, hence the generous timeout.
      EMBEDDING_ONDEMAND_MAX_QUEUE: '48',
      EMBEDDING_ONDEMAND_MAX_BATCH: '48',
      RANK_TIMEOUT_MS: '1200',
    });
    await context.createServiceTopics();
    app = await startApp(context.config);
    // An untrained model over the real encoder: every candidate text goes through the batcher.
    const encoderId = app.get(EmbeddingService, { strict: false }).encoderId;
    // A user with a history the model knows, so candidate texts are worth encoding.
    const seen = Float32Array.from({ length: 384 }, (_, i) => Math.sin(i));
    await insertItems(context.config.postgres.url, [
      { itemId: 'seen', title: 'seen', category: 'alpha' },
    ]);
    await insertItemVectors(context.config.postgres.url, encoderId, {
      ids: ['seen'],
      dimension: 384,
      matrix: seen,
    });
    await app
      .get(OnlineStateWriter, { strict: false })
      .apply([
        { eventId: 'seen-click', type: 'click', userId: 'u-text', itemId: 'seen', ts: new Date() },
      ]);
    const id = await activateUntrainedModel(app, encoderId, 384);
    await eventually(
      async () =>
        (
          await graphql<{ servingModel: { versionId: string | null } }>(
            app,
            '{ servingModel { versionId } }',
          )
        ).data?.servingModel.versionId,
      15_000,
      { what: 'the version served', until: (served) => served === id },
    );
  }, 120_000);
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it('bounds the encoding a flood of texts causes: refused at once when full, dropped on timeout', async () => {
    const long = (tag: string, i: number) =>
      `${tag} ${i} ${'a fairly long product description with many words '.repeat(40)}`;
    const metric = async (pattern: RegExp) => {
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      return Number(pattern.exec(metrics)?.[1] ?? 0);
    };
    const runs = () =>
      metric(/embedding_on_demand_run_seconds_count\{[^}]*outcome="ok"[^}]*\} (\d+)/);
    const queuedTexts = () => metric(/embedding_on_demand_queued_texts\{[^}]*\} (\d+)/);
    await app.get(EmbeddingService, { strict: false }).encodeOnDemand('warm up the encoder');
    const runsBefore = await runs();
    const requests = 20;
    const textsEach = 16;
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: requests }, async (_, r) => {
        const sent = Date.now();
        const answer = await graphql<{ rank: RankResultView }>(app, RANK_QUERY, {
          userId: 'u-text',
          candidates: Array.from({ length: textsEach }, (_, i) => ({
            itemId: `r${r}-${i}`,
            text: long(`r${r}`, i),
          })),
        });
        return { code: answer.errors?.[0]?.extensions.code ?? 'ok', ms: Date.now() - sent };
      }),
    );
    const healthStarted = Date.now();
    const health = await graphql(app, '{ health { status } }');
    const healthMs = Date.now() - healthStarted;
    // Idle: nothing queued, and no run finished for longer than a run takes (~2.5 s here).
    const settled = await eventually(
      async () => {
        const before = await runs();
        await new Promise((resolve) => setTimeout(resolve, 4000));
        return (await runs()) === before && (await queuedTexts()) === 0 ? before : -1;
      },
      60_000,
      { what: 'the encoder idle', until: (count) => count >= 0 },
    );
    const codes = answers.map((answer) => answer.code);
    const count = (code: string) => codes.filter((entry) => entry === code).length;
    const all = requests * textsEach;
    reportFigures('bounded-encoding', {
      requests,
      texts: all,
      ok: count('ok'),
      resourceExhausted: count('RESOURCE_EXHAUSTED'),
      timedOut: count('TIMEOUT'),
      slowestAnswerMs: Math.max(...answers.map((answer) => answer.ms)),
      modelRuns: settled.value - runsBefore,
      modelRunsToEncodeAll: Math.ceil(all / 48),
      encoderIdleAfterMs: settled.at - 4000 - started,
      healthMs,
    });
    expect(health.errors).toBeUndefined();
    expect(count('RESOURCE_EXHAUSTED')).toBeGreaterThan(0);
    // The encoder runs on its own thread: health answers while it works.
    expect(healthMs).toBeLessThan(1000);
    expect(count('ok') + count('RESOURCE_EXHAUSTED') + count('TIMEOUT')).toBe(requests);
    // Texts nobody waits for any more are never encoded: far fewer runs than the flood asked for.
    expect(settled.value - runsBefore).toBeLessThan(Math.ceil(all / 48));
  });
});

describe('readiness when PostgreSQL or Redis is away or busy (api role)', () => {
  let context: TestContext;

  beforeAll(async () => {
    context = await createTestContext({ ROLE: 'api' });
    await context.createServiceTopics();
    await insertItems(
      context.config.postgres.url,
      ITEMS.map((item) => ({ ...item, title: item.itemId })),
    );
  });
  afterAll(async () => {
    await context.cleanup();
  });

  it('stays ready and answers rank from what it holds while PostgreSQL is unreachable', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5432);
    await proxy.start();
    const viaProxy = new URL(context.config.postgres.url);
    viaProxy.port = String(proxy.port);
    const config: AppConfig = {
      ...context.config,
      postgres: {
        ...context.config.postgres,
        url: viaProxy.toString(),
        directUrl: viaProxy.toString(),
      },
    };
    const app = await startApp(config, { models: new PinnedModels({ model: model() }) });
    try {
      const rank = () =>
        graphql<{ rank: RankResultView }>(app, RANK_QUERY, {
          userId: 'u-blip',
          candidates: ITEMS.map(({ itemId }) => ({ itemId })),
        });
      expect((await rank()).errors).toBeUndefined();
      await proxy.cut();
      const ready = await app.inject({ method: 'GET', url: '/health/ready' });
      const during = await rank();
      await proxy.restore();
      const checks = ready.json<{ checks: { name: string; ok: boolean }[] }>().checks;
      expect(ready.statusCode).toBe(200);
      expect(checks.find((check) => check.name === 'postgres')?.ok).toBe(false);
      expect(during.errors).toBeUndefined();
      expect(during.data?.rank.items).toHaveLength(ITEMS.length);
      reportFigures('postgres-away', {
        readyStatus: ready.statusCode,
        rankAnswered: during.errors === undefined,
      });
    } finally {
      await app.close();
      await proxy.cut();
    }
  });

  it('answers readiness at once while ranking holds every query connection', async () => {
    const app = await startApp({
      ...context.config,
      postgres: { ...context.config.postgres, poolMax: 1 },
    });
    const pool = app.get<symbol, Pool>(PG_POOL, { strict: false });
    const held = await pool.connect();
    try {
      const started = Date.now();
      const ready = await app.inject({ method: 'GET', url: '/health/ready' });
      const ms = Date.now() - started;
      expect(ready.statusCode).toBe(200);
      expect(ms).toBeLessThan(1000);
      reportFigures('query-pool-exhausted', { readyStatus: ready.statusCode, readyMs: ms });
    } finally {
      held.release();
      await app.close();
    }
  });

  // End to end, with figures. The mechanism (readiness on a pool of its own) is pinned by the test
  // above: ranking's short queries turn a shared pool over too fast for this one to catch it.
  it('keeps readiness fast while a Redis outage sends histories to PostgreSQL and popularity to the copy', async () => {
    const users = Array.from({ length: 20 }, (_, i) => `u-outage-${i}`);
    await insertEvents(
      context.config.postgres.url,
      users.flatMap((userId, u) =>
        ITEMS.map(({ itemId }, i) => ({
          eventId: `outage-${u}-${i}`,
          type: 'click' as const,
          userId,
          itemId,
          ts: new Date(Date.now() - i * 60_000),
        })),
      ),
    );
    const proxy = new TcpProxy('127.0.0.1', 6379);
    await proxy.start();
    const viaProxy = new URL(context.config.redis.url);
    viaProxy.port = String(proxy.port);
    // Two query connections, as a small pool under load would be: ranking reads take both.
    const app = await startApp(
      {
        ...context.config,
        redis: { ...context.config.redis, url: viaProxy.toString() },
        postgres: { ...context.config.postgres, poolMax: 2 },
      },
      { models: new PinnedModels({ model: model() }) },
    );
    try {
      // Clicks the replica's popularity copy follows before the outage.
      await app.get(OnlineStateWriter, { strict: false }).apply(
        Array.from({ length: 20 }, (_, i) => ({
          eventId: `outage-pop-${i}`,
          type: 'click' as const,
          userId: `u-outage-fan-${i}`,
          itemId: 'x-popular',
          ts: new Date(),
        })),
      );
      // Read from the copy, not from Redis: before the copy first loads (the load at start is not
      // awaited) and while it is stale, ranks read Redis, which had the clicks at once.
      const mirror = app.get(PopularityMirror, { strict: false });
      await eventually(
        async () => {
          await mirror.sync();
          const ranked = await graphql<{ rank: RankResultView }>(app, RANK_QUERY, {
            userId: 'u-outage-probe',
            candidates: [{ itemId: 'x-popular' }],
          });
          const popularity = ranked.data?.rank.items[0]?.parts.find(
            (part) => part.name === 'popularity',
          );
          return mirror.isFresh() && (popularity?.value ?? 0) > 0.7;
        },
        10_000,
        { what: "the copy following x-popular's clicks" },
      );
      await proxy.cut();
      // The popularity copy goes stale (2 s): ranks then take popularity from it as it last synced
      // (Redis does not answer), never per request from PostgreSQL.
      await sleep(2500);
      const outcomes: Record<string, number> = {};
      const readiness: { status: number; ms: number }[] = [];
      const until = Date.now() + 3000;
      const flood = async (worker: number) => {
        for (let n = 0; Date.now() < until; n++) {
          const response = await graphql<{ rank: RankResultView }>(app, RANK_QUERY, {
            userId: users[(worker + n) % users.length],
            candidates: ITEMS.map(({ itemId }) => ({ itemId })),
          });
          const degraded = response.data?.rank.degraded ?? [];
          const outcome =
            response.errors?.[0]?.extensions?.code ??
            (degraded.length > 0 ? [...degraded].sort().join('+') : 'ok');
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }
      };
      const probe = async () => {
        while (Date.now() < until) {
          const started = Date.now();
          const ready = await app.inject({ method: 'GET', url: '/health/ready' });
          readiness.push({ status: ready.statusCode, ms: Date.now() - started });
          await sleep(100);
        }
      };
      await Promise.all([...Array.from({ length: 16 }, (_, worker) => flood(worker)), probe()]);
      const slowestReadyMs = Math.max(...readiness.map((answer) => answer.ms));
      reportFigures('redis-outage', {
        rankOutcomes: outcomes,
        readinessProbes: readiness.length,
        readyStatuses: [...new Set(readiness.map((answer) => answer.status))],
        slowestReadyMs,
      });
      expect(readiness.length).toBeGreaterThan(10);
      expect(readiness.every((answer) => answer.status === 200)).toBe(true);
      expect(slowestReadyMs).toBeLessThan(1000);
      // Ranking answered, histories from PostgreSQL and popularity from the stale copy, and said so.
      expect(Object.keys(outcomes)).toEqual(['online_state_from_postgres+popularity_stale']);
      // A user without history (that much read from PostgreSQL) is recommended the copy's most
      // engaged items, not PostgreSQL's.
      const cold = await graphql<{ recommend: RankResultView }>(app, RECOMMEND_QUERY, {
        userId: 'u-outage-new',
        first: 2,
      });
      expect(cold.errors).toBeUndefined();
      expect(cold.data?.recommend.items[0]?.itemId).toBe('x-popular');
      expect([...(cold.data?.recommend.degraded ?? [])].sort()).toEqual([
        'cold_user',
        'online_state_from_postgres',
        'popularity_stale',
      ]);
    } finally {
      await app.close();
      await proxy.cut();
    }
  });
});
