import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { hnswIndexBuilder } from '../src/modules/serving/hnsw-index';
import { ServingService } from '../src/modules/serving/serving.service';
import { generateCatalog } from '../src/synthetic';
import { eventMessage, userEvent } from './support/factories';
import { produceRaw } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { PinnedModels, startApp } from './support/app';
import { fakeCategoryModel } from './support/fakes/category-model';
import { HeldIndexBuilder } from './support/fakes/held-index-builder';
import { graphql } from './support/graphql';
import { insertItems, rankCall, recommendCall } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';

const catalog = generateCatalog({
  items: 600,
  seed: 'recommend-ann',
  categories: 6,
  idPrefix: 'ann-',
});
const categoryOf = new Map(catalog.items.map((item) => [item.itemId, item.category]));
const [CATEGORY = ''] = catalog.categories;

describe('recommend through the ANN index (real stack)', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  let indexBuilder: HeldIndexBuilder;
  const version = (versionId: string) =>
    fakeCategoryModel(catalog.items, { versionId, dimension: 32 });
  const models = new PinnedModels({ model: version('3') });

  beforeAll(async () => {
    context = await createTestContext({ RECOMMEND_ANN_MIN_ITEMS: '100' });
    await context.createTopics(Object.values(TOPICS).map((name) => ({ name })));
    await insertItems(
      context.config.postgres.url,
      catalog.items.map((item) => ({
        itemId: item.itemId,
        title: item.title,
        category: item.category,
        price: item.price,
        createdAt: item.createdAt,
      })),
    );
    indexBuilder = new HeldIndexBuilder(hnswIndexBuilder(context.config.retrieval));
    app = await startApp(context.config, {
      role: 'all',
      models,
      indexBuilder: indexBuilder.build,
    });
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it("answers from the served version's index: the clicked category, clicked items left out", async () => {
    const serving = app.get(ServingService, { strict: false });
    await eventually(() => serving.current().served?.retrieval.indexed, 60_000, {
      what: 'the index build',
      until: (indexed) => indexed === true,
    });
    const clicked = catalog.items.filter((item) => item.category === CATEGORY).slice(0, 6);
    await produceRaw(
      context.config,
      TOPICS.events,
      clicked.map((item, i) =>
        eventMessage(
          userEvent({
            userId: 'u-ann',
            itemId: item.itemId,
            type: 'click',
            timestamp: new Date(Date.now() + i).toISOString(),
          }),
        ),
      ),
    );
    const answer = await eventually(
      async () => (await recommendCall(app, { userId: 'u-ann', first: 10 })).data?.recommend,
      30_000,
      { what: 'the ingested clicks', until: (result) => result?.degraded.length === 0 },
    );
    const ids = answer.value?.items.map((item) => item.itemId) ?? [];
    expect(ids).toHaveLength(10);
    expect(ids.map((id) => categoryOf.get(id))).toEqual(ids.map(() => CATEGORY));
    const seen = new Set(clicked.map((item) => item.itemId));
    expect(ids.filter((id) => seen.has(id))).toEqual([]);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/recommend_retrieval_total\{[^}]*path="ann"[^}]*\} [1-9]/);
    expect(metrics.body).toMatch(/retrieval_index_build_seconds_count\{[^}]*\} [1-9]/);
  });

  it("recommends from the previous version until the new one's index is built; rank swaps at once", async () => {
    const serving = app.get(ServingService, { strict: false });
    await eventually(() => serving.current().served?.retrieval.indexed, 60_000, {
      what: 'the first version’s index',
      until: (indexed) => indexed === true,
    });
    const user = { userId: 'u-ann-swap' };
    const candidates = catalog.items.slice(0, 5).map((item) => ({ itemId: item.itemId }));
    indexBuilder.hold();
    try {
      models.pin(version('4'));
      expect(serving.current().served?.versionId).toBe('4');
      const recommended = (await recommendCall(app, { ...user, first: 5 })).data?.recommend;
      const ranked = (await rankCall(app, { ...user, candidates })).data?.rank;
      expect(recommended?.modelVersion).toBe('3');
      expect(recommended?.items).toHaveLength(5);
      expect(ranked?.modelVersion).toBe('4');
      expect(serving.current().served?.retrieval.indexed).toBe(false);
      const replica = await graphql<{ servingModel: { recommendVersionId: string } }>(
        app,
        '{ servingModel { recommendVersionId } }',
      );
      expect(replica.data?.servingModel.recommendVersionId).toBe('3');
    } finally {
      indexBuilder.release();
    }
    await eventually(
      async () => (await recommendCall(app, { ...user, first: 5 })).data?.recommend.modelVersion,
      30_000,
      { what: 'recommend on the new version', until: (versionId) => versionId === '4' },
    );
    expect(serving.current().served?.retrieval.indexed).toBe(true);
    expect(serving.forRetrieval().served?.versionId).toBe('4');
  });
});
