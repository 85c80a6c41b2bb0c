import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { RankingService } from '../../src/modules/ranking/ranking.service';
import type { INestApplicationContext } from '@nestjs/common';
import { ExperimentAssignment } from '../../src/modules/experiments/experiment-assignment.service';
import { ExperimentService } from '../../src/modules/experiments/experiment.service';
import { RegistryRepository } from '../../src/modules/registry/registry.repository';
import { ARTIFACT_STORE, ArtifactStore } from '../../src/modules/registry/registry.types';
import type { LoadedModel, ModelLoader } from '../../src/modules/serving/served-model';
import { ServingService } from '../../src/modules/serving/serving.service';
import { generateCatalog } from '../../src/synthetic';
import { PinnedModels, startApp } from '../../test/support/app';
import { fakeCategoryModel } from '../../test/support/fakes/category-model';
import { ServedSlateRecorder } from '../../src/modules/served-log/served-slate.recorder';
import {
  COMBINER_INPUTS,
  CombinerSpec,
  runnableCombiner,
} from '../../src/modules/training/model/combiner';
import { RankVariant, SKIP_RANKING } from './common';
import type { ServerReady } from './common';

/**
 * The real service (api role) for the ranking benchmark: serves the in-memory category model
 * over the seeded catalog, rebuilds the online state from the seeded PostgreSQL, then listens.
 * Env: DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX, BENCH_ITEMS, BENCH_SEED, BENCH_DIMENSION.
 */
async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  const config = loadConfig({ ...process.env, ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
  const catalog = generateCatalog({
    items: Number(process.env.BENCH_ITEMS),
    seed: process.env.BENCH_SEED ?? 'bench',
  });
  const model = fakeCategoryModel(catalog.items, {
    versionId: 'bench',
    dimension: Number(process.env.BENCH_DIMENSION ?? 64),
  });
  const models = new PinnedModels({ model });
  // The experiment's second version loads through the registry like any version: its artifact
  // row is a placeholder, this loader turns it into the same category model with other noise.
  const loader: ModelLoader = {
    load: (_bytes, { id }) =>
      Promise.resolve(
        fakeCategoryModel(catalog.items, {
          versionId: id,
          dimension: model.model.dimension,
          noise: 0.4,
        }),
      ),
  };
  const app = await startApp(config, { models, loader });
  await app.get(OnlineStateService, { strict: false }).rebuild(() => undefined);
  // The bench's reference for what the ranking itself costs: `rank` answered through the same
  // HTTP + GraphQL path with the ranking skipped (candidates in their order, score 0).
  const ranking = app.get(RankingService, { strict: false });
  const rank = ranking.rank.bind(ranking);
  const skipRanking: RankingService['rank'] = (_userId, candidates, _profile, { requestId }) =>
    Promise.resolve({
      items: candidates.map((candidate, i) => ({
        itemId: candidate.itemId,
        rank: i + 1,
        score: 0,
        parts: [],
      })),
      modelVersion: null,
      experiment: null,
      arm: null,
      requestId,
      degraded: [],
    });
  const withCombiner = {
    ...model,
    // The same version id: users' cached interest vectors stay valid across variants.
    model: { ...model.model, combiner: runnableCombiner(benchSpec()) },
  };
  const recorder = app.get(ServedSlateRecorder, { strict: false });
  const serving = app.get(ServingService, { strict: false });
  const serve = async (loaded: LoadedModel) => {
    models.pin(loaded);
    while (serving.current().served?.model !== loaded.model) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const experiment = await benchExperiment(app);
  const variant = async ({ combiner, servedLog, experiment: running }: RankVariant) => {
    await serve(combiner ? withCombiner : model);
    await (running ? experiment.start() : experiment.stop());
    // An own property hides the recorder's depth getter; deleting it brings the getter back.
    if (servedLog) Reflect.deleteProperty(recorder, 'depth');
    else Object.defineProperty(recorder, 'depth', { value: 0, configurable: true });
  };
  process.on('message', (message: unknown) => {
    ranking.rank = message === SKIP_RANKING ? skipRanking : rank;
    const switched =
      typeof message === 'object' ? variant(message as RankVariant) : Promise.resolve();
    void switched.then(() => process.send?.(message));
  });
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const ready: ServerReady = { port };
  process.send(ready);
}

/**
 * A 50/50 experiment of the served version against a second one (registered with a placeholder
 * artifact the bench loader understands); `start` and `stop` return once this replica serves
 * accordingly: the assignment sees it and the second version is loaded.
 */
async function benchExperiment(app: INestApplicationContext) {
  const registry = app.get(RegistryRepository, { strict: false });
  const versionId = await registry.insertTrainingVersion({
    parentId: null,
    encoderId: 'bench',
    triggeredBy: 'bench',
  });
  await app
    .get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false })
    .put(versionId, Buffer.from('bench placeholder'));
  await registry.setVersionStatus(versionId, 'candidate', null);
  const experiments = app.get(ExperimentService, { strict: false });
  const assignment = app.get(ExperimentAssignment, { strict: false });
  const serving = app.get(ServingService, { strict: false });
  const until = async (done: () => boolean) => {
    while (!done()) await new Promise((resolve) => setTimeout(resolve, 50));
  };
  let started = 0;
  let running: string | undefined;
  return {
    async start() {
      if (running !== undefined) return;
      // A stopped experiment does not run again: each start is a new one.
      const created = await experiments.create(
        {
          name: `bench-${versionId}-${String(++started)}`,
          arms: [
            { name: 'control', modelVersion: null, profile: null, share: 50 },
            { name: 'second', modelVersion: versionId, profile: null, share: 50 },
          ],
        },
        'bench',
      );
      running = (await experiments.start(created.id, 'bench')).id;
      await until(
        () =>
          assignment.assign('bench-probe') !== undefined &&
          serving.version(versionId) !== undefined,
      );
    },
    async stop() {
      if (running === undefined) return;
      await experiments.stop(running, 'bench');
      running = undefined;
      await until(() => assignment.assign('bench-probe') === undefined);
    },
  };
}

/** A combiner of the shape training fits: 8 knots per input over its usual range. */
function benchSpec(): CombinerSpec {
  const shape = (lo: number, hi: number, slope: number) => {
    const knots = Array.from({ length: 8 }, (_, k) => lo + ((hi - lo) * k) / 7);
    return { knots, values: knots.map((x) => slope * Math.tanh(x)) };
  };
  const ranges: Record<(typeof COMBINER_INPUTS)[number], [number, number, number]> = {
    model: [-6, 12, 1],
    popularity: [0, 1, 0.5],
    ctr: [0, 0.2, 3],
    recency: [0, 1, 0.3],
    price: [0, 1.5, -0.4],
  };
  return {
    kind: 'additive',
    shapes: {
      model: shape(...ranges.model),
      popularity: shape(...ranges.popularity),
      ctr: shape(...ranges.ctr),
      recency: shape(...ranges.recency),
      price: shape(...ranges.price),
    },
    missingModel: 0,
    positionBias: [],
    fit: {},
  };
}

void main().catch((error: unknown) => {
  process.stderr.write(`ranking server failed: ${String(error)}\n`);
  process.exit(1);
});
