import { itemText } from '../src/modules/embedding/item-text';
import { generateBehaviour, generateCatalog } from '../src/synthetic';
import { Impression, splitByTime, vectorsFromMap } from '../src/modules/training/dataset/dataset';
import { EventRow, impressionsFromEvents } from '../src/modules/training/dataset/events';
import { DEFAULT_ARCHITECTURE } from '../src/modules/training/model/architecture';
import {
  selectBackend,
  TRAIN_BACKENDS,
  TrainBackendName,
} from '../src/modules/training/model/backend';
import { HashingTextEncoder } from '../test/support/fakes/hashing-encoder';
import { DEFAULT_HYPERPARAMETERS, trainInterestModel } from '../src/modules/training/trainer';
import { runInWorker } from '../src/modules/training/worker/run-in-worker';
import { Benchmark, progress } from './lib/harness';

/** Synthetic shop behaviour through the production events-to-impressions path. */
function syntheticImpressions(slots: number): Impression[] {
  const catalog = generateCatalog({ items: 2000, seed: 'bench' });
  const { events } = generateBehaviour({ catalog, users: 2000, impressions: slots, seed: 'bench' });
  const rows: EventRow[] = events
    .filter((event) => event.type === 'impression' || event.type === 'click')
    .map((event, i) => ({
      seq: String(i + 1),
      type: event.type as 'impression' | 'click',
      userId: event.userId,
      itemId: event.itemId,
      ts: Date.parse(event.timestamp),
      requestId: event.requestId,
    }));
  const clicks = rows.filter((row) => row.type === 'click');
  return impressionsFromEvents(rows, clicks);
}

const benchmark: Benchmark = {
  description:
    'interest model training: samples/s per tfjs backend (same model and data), and the wall time ' +
    'of an incremental fine-tune on 10,000 new impressions (child process)',
  async run(args) {
    const perBackend = Number(args[0] ?? 2000);
    const catalog = generateCatalog({ items: 2000, seed: 'bench' });
    const encoder = new HashingTextEncoder(384);
    const texts = await encoder.encode(catalog.items.map((item) => itemText(item)));
    const vectorMap = new Map(catalog.items.map((item, i) => [item.itemId, texts[i]]));
    const vectors = vectorsFromMap(encoder.modelId, 384, vectorMap);
    progress('generating synthetic behaviour');
    const impressions = syntheticImpressions(400_000);
    progress(`${impressions.length} clicked impressions`);
    const architecture = DEFAULT_ARCHITECTURE;
    const hyperparameters = { ...DEFAULT_HYPERPARAMETERS, epochs: 1, maxValidation: 200 };
    const sample = impressions.slice(0, perBackend);

    const rows: Record<string, string | number>[] = [];
    const figures: Record<string, unknown> = {};
    const speeds = new Map<TrainBackendName, number>();
    for (const name of TRAIN_BACKENDS) {
      try {
        await selectBackend(name);
      } catch (error) {
        progress(
          `${name}: not available (${error instanceof Error ? error.message : String(error)})`,
        );
        rows.push({ backend: name, 'samples/s': 'n/a', 'vs cpu (pure JS)': 'not installed' });
        continue;
      }
      progress(`${name}: training one epoch on ${sample.length} impressions`);
      const outcome = await trainInterestModel({
        train: sample,
        validation: [],
        vectors,
        architecture,
        hyperparameters,
        backend: name,
      });
      speeds.set(name, outcome.samplesPerSecond);
    }
    const cpu = speeds.get('cpu') ?? Number.NaN;
    for (const [name, speed] of speeds) {
      rows.push({
        backend: name,
        'samples/s': speed,
        'vs cpu (pure JS)': `${(speed / cpu).toFixed(2)}x`,
      });
      figures[`samplesPerSecond_${name}`] = Math.round(speed);
    }

    // Incremental fine-tune: a parent trained on older data, then 10,000 new impressions + replay.
    const best: TrainBackendName = [...speeds].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'cpu';
    const sorted = [...impressions].sort((a, b) => a.time - b.time);
    const fresh = sorted.slice(-10_000);
    const older = sorted.slice(0, -10_000);
    progress(`parent model on ${Math.min(older.length, 5000)} older impressions (${best})`);
    const parent = await trainInterestModel({
      train: older.slice(-5000),
      validation: [],
      vectors,
      architecture,
      hyperparameters,
      backend: best,
    });
    const ids = [...vectorMap.keys()];
    const data = new Float32Array(ids.length * 384);
    ids.forEach((id, row) => {
      data.set(vectorMap.get(id) ?? new Float32Array(384), row * 384);
    });
    const replay = older.slice(-10_000);
    const { train, validation } = splitByTime([...replay, ...fresh], 0.05);
    progress(
      `incremental fine-tune: 10,000 new + ${replay.length} replayed impressions, child process`,
    );
    const started = performance.now();
    const result = await runInWorker({
      kind: 'train',
      backend: best,
      train,
      validation,
      vectors: { encoderId: encoder.modelId, dimension: 384, ids, data },
      architecture,
      hyperparameters: { ...hyperparameters, maxValidation: 1000 },
      parent: new Uint8Array(parent.artifact),
    });
    const seconds = (performance.now() - started) / 1000;
    if (result.type !== 'trained') throw new Error('no model from the worker');
    rows.push({
      backend: `${best}: incremental fine-tune, 10k new + ${replay.length} replay, 1 epoch`,
      'samples/s': result.samplesPerSecond,
      'vs cpu (pure JS)': `${seconds.toFixed(1)} s wall`,
    });
    figures.incrementalSeconds = Math.round(seconds * 10) / 10;
    figures.incrementalBackend = best;
    figures.incrementalValidationAuc = result.validation?.auc ?? null;
    return {
      title: 'Interest model training throughput (synthetic shop data, 384-d hashing vectors)',
      rows,
      figures,
      notes: [
        `model: ${JSON.stringify(architecture)}; batch ${hyperparameters.batchSize}, ${hyperparameters.negatives} negatives`,
        'tensorflow / tensorflow-gpu are optionalDependencies; they are absent unless their install could download libtensorflow',
        'samples/s = clicked impressions per second of training (forward, backward, Adam), one epoch',
      ],
    };
  },
};

export default benchmark;
