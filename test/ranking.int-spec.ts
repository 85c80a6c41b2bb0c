import { Logger } from '@nestjs/common';
import { createClient } from 'redis';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import type { LoadedModel } from '../src/modules/serving/served-model';
import { generateCatalog, SyntheticItem } from '../src/synthetic';
import { eventMessage, userEvent } from './support/factories';
import { produceRaw, query as pgQuery, sleep } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { activateUntrainedModel } from './support/untrained-model';
import { PinnedModels, startApp } from './support/app';
import { fakeCategoryModel } from './support/fakes/category-model';
import { graphql } from './support/graphql';
import {
  insertEvents,
  insertItems,
  insertItemVectors,
  PrivateRedis,
  RankResultView,
  rankCall,
  recommendCall,
} from './support/ranking-helpers';
import { REDIS_MODES } from './support/stack';
import { createTestContext, TestContext } from './support/test-context';
import { RegistryService } from '../src/modules/registry/registry.service';
import { ServingRepository } from '../src/modules/serving/serving.repository';
import type { PgBulkReader } from '../src/infra/pg-bulk-reader';
import { PG_BULK_READER, PG_POOL } from '../src/infra/tokens';
import type { Pool, QueryResult } from 'pg';
import { OnlineStateRedisRepository } from '../src/modules/online-state/online-state-redis.repository';
import { onlineDelta } from '../src/modules/online-state/online-state.schema';
import { LocalUserVectors } from '../src/modules/ranking/local-user-vectors';

const catalog = generateCatalog({ items: 240, seed: 'ranking', categories: 12, idPrefix: 'ri-' });
const byCategory = (category: string) => catalog.items.filter((item) => item.category === category);
const [CAT_A = '', CAT_B = '', CAT_C = ''] = catalog.categories;
const model = (versionId = '7') => fakeCategoryModel(catalog.items, { versionId });
const itemRows = catalog.items.map((item) => ({
  itemId: item.itemId,
  title: item.title,
  category: item.category,
  price: item.price,
  createdAt: item.createdAt,
}));

function clicks(userId: string, items: readonly SyntheticItem[], baseMs = Date.now()) {
  return items.map((item, i) =>
    eventMessage(
      userEvent({
        userId,
        itemId: item.itemId,
        type: 'click',
        timestamp: new Date(baseMs + i).toISOString(),
      }),
    ),
  );
}

function candidates(items: readonly SyntheticItem[]) {
  return items.map((item) => ({ itemId: item.itemId }));
}

function expectPartsSumToScore(result: RankResultView): void {
  for (const item of result.items) {
    const sum = item.parts.reduce((total, part) => total + part.value * part.weight, 0);
    expect(item.score).toBeCloseTo(sum, 9);
  }
}

const categoryOf = new Map(catalog.items.map((item) => [item.itemId, item.category]));

/** A loaded model's catalog vectors as the text vectors an encoder would have stored. */
const textVectors = (loaded: LoadedModel) => ({
  ids: loaded.catalog.ids,
  dimension: loaded.model.dimension,
  matrix: loaded.catalog.matrix,
});

describe.each(REDIS_MODES)(
  'ranking on the real stack (api + ingest in one app, $mode Redis)',
  rankingOnTheRealStack,
);

function rankingOnTheRealStack({ env }: (typeof REDIS_MODES)[number]): void {
  let context: TestContext;
  let app: NestFastifyApplication;
  const models = new PinnedModels({ model: model() });

  const rank = async (variables: Record<string, unknown>) => rankCall(app, variables);

  beforeAll(async () => {
    // Pages of 100 rows: the 240-item catalog is read in three (the minimum page size).
    context = await createTestContext({
      RANK_TIMEOUT_MS: '1500',
      RANK_CATALOG_PAGE_ROWS: '100',
      ...env,
    });
    await context.createServiceTopics();
    await insertItems(context.config.postgres.url, itemRows);
    app = await startApp(context.config, { role: 'all', models });
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it("ranks a one-category clicker's unseen items of that category first; parts sum to score", async () => {
    const clicked = byCategory(CAT_A).slice(0, 8);
    await produceRaw(context.config, TOPICS.events, clicks('u-cat', clicked));
    const unseenA = byCategory(CAT_A).slice(8, 16);
    const others = [...byCategory(CAT_B).slice(0, 10), ...byCategory(CAT_C).slice(0, 10)];
    const pool = [...others.slice(0, 10), ...unseenA, ...others.slice(10)];
    let result: RankResultView | undefined;
    await eventually(
      async () => {
        result = (await rank({ userId: 'u-cat', candidates: candidates(pool) })).data?.rank;
        return result?.degraded.length === 0;
      },
      30_000,
      { what: 'ingested clicks' },
    );
    if (result === undefined) throw new Error('no result');
    expect(result.modelVersion).toBe('7');
    expect(result.items.map((item) => item.rank)).toEqual(pool.map((_, i) => i + 1));
    const top = result.items.slice(0, unseenA.length).map((item) => categoryOf.get(item.itemId));
    expect(top).toEqual(unseenA.map(() => CAT_A));
    expect(result.items[0]?.parts.map((part) => part.name)).toEqual([
      'model',
      'popularity',
      'ctr',
      'recency',
      'price',
      'boost',
    ]);
    expectPartsSumToScore(result);

    const recommended = await recommendCall(app, {
      userId: 'u-cat',
      first: 5,
      exclude: [unseenA[0]?.itemId],
    });
    const ids = recommended.data?.recommend.items.map((item) => item.itemId) ?? [];
    expect(ids).toHaveLength(5);
    expect(ids.map((id) => categoryOf.get(id))).toEqual(ids.map(() => CAT_A));
    const excluded = new Set([...clicked.map((item) => item.itemId), unseenA[0]?.itemId]);
    expect(ids.filter((id) => excluded.has(id))).toEqual([]);
  });

  it("lists an item's nearest items under the served version: its own category, best first", async () => {
    const item = byCategory(CAT_B)[0];
    const answer = await graphql<{
      catalogItem: { nearest: { itemId: string; similarity: number }[] };
    }>(
      app,
      'query Near($id: ID!) { catalogItem(itemId: $id) { nearest(first: 5) { itemId similarity } } }',
      { id: item.itemId },
    );
    expect(answer.errors).toBeUndefined();
    const nearest = answer.data?.catalogItem.nearest ?? [];
    expect(nearest).toHaveLength(5);
    expect(nearest.map((near) => near.itemId)).not.toContain(item.itemId);
    expect(nearest.map((near) => categoryOf.get(near.itemId))).toEqual(nearest.map(() => CAT_B));
    const similarities = nearest.map((near) => near.similarity);
    expect(similarities).toEqual([...similarities].sort((a, b) => b - a));
  });

  it("reflects a click published to user.events in the next ranking within a second, also once the replica keeps the user's vector", async () => {
    await produceRaw(
      context.config,
      TOPICS.events,
      clicks('u-fresh', byCategory(CAT_B).slice(0, 6)),
    );
    const pool = [...byCategory(CAT_B).slice(6, 12), ...byCategory(CAT_C).slice(10, 16)];
    const topCategory = async () => {
      const result = (await rank({ userId: 'u-fresh', candidates: candidates(pool) })).data?.rank;
      return categoryOf.get(result?.items[0]?.itemId ?? '');
    };
    await eventually(async () => (await topCategory()) === CAT_B, 30_000, { what: 'first clicks' });
    // Answered from the replica's copy of the vector (no Redis round trip) once it synced.
    const localHits = async () => {
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      const line =
        /ranking_cache_requests_total\{cache="user_vector_local",result="hit"[^}]*\} (\d+)/;
      return Number(line.exec(metrics)?.[1] ?? 0);
    };
    const hitsBefore = await localHits();
    await eventually(
      async () => (await topCategory()) === CAT_B && (await localHits()) > hitsBefore,
      5_000,
      { what: "a rank answered from the replica's copy" },
    );
    // Many recent clicks on the other category move the interest vector over.
    const sent = Date.now();
    await produceRaw(
      context.config,
      TOPICS.events,
      clicks('u-fresh', byCategory(CAT_C).slice(0, 10), Date.now() + 1000),
    );
    let elapsed = Number.POSITIVE_INFINITY;
    for (;;) {
      if ((await topCategory()) === CAT_C) {
        elapsed = Date.now() - sent;
        break;
      }
      if (Date.now() - sent > 10_000) break;
      await sleep(20);
    }
    expect(elapsed).toBeLessThan(1000);
  });

  it("raises an item's popularity part within a second of clicks on it (the replica's copy)", async () => {
    const item = byCategory(catalog.categories[4])[0];
    const popularityOf = async () => {
      const result = await rank({ userId: 'u-pop', candidates: candidates([item]) });
      const parts = result.data?.rank.items[0]?.parts ?? [];
      return parts.find((part) => part.name === 'popularity')?.value ?? Number.NaN;
    };
    const before = await popularityOf();
    const sent = Date.now();
    await produceRaw(
      context.config,
      TOPICS.events,
      ['p-1', 'p-2', 'p-3'].flatMap((userId) => clicks(userId, [item])),
    );
    let elapsed = Number.POSITIVE_INFINITY;
    while (Date.now() - sent < 10_000) {
      if ((await popularityOf()) > before) {
        elapsed = Date.now() - sent;
        break;
      }
      await sleep(20);
    }
    expect(elapsed).toBeLessThan(1000);
  });

  it('serves unknown users by popularity prior and unknown items by text or prior', async () => {
    const cold = await rank({
      userId: 'never-seen',
      candidates: candidates(byCategory(CAT_A).slice(0, 3)),
    });
    expect(cold.data?.rank.degraded).toEqual(['cold_user']);
    expect(cold.data?.rank.items.every((item) => item.parts[0]?.name === 'prior')).toBe(true);

    const mixed = await rank({
      userId: 'u-cat',
      candidates: [
        { itemId: 'new-with-text', text: `A brand new thing for ${CAT_A} fans` },
        { itemId: 'new-without-text' },
        { itemId: byCategory(CAT_B)[15]?.itemId },
      ],
    });
    const parts = new Map(
      mixed.data?.rank.items.map((item) => [item.itemId, item.parts[0]?.name]) ?? [],
    );
    expect(parts.get('new-with-text')).toBe('model');
    expect(parts.get('new-without-text')).toBe('prior');
    expect(mixed.data?.rank.items[0]?.itemId).toBe('new-with-text');
  });

  it('ranks without the model part and says so when no model is served', async () => {
    models.pin(undefined);
    try {
      const result = await rank({
        userId: 'u-cat',
        candidates: candidates(byCategory(CAT_A).slice(0, 4)),
      });
      expect(result.data?.rank.modelVersion).toBeNull();
      expect(result.data?.rank.degraded).toEqual(['no_model']);
      const names = result.data?.rank.items.flatMap((item) => item.parts.map((part) => part.name));
      expect(names).not.toContain('model');
      expectPartsSumToScore(
        result.data?.rank ?? { items: [], modelVersion: null, requestId: '', degraded: [] },
      );
    } finally {
      models.pin(model());
    }
  });

  it('merges caller features and ops-edited profiles (boosts) into the parts', async () => {
    const upsert = await graphql(
      app,
      `
        mutation ($p: RankingProfileInput!) {
          upsertRankingProfile(profile: $p) {
            name
            weights {
              feature
              weight
            }
          }
        }
      `,
      {
        p: {
          name: 'promo',
          weights: [
            { feature: 'model', weight: 1 },
            { feature: 'boost', weight: 1 },
            { feature: 'popularity', weight: 0 },
            { feature: 'feature:margin', weight: 2 },
          ],
          boosts: [{ category: CAT_C, value: 10 }],
        },
      },
    );
    expect(upsert.errors).toBeUndefined();
    const listed = (await graphql(app, '{ rankingProfiles { name } }')).data as
      { rankingProfiles: { name: string }[] } | undefined;
    expect(listed?.rankingProfiles.map((p) => p.name).sort()).toEqual(['default', 'promo']);
    const pool = [byCategory(CAT_A).at(-1), byCategory(CAT_C).at(-1)].map((item) => ({
      itemId: item?.itemId,
      features: [{ name: 'margin', value: 0.25 }],
    }));
    const result = await rank({ userId: 'u-cat', candidates: pool, profile: 'promo' });
    const first = result.data?.rank.items[0];
    expect(categoryOf.get(first?.itemId ?? '')).toBe(CAT_C);
    expect(first?.parts).toEqual(
      expect.arrayContaining([
        { name: 'boost', value: 10, weight: 1 },
        { name: 'feature:margin', value: 0.25, weight: 2 },
        expect.objectContaining({ name: 'popularity', weight: 0 }),
        // A built-in feature the profile does not name takes its default weight.
        expect.objectContaining({ name: 'ctr', weight: 0.5 }),
      ]),
    );
    expectPartsSumToScore(
      result.data?.rank ?? { items: [], modelVersion: null, requestId: '', degraded: [] },
    );
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      'too many candidates',
      { userId: 'u', candidates: Array.from({ length: 1001 }, (_, i) => ({ itemId: `c${i}` })) },
      'candidates',
    ],
    [
      'duplicate ids',
      { userId: 'u', candidates: [{ itemId: 'a' }, { itemId: 'a' }] },
      'candidates[1].itemId',
    ],
    [
      'a catalog item named twice',
      {
        userId: 'u',
        candidates: [0, 1, 0].map((i) => ({ itemId: catalog.items[i].itemId })),
      },
      'candidates[2].itemId',
    ],
    [
      'an unknown profile',
      { userId: 'u', candidates: [{ itemId: 'a' }], profile: 'nope' },
      'profile',
    ],
    ['an empty user id', { userId: '', candidates: [{ itemId: 'a' }] }, 'userId'],
    [
      'a duplicate feature',
      {
        userId: 'u',
        candidates: [
          {
            itemId: 'a',
            features: [
              { name: 'f', value: 1 },
              { name: 'f', value: 2 },
            ],
          },
        ],
      },
      'candidates[0].features[1].name',
    ],
  ])('rejects %s with BAD_USER_INPUT naming the field', async (_, variables, field) => {
    const result = await rank(variables);
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
  });

  it('answers bad input without logging it as a server error (no error line per bad request)', async () => {
    const logged = jest.spyOn(Logger.prototype, 'error');
    try {
      const result = await rank({ userId: 'u', candidates: [{ itemId: '' }] });
      expect(result.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'candidates[0].itemId',
      });
      expect(logged).not.toHaveBeenCalled();
    } finally {
      logged.mockRestore();
    }
  });

  it('rejects a bad `first` for recommend', async () => {
    const result = await recommendCall(app, { userId: 'u', first: 0 });
    expect(result.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'first',
    });
  });

  it('limits query depth, aliases and complexity', async () => {
    const deep = await graphql(
      app,
      '{ a: __schema { types { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } } }',
    );
    expect(deep.status).toBe(400);
    expect(deep.errors?.[0]?.extensions.code).toBe('BAD_USER_INPUT');
    const aliases = Array.from({ length: 21 }, (_, i) => `h${i}: health { status }`).join(' ');
    const many = await graphql(app, `{ ${aliases} }`);
    expect(many.errors?.[0]).toMatchObject({
      message: 'Query uses more than 20 aliases',
      extensions: { code: 'BAD_USER_INPUT' },
    });
    const fields = Array.from(
      { length: 300 },
      () => 'status checks { name ok latencyMs error }',
    ).join(' ');
    const wide = await graphql(app, `{ health { ${fields} } }`);
    expect(wide.errors?.[0]).toMatchObject({
      message: 'Query complexity exceeds the limit of 500 fields',
      extensions: { code: 'BAD_USER_INPUT' },
    });
  });

  it('times out with a TIMEOUT error when a stage hangs', async () => {
    const loaded = model('hang');
    const hanging: LoadedModel = {
      ...loaded,
      model: { ...loaded.model, encodeItems: () => new Promise(() => undefined) },
    };
    models.pin(hanging);
    try {
      const started = Date.now();
      const result = await rank({
        userId: 'u-cat',
        candidates: [{ itemId: 'x', text: 'anything' }],
      });
      expect(result.errors?.[0]?.extensions.code).toBe('TIMEOUT');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      models.pin(model());
    }
  });

  it("serves the registry's activated interest model and reports its version id", async () => {
    // The category model's vectors stand in for the encoder's text vectors of the catalog; an
    // untrained interest model's item tower is the identity, so its ranking stays checkable.
    const encoderId = 'test-category-encoder:32';
    const texts = textVectors(model());
    const url = context.config.postgres.url;
    await insertItemVectors(url, encoderId, texts);
    const unseenA = byCategory(CAT_A).slice(16, 20);
    // An item new to the replica whose id sorts second: the load reads the vectors in item order
    // and the replica's table gives it its last row, so activation moves every vector to its row
    // (RowVectors.moveToRows) instead of finding them in place. Its text is a twin's.
    const twin = unseenA[0]?.itemId ?? '';
    const early = `${catalog.items[0]?.itemId ?? ''}-new`;
    await insertItems(url, [{ ...itemRows[0], itemId: early, category: CAT_A }]);
    const twinAt = texts.ids.indexOf(twin) * texts.dimension;
    await insertItemVectors(url, encoderId, {
      ...texts,
      ids: [early],
      matrix: texts.matrix.slice(twinAt, twinAt + texts.dimension),
    });
    const versionId = await activateUntrainedModel(app, encoderId, texts.dimension);

    models.unpin();
    try {
      const pool = [...byCategory(CAT_B).slice(16, 20), ...unseenA];
      let result: RankResultView | undefined;
      await eventually(
        async () => {
          result = (
            await rank({ userId: 'u-cat', candidates: [...candidates(pool), { itemId: early }] })
          ).data?.rank;
          return result?.modelVersion === versionId;
        },
        15_000,
        { what: 'activated version served' },
      );
      expect(result?.degraded).toEqual([]);
      expect(result?.items.every((item) => item.parts[0]?.name === 'model')).toBe(true);
      const top = result?.items
        .slice(0, unseenA.length + 1)
        .map((item) => (item.itemId === early ? CAT_A : categoryOf.get(item.itemId)));
      expect(top).toEqual([...unseenA, early].map(() => CAT_A));
      const modelPart = (itemId: string) =>
        result?.items.find((item) => item.itemId === itemId)?.parts[0]?.value;
      expect(modelPart(early)).toBeCloseTo(modelPart(twin) ?? Number.NaN, 6);
    } finally {
      models.pin(model());
    }
  });

  it('reads the whole catalog a page per statement: every live vector once in item order (on the bulk reader’s thread), every item', async () => {
    const url = context.config.postgres.url;
    const encoderId = 'test-paged-encoder:32';
    const texts = textVectors(model());
    await insertItemVectors(url, encoderId, texts);
    // A deleted item's vector (not live), inside the second page.
    const deleted = `${texts.ids.toSorted()[150]}-deleted`;
    await insertItems(url, [{ ...itemRows[0], itemId: deleted }]);
    await pgQuery(url, 'UPDATE items SET deleted = true WHERE item_id = $1', [deleted]);
    await insertItemVectors(url, encoderId, {
      ...texts,
      ids: [deleted],
      matrix: texts.matrix.subarray(0, texts.dimension),
    });
    const live = await pgQuery<{ item_id: string; vector: Buffer }>(
      url,
      `SELECT e.item_id, e.vector FROM item_embeddings e JOIN items i USING (item_id)
       WHERE e.encoder_id = $1 AND NOT i.deleted ORDER BY e.item_id`,
      [encoderId],
    );
    const all = await pgQuery<{ item_id: string }>(
      url,
      'SELECT item_id FROM items ORDER BY item_id',
    );
    expect(live.length).toBeGreaterThan(200);
    const repository = app.get(ServingRepository, { strict: false });
    // Each statement returns at most a page: none runs longer the larger the catalog.
    const statements = jest.spyOn(app.get<symbol, Pool>(PG_POOL, { strict: false }), 'query');
    // The paged reads' statements (LIMIT $n), not the app's own meanwhile (the catalog follow).
    const rowsPerStatement = async () => {
      const results = statements.mock.results.filter((_, i) =>
        /LIMIT \$\d/.test(statements.mock.calls[i]?.[0] ?? ''),
      );
      statements.mockClear();
      const settled = await Promise.all(results.map(({ value }) => value as Promise<QueryResult>));
      return settled.map((result) => result.rowCount ?? 0);
    };
    // The vectors are read on the bulk reader's thread, a page of RANK_CATALOG_PAGE_ROWS each.
    const reads = jest.spyOn(
      app.get<symbol, PgBulkReader>(PG_BULK_READER, { strict: false }),
      'vectors',
    );
    // Sized by the count it expects, and grown past a count too low (an item added meanwhile).
    for (const expectedRows of [live.length, 10]) {
      const read = await repository.textVectors(encoderId, expectedRows);
      expect(reads).toHaveBeenLastCalledWith(
        expect.objectContaining({ pageRows: 100, expectedRows }),
      );
      expect(reads.mock.lastCall?.[0].sql).toMatch(/LIMIT \$3/);
      expect(read.matrix.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(read.ids).toEqual(live.map((row) => row.item_id));
      expect(read.dimension).toBe(model().model.dimension);
      expect(
        Buffer.from(read.matrix.buffer, read.matrix.byteOffset, read.matrix.byteLength),
      ).toEqual(Buffer.concat(live.map((row) => row.vector)));
    }
    const [whole] = await pgQuery<{ n: number; hash: string }>(
      url,
      `SELECT count(*)::int AS n,
              sum(hashtextextended(e.item_id || ':' || e.text_hash, 0)::numeric)::text AS hash
       FROM item_embeddings e JOIN items i USING (item_id)
       WHERE e.encoder_id = $1 AND NOT i.deleted`,
      [encoderId],
    );
    reads.mockRestore();
    statements.mockClear();
    const fingerprint = await repository.fingerprint(encoderId);
    expect(fingerprint).toMatchObject({
      fingerprint: `${whole.n}:${whole.hash}`,
      rows: live.length,
    });
    expect((await rowsPerStatement()).length).toBeGreaterThanOrEqual(3);
    const features = await repository.itemFeatures(undefined);
    const returned = await rowsPerStatement();
    statements.mockRestore();
    expect(features.items.map((item) => item.itemId)).toEqual(all.map((row) => row.item_id));
    expect(Math.max(...returned)).toBeLessThanOrEqual(100);
  });

  it('scores items embedded after the swap within seconds: new items, deletions, text changes', async () => {
    // The version activated by the test above stays active; serve it instead of the pinned one.
    const encoderId = 'test-category-encoder:32';
    const active = await app.get(RegistryService).activeVersion();
    if (active === null) throw new Error('no active version');
    models.unpin();
    try {
      const url = context.config.postgres.url;
      const reference = model();
      const vectorOf = (itemId: string) => {
        const row = reference.catalog.ids.indexOf(itemId);
        const d = reference.model.dimension;
        return reference.catalog.matrix.slice(row * d, (row + 1) * d);
      };
      // Three new items whose text vectors point where category A's items point.
      const fresh = byCategory(CAT_A)
        .slice(0, 3)
        .map((item, i) => ({ itemId: `fresh-${i}`, like: item.itemId }));
      const others = byCategory(CAT_B).slice(0, 6);
      await insertItems(
        url,
        fresh.map((item) => ({ itemId: item.itemId, title: 'new', category: CAT_A })),
      );
      const stored = Date.now();
      await insertItemVectors(url, encoderId, {
        ids: fresh.map((item) => item.itemId),
        dimension: reference.model.dimension,
        matrix: Float32Array.from(fresh.flatMap((item) => Array.from(vectorOf(item.like)))),
      });
      // Candidates given by id only: the new items get model scores, and rank first for a user
      // who likes category A.
      const pool = [...others, ...fresh].map((item) => ({ itemId: item.itemId }));
      const scored = await eventually(
        async () => (await rank({ userId: 'u-cat', candidates: pool })).data?.rank,
        5000,
        {
          what: 'the new items model-scored',
          until: (result) =>
            result?.modelVersion === active.id &&
            result.items.find((item) => item.itemId === 'fresh-0')?.parts[0]?.name === 'model',
          intervalMs: 50,
        },
      );
      expect(scored.at - stored).toBeLessThan(5000);
      expect(
        scored.value?.items
          .slice(0, fresh.length)
          .map((item) => item.itemId)
          .sort(),
      ).toEqual(fresh.map((item) => item.itemId));

      // A user whose only clicks are on new items is not cold: the model knows them now.
      await produceRaw(
        context.config,
        TOPICS.events,
        fresh.slice(0, 2).flatMap((item, i) =>
          eventMessage(
            userEvent({
              userId: 'u-new-items',
              itemId: item.itemId,
              type: 'click',
              timestamp: new Date(Date.now() + i).toISOString(),
            }),
          ),
        ),
      );
      const unseen = [...others, ...byCategory(CAT_A).slice(3, 6)];
      const fan = await eventually(
        async () =>
          (await rank({ userId: 'u-new-items', candidates: candidates(unseen) })).data?.rank,
        15_000,
        { what: 'clicks on new items ingested', until: (result) => result?.degraded.length === 0 },
      );
      expect(fan.value?.items.slice(0, 3).map((item) => categoryOf.get(item.itemId))).toEqual([
        CAT_A,
        CAT_A,
        CAT_A,
      ]);

      // A text change (a new vector, now like category B) and a deletion reach serving too.
      await pgQuery(
        url,
        `UPDATE item_embeddings SET vector = $2, updated_at = now()
          WHERE item_id = 'fresh-1' AND encoder_id = $1`,
        [encoderId, Buffer.from(vectorOf(others[0].itemId).buffer)],
      );
      await pgQuery(
        url,
        `UPDATE items SET deleted = true, ingested_at = now() WHERE item_id = 'fresh-2'`,
      );
      const changed = await eventually(
        async () => (await rank({ userId: 'u-cat', candidates: pool })).data?.rank,
        5000,
        {
          what: 'the text change and the deletion followed',
          until: (result) => {
            const order = result?.items.map((item) => item.itemId) ?? [];
            const deleted = result?.items.find((item) => item.itemId === 'fresh-2');
            return order.indexOf('fresh-1') >= 2 && deleted?.parts[0]?.name === 'prior';
          },
          intervalMs: 50,
        },
      );
      expect(changed.value?.items[0]?.itemId).toBe('fresh-0');
      const recommended = await recommendCall(app, { userId: 'u-cat', first: 50 });
      const ids = recommended.data?.recommend.items.map((item) => item.itemId) ?? [];
      expect(ids).toContain('fresh-0');
      expect(ids).not.toContain('fresh-2');
    } finally {
      models.pin(model());
    }
  });

  it('exports stage latency and cache hit metrics', async () => {
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.body).toMatch(
      /ranking_stage_duration_seconds_count\{[^}]*stage="user_vector"[^}]*\} [1-9]/,
    );
    expect(response.body).toMatch(/ranking_cache_requests_total\{[^}]*result="hit"[^}]*\} [1-9]/);
    expect(response.body).toMatch(
      /ranking_operation_duration_seconds_count\{[^}]*operation="recommend"/,
    );
  });
}

/**
 * Starts a private Redis, then an api app on it whose PostgreSQL has the catalog and, for each of
 * `userIds`, clicks on six CAT_A items that Redis knows nothing of.
 */
async function apiOnPrivateRedis(
  redis: PrivateRedis,
  userIds: readonly string[],
  env: Record<string, string> = {},
): Promise<{ context: TestContext; app: NestFastifyApplication }> {
  await redis.start();
  const context = await createTestContext({ REDIS_URL: redis.url, ...env });
  await context.createServiceTopics();
  await insertItems(context.config.postgres.url, itemRows);
  const now = Date.now();
  await insertEvents(
    context.config.postgres.url,
    userIds.flatMap((userId) =>
      byCategory(CAT_A)
        .slice(0, 6)
        .map((item, i) => ({
          eventId: `${userId}-${i}`,
          type: 'click' as const,
          userId,
          itemId: item.itemId,
          ts: new Date(now - i * 1000),
        })),
    ),
  );
  const app = await startApp(context.config, {
    role: 'api',
    models: new PinnedModels({ model: model() }),
  });
  return { context, app };
}

describe('ranking with Redis down', () => {
  const redis = new PrivateRedis();
  let context: TestContext;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ context, app } = await apiOnPrivateRedis(redis, ['u-pg']));
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
    await context.cleanup();
  });

  it('still answers rank and recommend, from PostgreSQL', async () => {
    await redis.stop();
    const pool = [...byCategory(CAT_B).slice(0, 5), ...byCategory(CAT_A).slice(6, 11)];
    const result = await rankCall(app, {
      userId: 'u-pg',
      candidates: candidates(pool),
    });
    expect(result.errors).toBeUndefined();
    const ranked = result.data?.rank;
    expect(ranked?.degraded).toEqual(['online_state_from_postgres']);
    expect(ranked?.items.slice(0, 5).map((item) => categoryOf.get(item.itemId))).toEqual(
      Array.from({ length: 5 }, () => CAT_A),
    );
    const cold = await recommendCall(app, {
      userId: 'someone-new',
      first: 3,
    });
    expect(cold.errors).toBeUndefined();
    expect(cold.data?.recommend.items).toHaveLength(3);
  });
});

describe('ranking with Redis stalled', () => {
  const redis = new PrivateRedis();
  let context: TestContext;
  let app: NestFastifyApplication;
  const pool = [...byCategory(CAT_B).slice(0, 5), ...byCategory(CAT_A).slice(6, 11)];

  beforeAll(async () => {
    // Redis answers that these users have no history; PostgreSQL has it.
    ({ context, app } = await apiOnPrivateRedis(redis, ['u-stall-1', 'u-stall-2', 'u-stall-3'], {
      REDIS_READ_TIMEOUT_MS: '100',
    }));
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
    await context.cleanup();
  });

  it('answers from PostgreSQL within the read timeout while Redis does not answer, then reads Redis again', async () => {
    const rank = (userId: string) => rankCall(app, { userId, candidates: candidates(pool) });
    expect((await rank('u-stall-1')).data?.rank.degraded).toEqual(['cold_user']);

    // Redis holds every command for 4 s, past RANK_TIMEOUT_MS (2 s): it answers nothing.
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.sendCommand(['CLIENT', 'PAUSE', '4000', 'ALL']);
    const pausedAt = Date.now();
    admin.destroy();
    // Users the replica keeps no vector of: each reads its history (from PostgreSQL, as it must).
    for (const userId of ['u-stall-1', 'u-stall-2']) {
      const result = await rank(userId);
      expect(result.errors).toBeUndefined();
      expect(result.data?.rank.degraded).toEqual(['online_state_from_postgres']);
      expect(
        result.data?.rank.items.slice(0, 5).map((item) => categoryOf.get(item.itemId)),
      ).toEqual(Array.from({ length: 5 }, () => CAT_A));
    }
    expect(Date.now() - pausedAt).toBeLessThan(4000);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^online_state_redis_read_timeouts_total\{[^}]*\} [1-9]/m);

    // Once Redis answers and the skipped second is over, a user the replica keeps no vector of is
    // read from Redis again (which holds no history of them: a cold user).
    await sleep(pausedAt + 4000 + 1500 - Date.now());
    expect((await rank('u-stall-3')).data?.rank.degraded).toEqual(['cold_user']);
  });
});

describe('ranking a user who just interacted while Redis stalls', () => {
  const redis = new PrivateRedis();
  let context: TestContext;
  let app: NestFastifyApplication;
  const pool = [...byCategory(CAT_A).slice(6, 11), ...byCategory(CAT_C).slice(10, 15)];
  const userId = 'u-moved';

  beforeAll(async () => {
    // Reads wait out the stalls below: a rebuild started in one stays in flight until it ends.
    ({ context, app } = await apiOnPrivateRedis(redis, [], {
      RANK_STALE_USER_WAIT_MS: '50',
      RANK_STALE_REBUILDS_MAX: '2',
      REDIS_READ_TIMEOUT_MS: '10000',
    }));
  });
  afterAll(async () => {
    await app.close();
    await redis.stop();
    await context.cleanup();
  });

  /** Clicks of `user` on `items`, newest last, into Redis as ingest writes them. */
  const interactAs = (user: string, items: readonly SyntheticItem[], baseMs: number) =>
    app.get(OnlineStateRedisRepository, { strict: false }).apply(
      onlineDelta(
        items.map((item, i) => ({
          eventId: `${user}-${String(baseMs + i)}`,
          type: 'click' as const,
          userId: user,
          itemId: item.itemId,
          ts: new Date(baseMs + i),
        })),
        context.config.online.popularityHalfLifeMs,
      ),
    );
  const interact = (items: readonly SyntheticItem[], baseMs: number) =>
    interactAs(userId, items, baseMs);
  const rebuilds = async () => {
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const count = (result: string) =>
      Number(
        new RegExp(`ranking_user_vector_rebuilds_total\\{result="${result}"[^}]*\\} (\\d+)`).exec(
          metrics,
        )?.[1] ?? 0,
      );
    return { started: count('started'), joined: count('joined'), skipped: count('skipped') };
  };

  it('answers with the vector the replica kept when the new one is late, and with the new one once Redis answers', async () => {
    const rank = async () => {
      const started = Date.now();
      const result = await rankCall(app, { userId, candidates: candidates(pool) });
      expect(result.errors).toBeUndefined();
      const answer = result.data?.rank;
      return {
        top: categoryOf.get(answer?.items[0]?.itemId ?? ''),
        degraded: answer?.degraded,
        ms: Date.now() - started,
      };
    };
    await interact(byCategory(CAT_A).slice(0, 6), Date.now() - 60_000);
    const localHits = async () => {
      const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      const line =
        /ranking_cache_requests_total\{cache="user_vector_local",result="hit"[^}]*\} (\d+)/;
      return Number(line.exec(metrics)?.[1] ?? 0);
    };
    await eventually(async () => (await rank()).top === CAT_A && (await localHits()) > 0, 10_000, {
      what: "a rank answered from the replica's copy of the user's vector",
    });
    // Newer clicks on another category: the streams tell the replica, whose copy goes stale.
    await interact(byCategory(CAT_C).slice(0, 10), Date.now());
    const kept = app.get(LocalUserVectors, { strict: false });
    await eventually(() => kept.interacted(userId), 10_000, {
      what: 'the replica told of the interaction',
    });

    // Redis holds every command for 3 s: the rebuild waits, the answer does not.
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.sendCommand(['CLIENT', 'PAUSE', '3000', 'ALL']);
    const pausedAt = Date.now();
    admin.destroy();
    const late = await rank();
    expect(late).toMatchObject({ top: CAT_A, degraded: ['user_vector_stale'] });
    expect(late.ms).toBeLessThan(1000);

    // Once Redis answers again, the rebuilt vector serves, not degraded.
    await sleep(pausedAt + 3000 - Date.now());
    await eventually(
      async () => {
        const answer = await rank();
        return answer.top === CAT_C && answer.degraded?.length === 0;
      },
      10_000,
      { what: 'the rebuilt vector after the stall' },
    );
  });
  // Rebuilds cost a slow Redis's replica more than they save (they read PostgreSQL): a user's
  // requests share one, and past RANK_STALE_REBUILDS_MAX (2 here) none is started.
  it("shares one rebuild among a user's requests and starts none past the limit while Redis stalls", async () => {
    const users = ['u-many-0', 'u-many-1', 'u-many-2', 'u-many-3'];
    const rank = async (user: string) => {
      const started = Date.now();
      const result = await rankCall(app, { userId: user, candidates: candidates(pool) });
      expect(result.errors).toBeUndefined();
      return {
        top: categoryOf.get(result.data?.rank.items[0]?.itemId ?? ''),
        degraded: result.data?.rank.degraded,
        ms: Date.now() - started,
      };
    };
    const kept = app.get(LocalUserVectors, { strict: false });
    for (const user of users) {
      await interactAs(user, byCategory(CAT_A).slice(0, 6), Date.now() - 60_000);
      await eventually(async () => (await rank(user)).top === CAT_A, 10_000, {
        what: `${user}'s vector kept`,
      });
      await interactAs(user, byCategory(CAT_C).slice(0, 10), Date.now());
    }
    await eventually(() => users.every((user) => kept.interacted(user)), 10_000, {
      what: 'the replica told of the interactions',
    });

    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.sendCommand(['CLIENT', 'PAUSE', '3000', 'ALL']);
    const pausedAt = Date.now();
    admin.destroy();
    const before = await rebuilds();
    const answers = [];
    for (const user of ['u-many-0', 'u-many-0', 'u-many-0', 'u-many-1', 'u-many-2', 'u-many-3']) {
      answers.push(await rank(user));
    }
    const during = await rebuilds();
    expect(Date.now() - pausedAt).toBeLessThan(2500);
    for (const answer of answers) {
      expect(answer).toMatchObject({ top: CAT_A, degraded: ['user_vector_stale'] });
    }
    expect({
      started: during.started - before.started,
      joined: during.joined - before.joined,
      skipped: during.skipped - before.skipped,
    }).toEqual({ started: 2, joined: 2, skipped: 2 });
    // The users skipped are rebuilt on a later request once Redis answers.
    await sleep(pausedAt + 3000 - Date.now());
    for (const user of users) {
      await eventually(
        async () => {
          const answer = await rank(user);
          return answer.top === CAT_C && answer.degraded?.length === 0;
        },
        10_000,
        { what: `${user}'s rebuilt vector after the stall` },
      );
    }
  });
});
