import { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../../app.module';
import type { CliCommand } from '../../cli-command';
import { parseFlags } from '../../cli-command';
import type { Logger } from '../../common/logger';
import type { AppConfig } from '../../config/config';
import { RegistryService } from './registry.service';
import { TRAINING_MODES, TrainingMode, TrainingRun } from './registry.types';
import { ScheduledOutcome, TrainingRunService } from './training-run.service';

const TRIGGERED_BY = 'cli';

/** The train role's modules without the scheduler timer: a CLI run trains once and exits. */
async function withTrainContext<T>(
  config: AppConfig,
  logger: Logger,
  work: (app: INestApplicationContext) => Promise<T>,
): Promise<T> {
  const app = await NestFactory.createApplicationContext(
    AppModule.forRole(
      { ...config, role: 'train', modelLifecycle: { ...config.modelLifecycle, trainCron: null } },
      logger,
    ),
    { logger: false },
  );
  try {
    return await work(app);
  } finally {
    await app.close();
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function describeRun(run: TrainingRun): string {
  const error = run.error === null ? '' : `: ${run.error}`;
  return `training run ${run.id} ${run.status} (${run.outcome ?? 'no outcome'}), version ${run.versionId ?? '-'}${error}`;
}

/** `train --once`: what the Kubernetes CronJob runs; trains only when enough events arrived. */
export async function runTrainOnce(config: AppConfig, logger: Logger): Promise<ScheduledOutcome> {
  return withTrainContext(config, logger, (app) =>
    app.get(TrainingRunService).runIfDue('train --once'),
  );
}

const train: CliCommand = {
  name: 'train',
  usage: 'train --once',
  summary: `incremental training if TRAIN_MIN_NEW_EVENTS arrived since the active version (CronJob)`,
  async run(args, context) {
    if (!parseFlags(args).flags.has('once')) throw new Error(`usage: ${this.usage}`);
    const outcome = await runTrainOnce(context.config, context.logger);
    process.stdout.write(
      outcome.kind === 'skipped' ? `skipped: ${outcome.reason}\n` : `${describeRun(outcome.run)}\n`,
    );
    if (outcome.kind === 'ran' && outcome.run.status === 'failed') process.exitCode = 1;
  },
};

const trainModel: CliCommand = {
  name: 'train-model',
  usage: 'train-model [--mode INCREMENTAL|FULL]',
  summary: 'train now (waits; CONFLICT if another run is in progress), then apply the gate',
  async run(args, context) {
    const mode = parseFlags(args).flags.get('mode') ?? 'INCREMENTAL';
    if (typeof mode !== 'string' || !(TRAINING_MODES as readonly string[]).includes(mode)) {
      throw new Error(`--mode must be one of ${TRAINING_MODES.join(', ')}`);
    }
    const run = await withTrainContext(context.config, context.logger, (app) =>
      app.get(TrainingRunService).run(mode as TrainingMode, TRIGGERED_BY),
    );
    process.stdout.write(`${describeRun(run)}\n`);
    if (run.status === 'failed') process.exitCode = 1;
  },
};

const trainingRun: CliCommand = {
  name: 'training-run',
  usage: 'training-run <id>',
  summary: 'a training run: status, progress, outcome',
  async run(args, context) {
    const id = parseFlags(args)._.at(0);
    if (id === undefined) throw new Error(`usage: ${this.usage}`);
    print(
      await withTrainContext(context.config, context.logger, (app) =>
        app.get(TrainingRunService).getRun(id),
      ),
    );
  },
};

const modelVersions: CliCommand = {
  name: 'model-versions',
  usage: 'model-versions [--first n]',
  summary: 'registered model versions, newest first',
  async run(args, context) {
    const first = Number(parseFlags(args).flags.get('first') ?? 20);
    print(
      await withTrainContext(context.config, context.logger, (app) =>
        app.get(RegistryService).listVersions(first),
      ),
    );
  },
};

const activeModel: CliCommand = {
  name: 'active-model',
  usage: 'active-model',
  summary: 'the active model version',
  async run(_args, context) {
    print(
      await withTrainContext(context.config, context.logger, (app) =>
        app.get(RegistryService).activeVersion(),
      ),
    );
  },
};

const activate: CliCommand = {
  name: 'activate-model-version',
  usage: 'activate-model-version <id>',
  summary: 'make a version active; every api replica swaps to it',
  async run(args, context) {
    const id = parseFlags(args)._.at(0);
    if (id === undefined) throw new Error(`usage: ${this.usage}`);
    const version = await withTrainContext(context.config, context.logger, (app) =>
      app.get(RegistryService).activate(id, TRIGGERED_BY),
    );
    process.stdout.write(`version ${version.id} is active\n`);
  },
};

const rollback: CliCommand = {
  name: 'rollback-model',
  usage: 'rollback-model',
  summary: 'reactivate the version that was active before the current one',
  async run(_args, context) {
    const version = await withTrainContext(context.config, context.logger, (app) =>
      app.get(RegistryService).rollback(TRIGGERED_BY),
    );
    process.stdout.write(`rolled back: version ${version.id} is active\n`);
  },
};

export const REGISTRY_COMMANDS: readonly CliCommand[] = [
  modelVersions,
  activeModel,
  trainingRun,
  trainModel,
  train,
  activate,
  rollback,
];
