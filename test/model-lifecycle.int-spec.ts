import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Client } from 'pg';
import { MODEL_TRAINER } from '../src/modules/training/model-trainer';
import { TrainingRunService } from '../src/modules/training/training-run.service';
import { startApp } from './support/app';
import { ModelSwapService } from '../src/modules/serving/model-swap.service';
import { FakeLoader, FakeTrainer, VALIDATION } from './support/fakes/model-lifecycle';
import { graphql, GraphqlResponse } from './support/graphql';
import { eventually } from './support/poll';
import { childrenOf } from './support/processes';
import { POSTGRES_MODES } from './support/stack';
import { createTestContext, TestContext } from './support/test-context';

interface Version {
  id: string;
  status: string;
  statusReason: string | null;
  parentId: string | null;
  auc: number | null;
  artifactSha256: string | null;
}
interface Run {
  id: string;
  status: string;
  outcome: string | null;
  error: string | null;
  progress: number;
  versionId: string | null;
  metrics: { name: string; value: number | null }[];
}

const VERSION_FIELDS = 'id status statusReason parentId auc artifactSha256';
const RUN_FIELDS = 'id status outcome error progress versionId metrics { name value }';

jest.setTimeout(30_000);

function required<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new Error('expected a value');
  return value;
}

/**
 * Two api replicas (separate Nest apps, pools and LISTEN connections) on one database, and one
 * train-role process that runs what they queue; once with PostgreSQL direct, once with the queries
 * through PgBouncer in transaction mode (LISTEN, the training lock and NOTIFY on the direct URL).
 */
describe.each(POSTGRES_MODES)('model lifecycle across two api replicas ($mode)', ({ env }) => {
  let context: TestContext;
  let pg: Client;
  const trainer = new FakeTrainer();
  const loaders = [new FakeLoader(), new FakeLoader()] as const;
  let replicas: [NestFastifyApplication, NestFastifyApplication];
  let trainerApp: NestFastifyApplication;

  const served = async (app: NestFastifyApplication) => {
    const response = await graphql<{ servingModel: { versionId: string | null } }>(
      app,
      '{ servingModel { versionId } }',
    );
    return response.data?.servingModel.versionId ?? null;
  };

  /** Milliseconds until both replicas serve `id`; fails after 5 s. */
  const bothServe = async (id: string) =>
    (
      await eventually(async () => {
        expect(await Promise.all(replicas.map(served))).toEqual([id, id]);
      }, 5000)
    ).elapsedMs;

  const train = async (mode: 'FULL' | 'INCREMENTAL', app = replicas[0]): Promise<Run> => {
    const started = await graphql<{ trainModel: Run }>(
      app,
      `mutation($mode: TrainingMode!) { trainModel(mode: $mode) { ${RUN_FIELDS} } }`,
      { mode },
    );
    expect(started.errors).toBeUndefined();
    const id = started.data?.trainModel.id ?? '';
    let run: Run | undefined;
    await eventually(async () => {
      const response = await graphql<{ trainingRun: Run }>(
        app,
        `query($id: ID!) { trainingRun(id: $id) { ${RUN_FIELDS} } }`,
        { id },
      );
      run = response.data?.trainingRun;
      expect(['SUCCEEDED', 'FAILED']).toContain(run?.status);
    }, 10_000);
    return required(run);
  };

  const version = async (id: string): Promise<Version> => {
    const response = await graphql<{ modelVersion: Version }>(
      replicas[0],
      `query($id: ID!) { modelVersion(id: $id) { ${VERSION_FIELDS} } }`,
      { id },
    );
    return required(response.data?.modelVersion);
  };

  const activate = (id: string) =>
    graphql<{ activateModelVersion: Version }>(
      replicas[0],
      `mutation($id: ID!) { activateModelVersion(id: $id) { ${VERSION_FIELDS} } }`,
      { id },
    );

  const activeId = async () =>
    required(
      (await graphql<{ activeModel: { id: string } }>(replicas[0], '{ activeModel { id } }')).data
        ?.activeModel.id,
    );

  const rollback = (app = replicas[1]) =>
    graphql<{ rollbackModel: Version }>(app, `mutation { rollbackModel { ${VERSION_FIELDS} } }`);

  beforeAll(async () => {
    context = await createTestContext({
      ...env,
      ROLE: 'api',
      // The load-failure test logs errors on purpose.
      LOG_LEVEL: 'fatal',
      // Long enough that only NOTIFY can explain a swap within the test's 5 s.
      MODEL_POLL_INTERVAL_MS: '600000',
      TRAIN_PROMOTION_TOLERANCE: '0.01',
    });
    await context.createServiceTopics();
    pg = new Client({ connectionString: context.config.postgres.url });
    await pg.connect();
    replicas = await Promise.all([
      startApp(context.config, { loader: loaders[0] }),
      startApp(context.config, { loader: loaders[1] }),
    ]);
    trainerApp = await startApp(context.config, { role: 'train', trainer });
  });

  afterAll(async () => {
    await trainerApp.close();
    await Promise.all(replicas.map((app) => app.close()));
    await pg.end();
    await context.cleanup();
  });

  let first: string;
  let second: string;

  it('promotes the first trained version and both replicas load it', async () => {
    expect(await Promise.all(replicas.map(served))).toEqual([null, null]);
    const run = await train('FULL');
    expect(run).toMatchObject({ status: 'SUCCEEDED', outcome: 'promoted', progress: 1 });
    expect(run.metrics).toContainEqual({ name: 'auc', value: 0.7 });
    first = required(run.versionId);
    expect(await version(first)).toMatchObject({ status: 'ACTIVE', parentId: null, auc: 0.7 });
    await bothServe(first);
  });

  it('keeps a worse model as a candidate, with the reason, and serving is unchanged', async () => {
    trainer.next(0.55);
    const run = await train('INCREMENTAL');
    expect(run).toMatchObject({ status: 'SUCCEEDED', outcome: 'candidate' });
    second = required(run.versionId);
    const candidate = await version(second);
    expect(candidate.status).toBe('CANDIDATE');
    expect(candidate.parentId).toBe(first);
    expect(candidate.statusReason).toContain('worse by 0.1500');
    // Warm-started from the active version's artifact; the active one was re-scored on the
    // candidate's validation window.
    expect(trainer.requests.at(-1)).toMatchObject({ mode: 'INCREMENTAL', parent: { id: first } });
    expect(trainer.evaluated.at(-1)).toEqual({ quality: 0.7, window: VALIDATION });
    expect((await version(first)).status).toBe('ACTIVE');
    expect(await Promise.all(replicas.map(served))).toEqual([first, first]);
  });

  it('activateModelVersion: both replicas serve the new version within 5 s', async () => {
    const response = await activate(second);
    expect(response.data?.activateModelVersion).toMatchObject({ id: second, status: 'ACTIVE' });
    const ms = await bothServe(second);
    expect(ms).toBeLessThan(5000);
    expect((await version(first)).status).toBe('RETIRED');
    const active = await graphql<{ activeModel: { id: string } }>(
      replicas[1],
      '{ activeModel { id } }',
    );
    expect(active.data?.activeModel.id).toBe(second);
  });

  it('rollbackModel: both replicas serve the previous version again', async () => {
    const response = await rollback();
    expect(response.data?.rollbackModel).toMatchObject({ id: first, status: 'ACTIVE' });
    await bothServe(first);
    const rolledBack = await version(second);
    expect(rolledBack.status).toBe('RETIRED');
    expect(rolledBack.statusReason).toContain('rolled back');
    // The first version had no predecessor: nothing further back.
    const again = await rollback();
    expect(again.errors?.[0]?.extensions.code).toBe('CONFLICT');
    expect(await Promise.all(replicas.map(served))).toEqual([first, first]);
  });

  it('marks diverged or NaN training failed and changes nothing', async () => {
    trainer.next(0.9, { diverged: 'loss became NaN at epoch 2' }).next(Number.NaN);
    const diverged = await train('INCREMENTAL');
    expect(diverged).toMatchObject({ status: 'FAILED', outcome: 'failed' });
    expect(diverged.error).toContain('loss became NaN');
    const nan = await train('INCREMENTAL');
    expect(nan.error).toBe('metric auc is NaN');
    for (const run of [diverged, nan]) {
      expect(await version(required(run.versionId))).toMatchObject({
        status: 'FAILED',
        artifactSha256: null,
      });
    }
    expect((await version(first)).status).toBe('ACTIVE');
    const refused = await activate(required(nan.versionId));
    expect(refused.errors?.[0]).toMatchObject({
      message: `model version ${required(nan.versionId)} is failed and cannot be activated`,
      extensions: { code: 'CONFLICT' },
    });
  });

  it('answers unknown or malformed ids and corrupt artifacts with coded errors', async () => {
    expect((await activate('999999')).errors?.[0]?.extensions.code).toBe('NOT_FOUND');
    expect((await activate('abc')).errors?.[0]?.extensions.code).toBe('BAD_USER_INPUT');
    const run = await graphql(replicas[0], '{ trainingRun(id: "424242") { id } }');
    expect(run.errors?.[0]?.extensions.code).toBe('NOT_FOUND');

    // A stored artifact whose bytes no longer match their digest.
    const inserted = await pg.query<{ id: string }>(
      `INSERT INTO model_versions (status, encoder_id, triggered_by)
       VALUES ('candidate', 'fake-encoder:fp32', 'test') RETURNING id`,
    );
    const id = required(inserted.rows.at(0)).id;
    await pg.query(
      `INSERT INTO model_artifacts (version_id, sha256, size, bytes) VALUES ($1, $2, 3, '\\x010203')`,
      [id, 'a'.repeat(64)],
    );
    const corrupt = await activate(id);
    expect(corrupt.errors?.[0]?.extensions.code).toBe('CONFLICT');
    expect(corrupt.errors?.[0]?.message).toContain('fails its sha256 check');
    // Artifacts are immutable.
    await expect(
      pg.query('UPDATE model_artifacts SET size = 4 WHERE version_id = $1', [id]),
    ).rejects.toThrow('immutable');
    // A version without an artifact.
    const bare = await pg.query<{ id: string }>(
      `INSERT INTO model_versions (status, encoder_id, triggered_by)
       VALUES ('retired', 'fake-encoder:fp32', 'test') RETURNING id`,
    );
    const missing = await activate(required(bare.rows.at(0)).id);
    expect(missing.errors?.[0]?.extensions.code).toBe('CONFLICT');
    expect(missing.errors?.[0]?.message).toContain('has no artifact');
  });

  it('concurrent trainModel calls: one run, the other gets CONFLICT', async () => {
    trainer.hold();
    const mutation = `mutation { trainModel(mode: FULL) { ${RUN_FIELDS} } }`;
    let responses: GraphqlResponse<{ trainModel: Run }>[];
    try {
      responses = await Promise.all([
        graphql<{ trainModel: Run }>(replicas[0], mutation),
        graphql<{ trainModel: Run }>(replicas[1], mutation),
        graphql<{ trainModel: Run }>(replicas[0], mutation),
      ]);
    } finally {
      trainer.next(0.71);
      trainer.open();
    }
    const started = responses.filter((response) => response.data?.trainModel);
    const refused = responses.filter((response) => response.errors);
    expect(started).toHaveLength(1);
    expect(refused).toHaveLength(2);
    for (const response of refused) {
      expect(response.errors?.[0]).toMatchObject({
        message: 'a training run is already in progress',
        extensions: { code: 'CONFLICT', runningRunId: started[0]?.data?.trainModel.id },
      });
    }
    const id = required(started[0]?.data?.trainModel.id);
    expect(started[0]?.data?.trainModel.status).toBe('QUEUED');
    await eventually(async () => {
      const response = await graphql<{ trainingRun: Run }>(
        replicas[1],
        `{ trainingRun(id: "${id}") { status outcome } }`,
      );
      expect(response.data?.trainingRun).toEqual({ status: 'SUCCEEDED', outcome: 'promoted' });
    }, 10_000);
  });

  it('a replica that cannot load a version keeps serving the old one and reports it in health', async () => {
    const active = await activeId();
    await bothServe(active);
    // The gate promotes it (its metrics are fine), but no replica can load it.
    trainer.next(0.99, { unloadable: true });
    const run = await train('INCREMENTAL');
    expect(run.outcome).toBe('promoted');
    const bad = required(run.versionId);
    await eventually(async () => {
      const response = await graphql<{
        servingModel: { versionId: string; failedVersionId: string; loadError: string };
      }>(replicas[1], '{ servingModel { versionId failedVersionId loadError } }');
      expect(response.data?.servingModel).toEqual({
        versionId: active,
        failedVersionId: bad,
        loadError: `fake model of version ${bad} is unloadable`,
      });
    }, 5000);
    expect(await served(replicas[0])).toBe(active);
    const health = await replicas[1].inject({ method: 'GET', url: '/health/ready' });
    // Reported, but the replica stays ready: it still serves a good model.
    expect(health.statusCode).toBe(200);
    const model = health
      .json<{ checks: { name: string; ok: boolean; critical: boolean; error?: string }[] }>()
      .checks.find((check) => check.name === 'model');
    expect(model).toMatchObject({ ok: false, critical: false });
    expect(model?.error).toContain(`serving version ${active}; loading version ${bad} failed`);

    // Rolling back clears it: the replica serves the active version again.
    await rollback(replicas[0]);
    await bothServe(active);
    // Both already served `active`: wait for the replica to take in the rollback itself.
    await eventually(async () => {
      const after = await graphql<{ servingModel: { failedVersionId: string | null } }>(
        replicas[1],
        '{ servingModel { failedVersionId } }',
      );
      expect(after.data?.servingModel.failedVersionId).toBeNull();
    }, 5000);
  });

  it('a replica started later loads the active version at boot', async () => {
    const active = await activeId();
    const late = await startApp(context.config, { loader: new FakeLoader() });
    try {
      expect(await served(late)).toBe(active);
    } finally {
      await late.close();
    }
  });

  // Provided under two tokens, the service was once started and stopped twice: two polls, two
  // LISTEN handlers, each activation refreshed twice.
  it('starts and stops its model swap once', async () => {
    const started = jest.spyOn(ModelSwapService.prototype, 'onApplicationBootstrap');
    const stopped = jest.spyOn(ModelSwapService.prototype, 'beforeApplicationShutdown');
    try {
      const replica = await startApp(context.config, { loader: new FakeLoader() });
      const starts = started.mock.calls.length;
      await replica.close();
      expect(starts).toBe(1);
      expect(stopped).toHaveBeenCalledTimes(1);
    } finally {
      started.mockRestore();
      stopped.mockRestore();
    }
  });

  it('catches up on an activation announced while its LISTEN connection was down', async () => {
    const dropped = await pg.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'recsys-listener'`,
    );
    // Each replica's activation listener, and the trainer's queue listener.
    expect(dropped.rowCount).toBe(3);
    // Announced before the listeners reconnect (backoff 200 ms): the NOTIFY itself is lost, the
    // re-read on reconnect finds the new version (the poll is 10 minutes away).
    const target = second === (await activeId()) ? first : second;
    expect((await activate(target)).errors).toBeUndefined();
    await bothServe(target);
  });

  it('lists versions newest first and validates first', async () => {
    const list = await graphql<{ modelVersions: { id: string }[] }>(
      replicas[0],
      '{ modelVersions(first: 3) { id } }',
    );
    const ids = required(list.data).modelVersions.map((entry) => Number(entry.id));
    expect(ids).toHaveLength(3);
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    const invalid = await graphql(replicas[0], '{ modelVersions(first: 0) { id } }');
    expect(invalid.errors?.[0]?.extensions.code).toBe('BAD_USER_INPUT');
  });
});

describe('scheduled training (train role)', () => {
  let context: TestContext;
  let pg: Client;
  let app: NestFastifyApplication;
  const trainer = new FakeTrainer();
  let added = 0;

  const addEvents = async (count: number, type = 'click') => {
    await pg.query(
      `INSERT INTO events (event_id, type, user_id, item_id, ts)
       SELECT 'e' || g, $3, 'u', 'i', now() FROM generate_series($1::int, $2::int) g`,
      [added + 1, added + count, type],
    );
    added += count;
  };

  beforeAll(async () => {
    context = await createTestContext({
      ROLE: 'train',
      LOG_LEVEL: 'fatal',
      TRAIN_CRON: 'off',
      TRAIN_MIN_NEW_EVENTS: '50',
    });
    await context.createServiceTopics();
    pg = new Client({ connectionString: context.config.postgres.url });
    await pg.connect();
    app = await startApp(context.config, { trainer });
  });

  afterAll(async () => {
    await app.close();
    await pg.end();
    await context.cleanup();
  });

  it('trains only once TRAIN_MIN_NEW_EVENTS arrived since the active version, a click among them', async () => {
    const training = app.get(TrainingRunService);
    expect(await training.runIfDue('test')).toEqual({
      kind: 'skipped',
      reason: '0 new events since the beginning; 50 needed',
    });

    await addEvents(55, 'impression');
    expect(await training.runIfDue('test')).toEqual({
      kind: 'skipped',
      reason: 'no click among the new events since the beginning',
    });
    expect(trainer.requests).toHaveLength(0);

    await addEvents(5);
    const first = await training.runIfDue('test');
    expect(first).toMatchObject({ kind: 'ran', run: { status: 'succeeded', outcome: 'promoted' } });
    // Nothing to warm-start from yet: a full run over every event.
    expect(trainer.requests.at(-1)).toMatchObject({
      mode: 'FULL',
      events: { afterSeq: null, untilSeq: '60' },
    });

    await addEvents(10);
    const skipped = await training.runIfDue('test');
    expect(skipped).toMatchObject({ kind: 'skipped' });
    expect(skipped.kind === 'skipped' && skipped.reason).toMatch(
      /^10 new events since version \d+; 50 needed$/,
    );

    await addEvents(45);
    const second = await training.runIfDue('test');
    expect(second).toMatchObject({ kind: 'ran', run: { status: 'succeeded' } });
    expect(trainer.requests.at(-1)).toMatchObject({
      mode: 'INCREMENTAL',
      events: { afterSeq: '60', untilSeq: '115' },
    });
    expect(trainer.requests).toHaveLength(2);
  });
});

describe('training runs only where the train role runs', () => {
  let context: TestContext;
  let api: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext({ ROLE: 'api', LOG_LEVEL: 'fatal', TRAIN_CRON: 'off' });
    await context.createServiceTopics();
    api = await startApp(context.config);
  });

  afterAll(async () => {
    await api.close();
    await context.cleanup();
  });

  const runStatus = async (id: string) =>
    (
      await graphql<{ trainingRun: { status: string; outcome: string | null } }>(
        api,
        `{ trainingRun(id: "${id}") { status outcome } }`,
      )
    ).data?.trainingRun;

  const waitingFor = async (id: string) =>
    (
      await graphql<{ trainingRun: { waitingFor: string | null } }>(
        api,
        `{ trainingRun(id: "${id}") { waitingFor } }`,
      )
    ).data?.trainingRun.waitingFor;

  it('an api process only queues; a train process picks the run up within seconds', async () => {
    // The api role has no trainer at all.
    expect(() => {
      api.get(MODEL_TRAINER, { strict: false });
    }).toThrow();
    expect(() => {
      api.get(TrainingRunService, { strict: false });
    }).toThrow();
    const childrenBefore = childrenOf(process.pid);
    const queued = await graphql<{ trainModel: { id: string; status: string } }>(
      api,
      'mutation { trainModel(mode: FULL) { id status } }',
    );
    expect(queued.data?.trainModel.status).toBe('QUEUED');
    const id = required(queued.data?.trainModel.id);
    const status = () => runStatus(id);
    // Nobody trains it here: still queued a while later, and no process was started for it.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await status()).toEqual({ status: 'QUEUED', outcome: null });
    expect(childrenOf(process.pid)).toEqual(childrenBefore);

    const trainer = new FakeTrainer();
    const started = Date.now();
    const train = await startApp(context.config, { role: 'train', trainer });
    try {
      const done = await eventually(status, 10_000, {
        what: 'the queued run finished by the train process',
        until: (run) => run?.status === 'SUCCEEDED',
        intervalMs: 50,
      });
      expect(done.at - started).toBeLessThan(5000);
      expect(done.value).toEqual({ status: 'SUCCEEDED', outcome: 'promoted' });
      expect(trainer.requests).toHaveLength(1);
    } finally {
      await train.close();
    }
  });

  it('a run queued before the catalog has text vectors waits for them, then trains', async () => {
    const trainer = new FakeTrainer();
    trainer.waiting = `no item vectors for encoder ${trainer.encoderId} yet`;
    const { modelLifecycle } = context.config;
    const train = await startApp(
      { ...context.config, modelLifecycle: { ...modelLifecycle, queuePollMs: 200 } },
      { role: 'train', trainer },
    );
    try {
      const queued = await graphql<{ trainModel: { id: string } }>(
        api,
        'mutation { trainModel(mode: FULL) { id } }',
      );
      const id = required(queued.data?.trainModel.id);
      // Several polls later: still queued, not failed, nothing trained, and the run says why.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await runStatus(id)).toEqual({ status: 'QUEUED', outcome: null });
      expect(trainer.requests).toHaveLength(0);
      expect(await waitingFor(id)).toBe(trainer.waiting);

      trainer.waiting = null;
      const done = await eventually(() => runStatus(id), 5000, {
        what: 'the waiting run trained once the vectors exist',
        until: (run) => run?.status === 'SUCCEEDED',
        intervalMs: 50,
      });
      expect(done.value?.outcome).toMatch(/^(promoted|candidate)$/);
      expect(trainer.requests).toHaveLength(1);
      expect(await waitingFor(id)).toBeNull();
    } finally {
      await train.close();
    }
  });
});
