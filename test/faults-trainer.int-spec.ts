import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { NestFactory } from '@nestjs/core';
import { Pool } from 'pg';
import { AppModule } from '../src/app.module';
import { createLogger } from '../src/common/logger';
import type { AppConfig } from '../src/config/config';
import type { TrainingRun } from '../src/modules/registry/registry.types';
import { TrainingCoreModule } from '../src/modules/training/training.module';
import { TrainingRunService } from '../src/modules/training/training-run.service';
import { reportFigures } from './support/fault-helpers';
import { childrenOf, processAlive } from './support/processes';
import { contextEnv, createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';
import { seedTrainingData } from './support/training-data';

jest.setTimeout(180_000);

/** Epochs of the run that gets killed: far more than it lives through. */
const KILLED_RUN_EPOCHS = 200;

function envOf(config: AppConfig): Record<string, string> {
  return {
    ...contextEnv(config),
    PORT: '0',
    HOST: '127.0.0.1',
    TRAIN_BACKEND: 'cpu',
    TRAIN_EPOCHS: String(KILLED_RUN_EPOCHS),
    TRAIN_CRON: 'off',
    // Epochs are logged at info: the test waits for the first one.
    LOG_LEVEL: 'info',
  };
}

interface RunRow {
  id: string;
  status: string;
  progress: number;
  version_id: string | null;
  error: string | null;
}

interface VersionRow {
  id: string;
  status: string;
  status_reason: string | null;
  has_artifact: boolean;
}

/**
 * Issue #8: the trainer killed mid-run. A train-role process (what the train Deployment runs)
 * picks up a queued run and is SIGKILLed after its first epoch; no partial version may become
 * active or servable, and the next run must succeed.
 */
describe('trainer killed mid-run', () => {
  let context: TestContext;
  let pool: Pool;
  let child: ChildProcess | undefined;
  let workers: number[] = [];

  beforeAll(async () => {
    context = await createTestContext({
      TRAIN_BACKEND: 'cpu',
      // The next run, in-process: one epoch is enough to be promoted.
      TRAIN_EPOCHS: '1',
      TRAIN_CRON: 'off',
      LOG_LEVEL: 'fatal',
    });
    pool = new Pool({ connectionString: context.config.postgres.url });
    const { embedding } = context.config;
    await seedTrainingData(pool, {
      encoderId: `${embedding.model}:${embedding.quantized ? 'q8' : 'fp32'}`,
      seed: 'trainer-fault',
      impressions: 6000,
    });
  });

  afterAll(async () => {
    // Never leave a trainer behind, whatever failed.
    for (const pid of [child?.pid, ...workers]) {
      if (pid !== undefined && processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    await pool.end();
    await context.cleanup();
  });

  const runs = async () =>
    (
      await pool.query<RunRow>(
        'SELECT id, status, progress, version_id, error FROM training_runs ORDER BY id',
      )
    ).rows;
  const versions = async () =>
    (
      await pool.query<VersionRow>(
        `SELECT v.id, v.status, v.status_reason, a.version_id IS NOT NULL AS has_artifact
           FROM model_versions v LEFT JOIN model_artifacts a ON a.version_id = v.id ORDER BY v.id`,
      )
    ).rows;

  it('leaves no partial version active, and the next run succeeds', async () => {
    const root = path.resolve(__dirname, '..');
    const started = Date.now();
    await pool.query(
      `INSERT INTO training_runs (mode, status, triggered_by) VALUES ('FULL', 'queued', 'faults test')`,
    );
    const trainer = spawn(
      process.execPath,
      [require.resolve('ts-node/dist/bin.js'), 'src/main.ts', 'train'],
      {
        cwd: root,
        env: { ...process.env, ...envOf(context.config) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child = trainer;
    let output = '';
    let epochs = 0;
    const collect = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-20_000);
      epochs += text.split('"msg":"epoch done"').length - 1;
    };
    trainer.stdout.on('data', collect);
    trainer.stderr.on('data', collect);
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => {
      trainer.once('exit', (code, signal) => {
        resolve(signal ?? code);
      });
    });

    // Running, one epoch logged and its progress recorded: then the kill.
    const running = await eventually(async () => ({ run: (await runs()).at(0), epochs }), 120_000, {
      what: 'a running training run past its first epoch',
      until: (state) =>
        state.epochs >= 1 && state.run?.status === 'running' && state.run.progress > 0,
      intervalMs: 100,
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}\ntrainer output:\n${output}`);
    });
    const killedRun = running.value.run;
    if (killedRun?.version_id == null) throw new Error('the run recorded no version');
    workers = childrenOf(trainer.pid ?? -1);
    expect(workers.length).toBeGreaterThan(0);
    const killAt = Date.now();
    trainer.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    // The training process it forked goes too (its parent is gone), and PostgreSQL drops the
    // dead session's training lock ...
    const [workersGone, lockGone] = await Promise.all([
      eventually(() => Promise.resolve(workers.filter(processAlive)), 30_000, {
        what: 'the training worker process to exit after its parent was killed',
        until: (left) => left.length === 0,
      }),
      eventually(
        async () =>
          (
            await pool.query(
              `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            )
          ).rows.length,
        30_000,
        { what: 'the training lock to be released', until: (held) => held === 0 },
      ),
    ]);
    // ... and nothing of the killed run is active or servable.
    const afterKill = await versions();
    expect(afterKill.filter((v) => v.status === 'active')).toEqual([]);
    expect(afterKill).toEqual([
      { id: killedRun.version_id, status: 'training', status_reason: null, has_artifact: false },
    ]);

    // The next trainer takes over (as `train --once` would): the orphan is marked failed, and
    // the new run trains.
    const app = await NestFactory.createApplicationContext(
      AppModule.withModules(context.config, createLogger('fatal'), [TrainingCoreModule]),
      { logger: false },
    );
    const nextStarted = Date.now();
    let next: TrainingRun;
    try {
      next = await app.get(TrainingRunService).run('FULL', 'faults test');
    } finally {
      await app.close();
    }
    const nextMs = Date.now() - nextStarted;
    expect(next).toMatchObject({ status: 'succeeded', outcome: 'promoted' });
    expect(Number(next.versionId)).toBeGreaterThan(Number(killedRun.version_id));
    const [orphan, finished] = await runs();
    expect(orphan).toMatchObject({
      id: killedRun.id,
      status: 'failed',
      error: 'abandoned: the trainer stopped',
    });
    expect(finished).toMatchObject({ id: next.id, status: 'succeeded' });
    const finalVersions = await versions();
    expect(finalVersions).toHaveLength(2);
    const [abandoned, promoted] = finalVersions;
    expect(abandoned).toEqual({
      id: killedRun.version_id,
      status: 'failed',
      status_reason: 'abandoned: the trainer stopped',
      has_artifact: false,
    });
    expect(promoted).toMatchObject({ id: next.versionId, status: 'active', has_artifact: true });

    reportFigures('trainer-killed', {
      epochsPlanned: KILLED_RUN_EPOCHS,
      epochsLoggedBeforeKill: running.value.epochs,
      progressAtKill: killedRun.progress,
      killAfterStartMs: killAt - started,
      workerExitAfterKillMs: workersGone.at - killAt,
      lockReleasedAfterKillMs: lockGone.at - killAt,
      killedRunId: killedRun.id,
      killedVersionId: killedRun.version_id,
      killedVersionStatusAfterNextRun: 'failed',
      nextRunVersionId: next.versionId,
      nextRunOutcome: next.outcome,
      nextRunMs: nextMs,
    });
  });
});
