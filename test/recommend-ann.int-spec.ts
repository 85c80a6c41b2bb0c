import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Pool } from 'pg';
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
  let pool: Pool;
  const version = (versionId: string) =>
    fakeCategoryModel(catalog.items, { versionId, dimension: 32 });
  const models = new PinnedModels({ model: version('3') });

  beforeAll(async () => {
    // Every version here has the same vectors: adopting the first one's graph would spare each
    // later version the builds and leases these tests are about (adoption: index-prebuild).
    context = await createTestContext({
      RECOMMEND_ANN_MIN_ITEMS: '100',
      RECOMMEND_ANN_ADOPT: 'false',
    });
    await context.createServiceTopics();
    await insertItems(context.config.postgres.url, catalog.items);
    pool = new Pool({ connectionString: context.config.postgres.url, max: 2 });
    // The pinned versions as the registry would hold them (stored indexes belong to a version).
    await pool.query(
      `INSERT INTO model_versions (id, status, encoder_id, triggered_by) OVERRIDING SYSTEM VALUE
       VALUES (3, 'candidate', 'fake', 'test'), (4, 'candidate', 'fake', 'test'),
              (5, 'candidate', 'fake', 'test')`,
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
    await pool.end();
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

  it('another replica of the same version opens the stored index instead of building, and finds the items changed since it was written', async () => {
    const serving = app.get(ServingService, { strict: false });
    await eventually(() => serving.current().served?.retrieval.indexed, 60_000, {
      what: 'the index build',
      until: (indexed) => indexed === true,
    });
    await eventually(
      async () =>
        (await pool.query('SELECT 1 FROM retrieval_indexes WHERE version_id = 3')).rowCount,
      60_000,
      { what: 'the stored index', until: (stored) => stored === 1 },
    );
    // The other replica's copy of version 3 has moved on since: one item's vector is new (its
    // category changed), and one item is new to the catalog.
    const [moved, ...rest] = catalog.items;
    const other = [...rest, { ...moved, category: catalog.categories[1] }];
    const added = { itemId: 'ann-added', category: CATEGORY };
    await insertItems(context.config.postgres.url, [
      { itemId: added.itemId, title: 'added', category: CATEGORY },
    ]);
    const replica = await startApp(context.config, {
      role: 'api',
      models: new PinnedModels({
        model: fakeCategoryModel([...other, added], { versionId: '3', dimension: 32 }),
      }),
    });
    try {
      const there = replica.get(ServingService, { strict: false });
      await eventually(() => there.current().served?.retrieval.indexed, 60_000, {
        what: 'the stored index opened',
        until: (indexed) => indexed === true,
      });
      const metrics = (await replica.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/retrieval_index_open_seconds_count\{[^}]*\} 1\b/);
      expect(metrics).not.toMatch(/retrieval_index_build_seconds_count\{[^}]*\} [1-9]/);
      const { served } = there.current();
      const { items } = there;
      for (const itemId of [moved.itemId, added.itemId]) {
        const row = items.row(itemId);
        const query = served?.vectors.vector(row).slice() ?? new Float32Array(0);
        const nearest = await served?.retrieval.nearest(query, 3, () => true, items.size);
        expect(Array.from(nearest ?? [], (found) => items.id(found))).toContain(itemId);
      }
      const answer = (await recommendCall(replica, { userId: 'u-ann', first: 5 })).data?.recommend;
      expect(answer?.modelVersion).toBe('3');
      expect(answer?.items).toHaveLength(5);
    } finally {
      await replica.close();
    }
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

  it('replicas that bind a version at once build its index once: the others wait for it and open it', async () => {
    const serving = app.get(ServingService, { strict: false });
    const metric = (body: string, name: string) =>
      Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm').exec(body)?.[1] ?? 0);
    indexBuilder.hold();
    const startedBefore = indexBuilder.started;
    let replica: NestFastifyApplication | undefined;
    try {
      try {
        models.pin(version('5'));
        expect(serving.current().served?.versionId).toBe('5');
        await eventually(() => indexBuilder.started, 30_000, {
          what: 'the first replica’s build',
          until: (started) => started > startedBefore,
        });
        replica = await startApp(context.config, {
          role: 'api',
          models: new PinnedModels({ model: version('5') }),
        });
        // Long enough for a build of 600 items to have ended had the replica started one.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const waiting = replica.get(ServingService, { strict: false });
        expect(waiting.current().served?.retrieval.indexed).toBe(false);
      } finally {
        indexBuilder.release();
      }
      const there = replica.get(ServingService, { strict: false });
      await eventually(() => there.current().served?.retrieval.indexed, 60_000, {
        what: 'the stored index opened by the waiting replica',
        until: (indexed) => indexed === true,
      });
      const metrics = (await replica.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metric(metrics, 'retrieval_index_open_seconds_count')).toBe(1);
      expect(metric(metrics, 'retrieval_index_build_seconds_count')).toBe(0);
    } finally {
      await replica?.close();
    }
  });
});
