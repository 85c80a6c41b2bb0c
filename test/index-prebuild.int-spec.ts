import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Pool } from 'pg';
import { hnswIndexBuilder } from '../src/modules/serving/hnsw-index';
import type { LoadedModel, ModelLoader } from '../src/modules/serving/served-model';
import { ServingService } from '../src/modules/serving/serving.service';
import { generateCatalog } from '../src/synthetic';
import { startApp } from './support/app';
import { fakeCategoryModel } from './support/fakes/category-model';
import { HeldIndexBuilder } from './support/fakes/held-index-builder';
import { FakeTrainer } from './support/fakes/model-lifecycle';
import { graphql } from './support/graphql';
import { eventually } from './support/poll';
import { insertItems, insertItemVectors, recommendCall } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

const catalog = generateCatalog({
  items: 600,
  seed: 'index-prebuild',
  categories: 6,
  idPrefix: 'pre-',
});

/**
 * Every version as a category model over the whole catalog, the same vectors in every process;
 * each version's items a little further from their category than the last's (as a version
 * fine-tuned from another moves them).
 */
class CatalogLoader implements ModelLoader {
  readonly loaded: string[] = [];

  load(_artifact: Buffer, version: { id: string }): Promise<LoadedModel> {
    this.loaded.push(version.id);
    const noise = 0.3 + 0.02 * Number(version.id);
    return Promise.resolve(
      fakeCategoryModel(catalog.items, { versionId: version.id, dimension: 32, noise }),
    );
  }
}

const metric = (body: string, name: string) =>
  Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm').exec(body)?.[1] ?? 0);

describe('a registered version’s index built ahead by the train role (real stack)', () => {
  let context: TestContext;
  let pool: Pool;
  let train: NestFastifyApplication;
  let api: NestFastifyApplication;
  const trainer = new FakeTrainer();
  const trainLoader = new CatalogLoader();
  let prebuilder: HeldIndexBuilder;

  beforeAll(async () => {
    context = await createTestContext({ RECOMMEND_ANN_MIN_ITEMS: '100' });
    await context.createServiceTopics();
    await insertItems(context.config.postgres.url, catalog.items);
    // Text vectors under the trainer's encoder: what decides whether the catalog is large enough.
    const dimension = 4;
    await insertItemVectors(context.config.postgres.url, trainer.encoderId, {
      ids: catalog.items.map((item) => item.itemId),
      dimension,
      matrix: Float32Array.from({ length: catalog.items.length * dimension }, (_, i) => i % 7),
    });
    pool = new Pool({ connectionString: context.config.postgres.url, max: 2 });
    prebuilder = new HeldIndexBuilder(hnswIndexBuilder(context.config.retrieval));
    train = await startApp(context.config, {
      role: 'train',
      trainer,
      loader: trainLoader,
      indexBuilder: prebuilder.build,
    });
    api = await startApp(context.config, { role: 'api', loader: new CatalogLoader() });
  });
  const indexState = async (id: string) =>
    (
      await graphql<{ modelVersion: { retrievalIndex: unknown } }>(
        api,
        'query($id: ID!) { modelVersion(id: $id) { retrievalIndex { stored { points bytes dimension m efConstruction storedAt recall adoptedFrom } buildingBy } } }',
        { id },
      )
    ).data?.modelVersion.retrievalIndex;

  /** Queues a FULL run through the api and waits for it to succeed. */
  const trainToSuccess = async () => {
    const queued = await graphql<{ trainModel: { id: string } }>(
      api,
      'mutation { trainModel(mode: FULL) { id } }',
    );
    expect(queued.errors).toBeUndefined();
    const run = await eventually(
      async () =>
        (
          await graphql<{ trainingRun: { status: string; outcome: string; versionId: string } }>(
            api,
            'query($id: ID!) { trainingRun(id: $id) { status outcome versionId } }',
            { id: queued.data?.trainModel.id },
          )
        ).data?.trainingRun,
      20_000,
      { what: 'the training run', until: (found) => found?.status === 'SUCCEEDED' },
    );
    return run.value;
  };

  afterAll(async () => {
    await api.close();
    await train.close();
    await pool.end();
    await context.cleanup();
  });

  it('builds and stores it at registration; the replica serving it waits for that build and opens it', async () => {
    prebuilder.hold();
    let versionId = '';
    try {
      const run = await trainToSuccess();
      expect(run?.outcome).toBe('promoted');
      versionId = run?.versionId ?? '';
      const serving = api.get(ServingService, { strict: false });
      await eventually(() => serving.current().served?.versionId, 10_000, {
        what: 'the replica serving the new version',
        until: (served) => served === versionId,
      });
      // The replica may serve the version before the train role's build starts (it first looks
      // for another version's graph to adopt).
      await eventually(() => prebuilder.started, 10_000, {
        what: 'the train role’s build',
        until: (started) => started === 1,
      });
      expect(trainLoader.loaded).toEqual([versionId]);
      // The train role holds the build lease; a build of 600 items would have ended by now.
      const lease = await pool.query<{ builder: string }>(
        'SELECT builder FROM retrieval_index_builds WHERE version_id = $1',
        [versionId],
      );
      expect(lease.rowCount).toBe(1);
      expect(await indexState(versionId)).toEqual({
        stored: null,
        buildingBy: lease.rows[0].builder,
      });
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(serving.current().served?.retrieval.indexed).toBe(false);
    } finally {
      prebuilder.release();
    }
    const serving = api.get(ServingService, { strict: false });
    await eventually(() => serving.current().served?.retrieval.indexed, 30_000, {
      what: 'the replica serving through the index built ahead',
      until: (indexed) => indexed === true,
    });
    const stored = await pool.query<{ points: number }>(
      'SELECT points FROM retrieval_indexes WHERE version_id = $1',
      [versionId],
    );
    expect(stored.rows).toEqual([{ points: catalog.items.length }]);
    const apiMetrics = (await api.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(apiMetrics, 'retrieval_index_open_seconds_count')).toBe(1);
    expect(metric(apiMetrics, 'retrieval_index_build_seconds_count')).toBe(0);
    const trainMetrics = (await train.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(trainMetrics, 'retrieval_index_prebuild_seconds_count')).toBe(1);
    const leaseLeft = await pool.query('SELECT 1 FROM retrieval_index_builds');
    expect(leaseLeft.rowCount).toBe(0);
    expect(await indexState(versionId)).toMatchObject({
      stored: { points: catalog.items.length, dimension: 32, recall: 1, adoptedFrom: null },
      buildingBy: null,
    });
    const answer = (await recommendCall(api, { userId: 'u-prebuild', first: 5 })).data?.recommend;
    expect(answer?.modelVersion).toBe(versionId);
    expect(answer?.items).toHaveLength(5);
  });

  it('indexes the next version by adopting the graph stored for the one before: no build, and the stored index says so', async () => {
    const first = await pool.query<{ version_id: string }>(
      'SELECT version_id::text FROM retrieval_indexes',
    );
    expect(first.rows).toHaveLength(1);
    const versionId = (await trainToSuccess())?.versionId ?? '';
    // The lease is released after the stored index commits: wait for both, not the first alone.
    const state = await eventually(() => indexState(versionId), 30_000, {
      what: 'the index adopted ahead and its build lease released',
      until: (found) => {
        const ahead = found as { stored: unknown; buildingBy: unknown } | undefined;
        return ahead?.stored != null && ahead.buildingBy === null;
      },
    });
    expect(state.value).toMatchObject({
      stored: { points: catalog.items.length, adoptedFrom: first.rows[0].version_id },
      buildingBy: null,
    });
    expect(prebuilder.started).toBe(1);
    // Observed once the stored index's lease is released, on the train role's side.
    await eventually(
      async () =>
        metric(
          (await train.inject({ method: 'GET', url: '/metrics' })).body,
          'retrieval_index_prebuild_seconds_count',
        ),
      5_000,
      { what: 'the second build ahead measured', until: (count) => count === 2 },
    );
  });
});
