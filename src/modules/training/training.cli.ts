import { readFileSync, writeFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import type { CliCommand } from '../../cli-command';
import { parseFlags } from '../../cli-command';
import { TrainingRepository } from './training.repository';
import { TrainingService } from './training.service';

const train: CliCommand = {
  name: 'train',
  usage: 'train [--out model.bin] [--parent model.bin --after-seq N]',
  summary: 'fit the interest model on the stored events (child process); write the artifact',
  async run(args, context) {
    const { flags } = parseFlags(args);
    const app = await context.app('train');
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

export const TRAINING_COMMANDS: readonly CliCommand[] = [train];
