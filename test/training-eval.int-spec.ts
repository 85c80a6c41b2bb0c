import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSyntheticMind } from '../src/modules/training/dataset/synthetic-mind';
import { runEval } from '../src/modules/training/eval/run-eval';
import { HashingTextEncoder } from './support/fakes/hashing-encoder';

/**
 * `npm run eval` on the project's synthetic data at CI size: the production trainer and scorer
 * must beat the frozen encoder (mean history, cosine) on dev AUC.
 */
describe('offline evaluation on synthetic MIND data', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'recsys-eval-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('the trained model beats the frozen encoder and the baselines', async () => {
    writeSyntheticMind(path.join(dir, 'mind'), {
      items: 300,
      users: 200,
      impressions: 150_000,
      seed: 1,
    });
    const result = await runEval({
      dataDir: path.join(dir, 'mind'),
      encoder: new HashingTextEncoder(384),
      cacheDir: path.join(dir, 'vectors'),
      backend: 'wasm',
      // A small set: smaller batches give Adam enough steps per epoch.
      hyperparameters: { epochs: 3, batchSize: 64 },
      validationFraction: 0.1,
      ablations: false,
      popularityHalfLifeMs: 24 * 3_600_000,
      log: () => undefined,
    });
    const auc = (name: string) => result.rows.find((row) => row.name === name)?.all.auc ?? 0;
    const trained = auc('trained model');
    expect(result.counts.devImpressions).toBeGreaterThan(100);
    expect(trained).toBeGreaterThan(auc('frozen encoder (mean history, cosine)'));
    expect(trained).toBeGreaterThan(auc('popularity'));
    expect(trained).toBeGreaterThan(auc('random'));
    // What rank returns is scored too: the model merged by ranking's merge, hand and learned.
    const hand = auc('served: default profile, hand weights');
    const learned = auc('served: learned combiner (additive shapes)');
    process.stdout.write(
      `synthetic eval AUC: model ${trained.toFixed(4)}, served hand ${hand.toFixed(4)}, served learned ${learned.toFixed(4)}\n`,
    );
    expect(hand).toBeGreaterThan(auc('random'));
    expect(learned).toBeGreaterThan(auc('popularity'));
    expect(result.combiner?.kind).toBe('additive');
  }, 120_000);
});
