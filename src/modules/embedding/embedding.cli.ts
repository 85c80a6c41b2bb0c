import { SingleBar } from 'cli-progress';
import type { CliCommand } from '../../cli-command';
import { parseFlags } from '../../cli-command';
import { createDirectPgPool, createPgPool } from '../../infra/postgres';
import { Metrics } from '../metrics/metrics.registry';
import { BackfillProgress, EmbeddingIndexer, PassCounts } from './embedding-indexer.service';
import { EmbeddingRepository } from './embedding.repository';
import { TextEncoderProvider } from './encoder.provider';

function summary(counts: PassCounts, seconds: number): string {
  return (
    `embedded ${counts.items} items in ${seconds.toFixed(1)} s: ${counts.encoded} encoded, ` +
    `${counts.reused} reused a stored vector of the same text, ${counts.stored} stored` +
    ` (${counts.items - counts.stored} changed meanwhile, left pending)\n`
  );
}

const embedItems: CliCommand = {
  name: 'embed-items',
  usage: 'embed-items [--all] [--batch n]',
  summary:
    'encode items marked pending; --all: every live item lacking a vector of the configured encoder for its text',
  async run(args, context) {
    const { flags } = parseFlags(args);
    const batchFlag = flags.get('batch');
    const batch =
      typeof batchFlag === 'string' ? Number(batchFlag) : context.config.embedding.workerBatch;
    if (!Number.isInteger(batch) || batch < 1) throw new Error('--batch must be an integer >= 1');
    const { config, logger } = context;
    const pool = createPgPool(config.postgres, logger);
    const encoder = TextEncoderProvider.fromConfig(config, logger);
    const directPool = createDirectPgPool(config.postgres, logger);
    const repository = new EmbeddingRepository(pool, directPool);
    const indexer = new EmbeddingIndexer(repository, encoder, logger, new Metrics({ role: 'cli' }));
    const bar = new SingleBar({
      format:
        'embedding |{bar}| {percentage}% {value}/{total} items | {rate} items/s | ETA {eta_formatted}',
      stream: process.stderr,
      etaBuffer: 50,
      hideCursor: true,
      // Redirected (CI, logs): a line every 5 s instead of a redrawn bar.
      noTTYOutput: true,
      notTTYSchedule: 5000,
    });
    try {
      // Load the model before the clock starts, so the rate shows encoding speed.
      await encoder.get();
      const started = performance.now();
      const onProgress = (progress: BackfillProgress) => {
        const seconds = (performance.now() - started) / 1000;
        const rate = seconds > 0 ? (progress.items / seconds).toFixed(1) : '0';
        // Nothing to embed: no bar (cli-progress would print a 0/0 bar with no ETA).
        if (progress.total === 0) return;
        if (progress.items === 0) bar.start(progress.total, 0, { rate });
        else bar.setTotal(progress.total);
        bar.update(progress.items, { rate });
      };
      const counts = await indexer.backfill(
        flags.has('all') ? 'stale' : 'pending',
        batch,
        onProgress,
      );
      bar.stop();
      process.stdout.write(summary(counts, (performance.now() - started) / 1000));
    } finally {
      bar.stop();
      await encoder.onApplicationShutdown();
      await pool.end();
      await directPool.end();
    }
  },
};

export const EMBEDDING_COMMANDS: readonly CliCommand[] = [embedItems];
