import { existsSync } from 'node:fs';
import path from 'node:path';
import { Pool } from 'pg';
import pino from 'pino';
import { readEncoderOnnx, topLayerWeights } from '../src/modules/embedding/encoder-onnx';
import { loadModel } from '../src/modules/training/model/artifact';
import { InterestScorer } from '../src/modules/training/model/interest-scorer';
import { TrainingRepository } from '../src/modules/training/training.repository';
import { TrainingService } from '../src/modules/training/training.service';
import { createTestContext, TestContext } from './support/test-context';
import { seedTrainingData } from './support/training-data';

const MODEL_FOLDER = path.resolve(__dirname, '..', 'models', 'all-MiniLM-L6-v2');
const modelPresent = existsSync(path.join(MODEL_FOLDER, 'onnx', 'model.onnx'));
if (!modelPresent) {
  process.stderr.write(`SKIPPED token-attention training test: ${MODEL_FOLDER} is missing\n`);
}

/** Training from PostgreSQL events on a worker thread: full retrain, then a warm-started one. */
describe('TrainingService on stored events', () => {
  let context: TestContext;
  let pool: Pool;
  let service: TrainingService;

  beforeAll(async () => {
    context = await createTestContext({ TRAIN_BACKEND: 'cpu', TRAIN_EPOCHS: '2' });
    pool = new Pool({ connectionString: context.config.postgres.url });
    service = new TrainingService(
      context.config,
      pino({ level: 'silent' }),
      new TrainingRepository(pool),
    );
    await seedTrainingData(pool, {
      encoderId: service.encoderId,
      seed: 'train-int',
      embedPending: true,
    });
  }, 60_000);

  afterAll(async () => {
    await pool.end();
    await context.cleanup();
  });

  it("waits for its encoder's first vectors, then for the catalog's backlog up to TRAIN_EMBEDDING_WAIT_MS", async () => {
    // The items above have vectors but are still flagged for the embedding worker.
    const now = new Date();
    expect(await service.waitingFor(now)).toMatch(
      /^catalog items still wait for their text vectors/,
    );
    const waitMs = context.config.modelLifecycle.embeddingWaitMs;
    expect(await service.waitingFor(new Date(Date.now() - waitMs))).toBeNull();
    await pool.query('UPDATE items SET embed_pending = false');
    expect(await service.waitingFor(now)).toBeNull();
    const other = new TrainingService(
      { ...context.config, embedding: { ...context.config.embedding, model: 'other-encoder' } },
      pino({ level: 'silent' }),
      new TrainingRepository(pool),
    );
    expect(await other.waitingFor(new Date(0))).toBe(
      `no item vectors for encoder ${other.encoderId} yet`,
    );
  });

  it('trains off the event loop, then fine-tunes incrementally from the parent', async () => {
    const { rows } = await pool.query<{ max: string; mid: string }>(
      'SELECT max(seq)::text AS max, (max(seq) * 3 / 4)::text AS mid FROM events',
    );
    const { max, mid } = rows[0];
    const progress: number[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = Date.now();
    const full = await service.train({
      mode: 'FULL',
      events: { afterSeq: null, untilSeq: mid },
      signal: new AbortController().signal,
      onProgress: (fraction) => progress.push(fraction),
    });
    const elapsed = Date.now() - started;
    clearInterval(timer);
    // The event loop kept ticking while the worker trained (at least a third of the 10 ms slots).
    expect(ticks).toBeGreaterThan(elapsed / 30);
    expect(progress.at(-1)).toBeCloseTo(1, 5);
    expect(full.backend).toBe('cpu');
    expect(full.metrics.auc).toBeGreaterThan(0.5);
    expect(full.trainSamples).toBeGreaterThan(100);
    expect(full.validation.from.getTime()).toBeGreaterThan(full.trainWindow?.to.getTime() ?? 0);
    const parent = loadModel(full.artifact);
    expect(parent.manifest.encoderId).toBe(service.encoderId);
    // The popularity feature counts clicks from before the validation window only.
    const before = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (SELECT DISTINCT user_id, item_id FROM events
        WHERE type = 'click' AND seq <= $1 AND ts < $2) pairs`,
      [mid, full.validation.from],
    );
    const counted = Object.values(parent.manifest.itemClicks).reduce((sum, n) => sum + n, 0);
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBeLessThanOrEqual(before.rows[0].n);

    const incremental = await service.train({
      mode: 'INCREMENTAL',
      parent: { id: '1', artifact: full.artifact },
      events: { afterSeq: mid, untilSeq: max },
      signal: new AbortController().signal,
      onProgress: () => undefined,
    });
    const child = loadModel(incremental.artifact);
    expect(child.manifest.hyperparameters).toMatchObject({ mode: 'INCREMENTAL', parent: true });
    // Serving loads the bytes alone and scores.
    const scorer = InterestScorer.fromArtifact(incremental.artifact);
    const item = scorer.itemVector(new Float32Array(384).fill(0.05), child.manifest.warmItems[0]);
    expect(Number.isFinite(scorer.score(scorer.userVector([item]), item))).toBe(true);

    const metrics = await service.evaluate(
      incremental.artifact,
      incremental.validation,
      new AbortController().signal,
    );
    expect(metrics.auc).toBeGreaterThan(0.5);

    // Nothing after the parent's events: a coded error that says so.
    await expect(
      service.train({
        mode: 'INCREMENTAL',
        parent: { id: '2', artifact: incremental.artifact },
        events: { afterSeq: max, untilSeq: max },
        signal: new AbortController().signal,
        onProgress: () => undefined,
      }),
    ).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: expect.stringContaining("no clicked impressions since version 2's events") as string,
    });
  }, 120_000);

  (modelPresent ? it : it.skip)(
    'trains an item tower over token states with its own fine-tuned top encoder layer',
    async () => {
      const { rows } = await pool.query<{ mid: string }>(
        'SELECT (max(seq) / 4)::text AS mid FROM events',
      );
      const tokens = new TrainingService(
        {
          ...context.config,
          training: {
            ...context.config.training,
            // The layer's products on plain-JS tfjs would take minutes; wasm is the CPU default.
            backend: 'wasm',
            epochs: 1,
            tokenAttention: true,
            encoderTopLayers: 1,
          },
        },
        pino({ level: 'silent' }),
        new TrainingRepository(pool),
      );
      const trained = await tokens.train({
        mode: 'FULL',
        events: { afterSeq: null, untilSeq: rows[0].mid },
        signal: new AbortController().signal,
        onProgress: () => undefined,
      });
      const artifact = loadModel(trained.artifact);
      expect(artifact.manifest.architecture).toMatchObject({
        tokenAttention: true,
        encoderTopLayers: 1,
        encoderHeads: 12,
      });
      expect(artifact.manifest.hyperparameters).toMatchObject({ encoderLearningRate: 0.00002 });
      // The version carries its own copy of layer 5, moved away from the pretrained weights.
      const [pretrained] = topLayerWeights(readEncoderOnnx(MODEL_FOLDER), 1);
      const own = artifact.weights['top.0.value.kernel']?.data ?? new Float32Array(0);
      expect(own).toHaveLength(pretrained['value.kernel'].data.length);
      expect(own).not.toEqual(pretrained['value.kernel'].data);
      expect(trained.metrics.auc).toBeGreaterThan(0.5);
      // Scoring a token version on another window encodes and pools that window's items too.
      const rescored = await tokens.evaluate(
        trained.artifact,
        trained.validation,
        new AbortController().signal,
      );
      expect(rescored.auc).toBeGreaterThan(0.5);
    },
    300_000,
  );

  it('aborting stops the worker', async () => {
    const controller = new AbortController();
    const { rows } = await pool.query<{ max: string }>('SELECT max(seq)::text AS max FROM events');
    const run = service.train({
      mode: 'FULL',
      events: { afterSeq: null, untilSeq: rows[0].max },
      signal: controller.signal,
      onProgress: () => {
        controller.abort();
      },
    });
    await expect(run).rejects.toThrow(/aborted/);
  }, 60_000);
});
