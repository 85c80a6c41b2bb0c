import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplicationContext } from '@nestjs/common';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { RankingService } from '../../src/modules/ranking/ranking.service';
import { ExperimentAssignment } from '../../src/modules/experiments/experiment-assignment.service';
import { ExperimentService } from '../../src/modules/experiments/experiment.service';
import { ARTIFACT_STORE } from '../../src/modules/registry/registry.types';
import type { ArtifactStore } from '../../src/modules/registry/registry.types';
import { MODEL_LOADER } from '../../src/modules/serving/served-model';
import type {
  InterestModel,
  LoadedModel,
  ModelLoader,
} from '../../src/modules/serving/served-model';
import { ServingService } from '../../src/modules/serving/serving.service';
import { PinnedModels, startApp } from '../../test/support/app';
import { ServedSlateRecorder } from '../../src/modules/served-log/served-slate.recorder';
import { LocalUserVectors } from '../../src/modules/ranking/local-user-vectors';
import {
  COMBINER_INPUTS,
  CombinerSpec,
  runnableCombiner,
} from '../../src/modules/training/model/combiner';
import { FLOOR_RANKING, GC_PAUSES, RankVariant, SKIP_RANKING } from './common';
import type { GcPausesReply, ServerReady } from './common';
import { recordGcPauses } from '../lib/gc-pauses';

const MODEL_WAIT_MS = 300_000;

/**
 * The real service (api role) for the ranking benchmark: serves the registry's active version
 * (a trained artifact, loaded by the production loader over the stored item vectors), rebuilds
 * the online state from the seeded PostgreSQL, then listens.
 * Env: DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX, KAFKA_TOPIC_PREFIX, BENCH_SECOND_VERSION (a
 * registered candidate for the experiment variant).
 */
async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  const secondVersion = process.env.BENCH_SECOND_VERSION;
  if (secondVersion === undefined) throw new Error('BENCH_SECOND_VERSION is not set');
  const config = loadConfig({ ...process.env, ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
  const models = new PinnedModels();
  const app = await startApp(config, { models });
  const serving = app.get(ServingService, { strict: false });
  const trained = await ownCopy(app, await activeModel(models));
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
  const floorRanking = leastRanking(serving);
  // The same trained version with hand weights or a learned combiner (the same version id:
  // users' cached interest vectors stay valid across variants). One model served throughout,
  // its combiner switched in place: a model pinned anew would be bound anew (its vectors copied,
  // its ANN index rebuilt on the other core while the variant is measured).
  const benched = switchableCombiner(trained);
  const combiner = runnableCombiner(benchSpec());
  const recorder = app.get(ServedSlateRecorder, { strict: false });
  const localVectors = app.get(LocalUserVectors, { strict: false });
  const localCopyConfigured = localVectors.enabled;
  models.pin(benched.loaded);
  while (serving.current().served?.model !== benched.loaded.model) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const experiment = benchExperiment(app, secondVersion);
  const variant = async ({
    combiner: useCombiner,
    servedLog,
    experiment: running,
    localCopy,
  }: RankVariant) => {
    benched.use(useCombiner ? combiner : undefined);
    await (running ? experiment.start() : experiment.stop());
    // An own property hides the recorder's depth getter; deleting it brings the getter back.
    if (servedLog) Reflect.deleteProperty(recorder, 'depth');
    else Object.defineProperty(recorder, 'depth', { value: 0, configurable: true });
    // Off, the copy still drops what the interest changes say, so it is current when back on.
    Object.defineProperty(localVectors, 'enabled', {
      value: localCopy && localCopyConfigured,
      configurable: true,
    });
  };
  const gcPauses = recordGcPauses();
  process.on('message', (message: unknown) => {
    if (message === GC_PAUSES) {
      process.send?.({ gcPauses: gcPauses.take() } satisfies GcPausesReply);
      return;
    }
    ranking.rank =
      message === SKIP_RANKING ? skipRanking : message === FLOOR_RANKING ? floorRanking : rank;
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
 * The least work any ranking by the served model does: each candidate's item-table row, its model
 * score (the same SIMD kernel over the same rows) and the sort, answered as `rank` answers. No
 * validation, user lookup (one fixed user vector), popularity, features, served-slate log or
 * metrics: what a ranking path of one call over packed columns could at best come down to.
 */
function leastRanking(serving: ServingService): RankingService['rank'] {
  let user: Float32Array | undefined;
  return (_userId, candidates, _profile, { requestId }) => {
    const { items, served } = serving.current();
    if (served === undefined) throw new Error('the floor ranking needs a served model');
    const { vectors, model } = served;
    user ??= Float32Array.from(vectors.vector(0));
    const count = candidates.length;
    const rows = new Int32Array(count);
    items.rowsOf(count, (i) => candidates[i].itemId, rows);
    if (rows.some((row) => row < 0 || !vectors.has(row))) {
      throw new Error('the floor ranking needs every candidate in the catalog');
    }
    const scores = new Float64Array(count);
    vectors.scoreRows(rows, count, user, model.scale, scores);
    const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
    return Promise.resolve({
      items: order.map((index, i) => ({
        itemId: candidates[index].itemId,
        rank: i + 1,
        score: scores[index],
        parts: [],
      })),
      modelVersion: served.versionId,
      experiment: null,
      arm: null,
      requestId,
      degraded: [],
    });
  };
}

/** The registry's active version once the model-swap service has loaded it. */
async function activeModel(models: PinnedModels): Promise<LoadedModel> {
  const started = Date.now();
  for (;;) {
    const loaded = models.current();
    if (loaded !== undefined) return loaded;
    if (Date.now() - started > MODEL_WAIT_MS) throw new Error('no active model version loaded');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The served version loaded again: the copy serving loaded gave its item vectors up once they
 * were in its rows, and the variants pin a model of their own (bound anew, its vectors copied).
 */
async function ownCopy(app: INestApplicationContext, served: LoadedModel): Promise<LoadedModel> {
  const { versionId } = served.model;
  const artifacts = app.get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false });
  const loader = app.get<symbol, ModelLoader>(MODEL_LOADER, { strict: false });
  return loader.load(await artifacts.get(versionId), { id: versionId });
}

/** `loaded` with a combiner of the bench's choosing in place of its own (the rest shared). */
function switchableCombiner(loaded: LoadedModel) {
  const model = Object.create(loaded.model, {
    combiner: { value: undefined, enumerable: true, writable: true },
  }) as { -readonly [K in keyof InterestModel]: InterestModel[K] };
  return {
    loaded: { ...loaded, model },
    use(combiner: InterestModel['combiner']) {
      model.combiner = combiner;
    },
  };
}

/**
 * A 50/50 experiment of the served version against `versionId` (a registered candidate);
 * `start` and `stop` return once this replica serves accordingly: the assignment sees it and the
 * second version is loaded.
 */
function benchExperiment(app: INestApplicationContext, versionId: string) {
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
      const startedAt = performance.now();
      running = (await experiments.start(created.id, 'bench')).id;
      await until(
        () =>
          assignment.assign('bench-probe') !== undefined &&
          serving.version(versionId) !== undefined,
      );
      // Every start loads the second version anew, and its ANN index builds on a thread of
      // its own for about as long as the served one's did: a one-off of the start, measured
      // here and waited for, so that the windows measure an experiment running.
      await serving.version(versionId)?.served?.retrieval.maintain();
      const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
      process.stderr.write(
        `[bench] experiment started: the second version loaded and its ANN index built in ${seconds} s\n`,
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
