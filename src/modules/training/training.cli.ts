import { readFileSync, writeFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../../app.module';
import type { CliCommand } from '../../cli-command';
import { parseFlags } from '../../cli-command';
import type { Logger } from '../../common/logger';
import type { AppConfig } from '../../config/config';
import { describeRun } from '../registry/registry.cli';
import { IndexPrebuildService } from '../serving/index-prebuild.service';
import { TrainingCoreModule } from './training.module';
import { TrainingRepository } from './training.repository';
import { ScheduledOutcome, TrainingRunService } from './training-run.service';
import { TrainingService } from './training.service';

/**
 * `train --once` (what a Kubernetes CronJob runs): the runs queued meanwhile, then incremental
 * training if TRAIN_MIN_NEW_EVENTS arrived since the active version. No queue listener, no timer.
 */
export async function runTrainOnce(config: AppConfig, logger: Logger): Promise<ScheduledOutcome> {
  const app = await NestFactory.createApplicationContext(
    AppModule.withModules(config, logger, [TrainingCoreModule]),
    { logger: false },
  );
  try {
    const runs = app.get(TrainingRunService);
    const queued = await runs.runQueued();
    if (queued > 0) logger.info({ runs: queued }, 'ran queued training runs');
    const outcome = await runs.runIfDue('train --once');
    // The versions registered here have their ANN index built and stored before the job ends.
    await app.get(IndexPrebuildService).settled();
    return outcome;
  } finally {
    await app.close();
  }
}

const trainOnce: CliCommand = {
  name: 'train',
  usage: 'train --once',
  summary: `queued runs, then incremental training if TRAIN_MIN_NEW_EVENTS arrived (CronJob)`,
  async run(args, context) {
    if (!parseFlags(args).flags.has('once')) throw new Error(`usage: ${this.usage}`);
    const outcome = await runTrainOnce(context.config, context.logger);
    process.stdout.write(
      outcome.kind === 'skipped' ? `skipped: ${outcome.reason}\n` : `${describeRun(outcome.run)}\n`,
    );
    if (outcome.kind === 'ran' && outcome.run.status === 'failed') process.exitCode = 1;
  },
};

const fit: CliCommand = {
  name: 'fit',
  usage: 'fit [--out model.bin] [--parent model.bin --after-seq N]',
  summary:
    'fit the interest model on the stored events (child process) into a file; registers nothing',
  async run(args, context) {
    const { flags } = parseFlags(args);
    const app = await context.app(TrainingCoreModule);
    const service = app.get(TrainingService);
    const untilSeq = await app.get(TrainingRepository).latestSeq();
    if (untilSeq === null) throw new Error('no events stored yet');
    const parentFile = flags.get('parent');
    const afterSeq = flags.get('after-seq');
    if ((parentFile === undefined) !== (afterSeq === undefined)) {
      throw new Error('--parent and --after-seq go together (incremental fine-tuning)');
    }
    const bar = new SingleBar({
      format: 'training [{bar}] {percentage}% | {eta}s left',
      stream: process.stderr,
      hideCursor: true,
      // Redirected (logs, CI): a line every 30 s instead of a redrawn bar.
      noTTYOutput: true,
      notTTYSchedule: 30_000,
    });
    bar.start(1000, 0);
    try {
      const result = await service.train({
        mode: parentFile === undefined ? 'FULL' : 'INCREMENTAL',
        ...(typeof parentFile === 'string'
          ? { parent: { id: parentFile, artifact: readFileSync(parentFile) } }
          : {}),
        events: { afterSeq: typeof afterSeq === 'string' ? afterSeq : null, untilSeq },
        signal: new AbortController().signal,
        onProgress: (fraction) => {
          bar.update(Math.round(fraction * 1000));
        },
      });
      bar.stop();
      const out = String(flags.get('out') ?? 'model.bin');
      writeFileSync(out, result.artifact);
      process.stdout.write(
        `${JSON.stringify({ out, bytes: result.artifact.length, untilSeq, backend: result.backend, metrics: result.metrics })}\n`,
      );
    } finally {
      bar.stop();
    }
  },
};

export const TRAINING_COMMANDS: readonly CliCommand[] = [trainOnce, fit];
