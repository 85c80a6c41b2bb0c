import 'reflect-metadata';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { parseFlags } from '../../../cli-command';
import { ConfigError, loadConfig } from '../../../config/config';
import { readEncoderOnnx, topLayerWeights } from '../../embedding/encoder-onnx';
import { EncoderStates } from '../../embedding/encoder-states';
import { encoderFolder } from '../../embedding/token-encoders';
import { TransformersTextEncoder } from '../../embedding/transformers-encoder';
import { writeSyntheticMind } from '../dataset/synthetic-mind';
import { TRAIN_BACKENDS, TrainBackendPreference } from '../model/backend';
import { resultTable, summary, tokenCostLines, writeReport } from './report';
import { FineTuneSource, runEval } from './run-eval';

const USAGE = `usage: npm run eval -- --data <MIND dir> | --synthetic [options]
  --data <dir>          MIND-format folder (news.tsv, train/behaviors.tsv, dev/behaviors.tsv)
  --synthetic           generate the project's synthetic data as MIND into .cache/synthetic-mind
  --quantized           int8 encoder model (default: EMBEDDING_QUANTIZED)
  --backend <name>      auto|${TRAIN_BACKENDS.join('|')} (default: TRAIN_BACKEND)
  --max-train <n>       seeded sample of at most n train impressions
  --epochs <n> --batch-size <n> --lr <x> --negatives <k> --max-history <n>
  --no-ablations        train only the full model
  --token-attention     also train the item tower over the encoder's token states (NRMS pooling)
  --max-tokens <n>      token states read per item (default 64)
  --encoder-top-layers <k[,k]>  also fine-tune the encoder's top k layers under the token tower
                        (one row per k; states after layer L − k cached like the vectors)
  --encoder-lr <x>      learning rate of those layers (default 1e-4)
  --incremental <n>     time a warm-started one-epoch run on the latest n train impressions
  --half-life-hours <x> popularity half-life of the serving features (default: ONLINE_POPULARITY_HALF_LIFE_HOURS)
  --reports <dir>       parent folder of the report (default reports)`;

/** The encoder's states under its top k layers, and those layers' weights, from the fp32 ONNX. */
async function fineTuneSource(
  folder: string,
  k: number,
  encoderId: string,
  threads: number,
): Promise<FineTuneSource> {
  const onnx = readEncoderOnnx(folder);
  const layer = onnx.shape.layers - k;
  const states = await EncoderStates.create(onnx, { layers: [layer], threads });
  return {
    states: {
      modelId: `${encoderId}@layer${layer}`,
      dimension: onnx.shape.hidden,
      encodeTokens: async (texts) => (await states.encode(texts))[0],
    },
    layers: topLayerWeights(onnx, k),
    heads: onnx.shape.heads,
    layerNormEps: onnx.shape.layerNormEps,
  };
}

function numberFlag(flags: Map<string, string | true>, name: string): number | undefined {
  const value = flags.get(name);
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value === true || !Number.isFinite(parsed)) throw new Error(`--${name} needs a number`);
  return parsed;
}

async function main(): Promise<void> {
  const { flags } = parseFlags(process.argv.slice(2));
  if (flags.has('help') || (!flags.has('data') && !flags.has('synthetic'))) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(flags.has('help') ? 0 : 2);
  }
  const config = loadConfig(process.env);
  let dataDir = String(flags.get('data') ?? '');
  if (flags.has('synthetic')) {
    dataDir = path.join('.cache', 'synthetic-mind');
    writeSyntheticMind(dataDir, { items: 300, users: 200, impressions: 150_000, seed: 1 });
  }
  const encoder = await TransformersTextEncoder.create({
    model: config.embedding.model,
    modelDir: config.embedding.modelDir,
    quantized: flags.has('quantized') || config.embedding.quantized,
    threads: config.embedding.threads,
    batchSize: config.embedding.batchSize,
    allowRemote: config.embedding.allowRemote,
  });
  const backend = String(flags.get('backend') ?? config.training.backend);
  if (backend !== 'auto' && !(TRAIN_BACKENDS as readonly string[]).includes(backend)) {
    throw new Error(`unknown --backend ${backend}`);
  }

  const bar = new SingleBar(
    {
      format: '{phase} [{bar}] {percentage}% | {detail}',
      stream: process.stderr,
      hideCursor: true,
      // Redirected (logs, CI): a line every 30 s instead of a redrawn bar.
      noTTYOutput: true,
      notTTYSchedule: 30_000,
    },
    undefined,
  );
  let barActive = false;
  const startBar = (phase: string) => {
    if (barActive) bar.stop();
    bar.start(1000, 0, { phase, detail: '' });
    barActive = true;
  };
  const stopBar = () => {
    if (barActive) bar.stop();
    barActive = false;
  };
  const log = (message: string) => {
    stopBar();
    process.stderr.write(`[eval] ${message}\n`);
  };
  const maxTrain = numberFlag(flags, 'max-train');
  const epochs = numberFlag(flags, 'epochs');
  // The synthetic set is small: smaller batches give Adam enough steps per epoch.
  const batchSize = numberFlag(flags, 'batch-size') ?? (flags.has('synthetic') ? 64 : undefined);
  const learningRate = numberFlag(flags, 'lr');
  const negatives = numberFlag(flags, 'negatives');
  const maxHistory = numberFlag(flags, 'max-history');
  const maxTokens = numberFlag(flags, 'max-tokens');
  const encoderLearningRate = numberFlag(flags, 'encoder-lr');
  const incremental = numberFlag(flags, 'incremental');
  const topLayers = flags.get('encoder-top-layers');
  const ks =
    topLayers === undefined
      ? []
      : String(topLayers)
          .split(',')
          .map((k) => {
            const parsed = Number(k);
            if (!Number.isInteger(parsed) || parsed < 1) {
              throw new Error(`--encoder-top-layers: ${k} is not a layer count of at least 1`);
            }
            return parsed;
          });
  const folder = encoderFolder(config.embedding);
  const started = Date.now();
  const result = await runEval({
    dataDir,
    encoder,
    ...(flags.has('token-attention') ? { tokenEncoder: encoder } : {}),
    ...(ks.length === 0
      ? {}
      : {
          fineTune: {
            ks,
            source: (k: number) =>
              fineTuneSource(folder, k, encoder.modelId, config.embedding.threads),
          },
        }),
    ...(incremental === undefined ? {} : { incrementalImpressions: incremental }),
    cacheDir: path.join('.cache', 'vectors'),
    backend: backend as TrainBackendPreference,
    ...(maxTrain === undefined ? {} : { maxTrainImpressions: maxTrain }),
    architecture: {
      ...(maxHistory === undefined ? {} : { maxHistory }),
      ...(maxTokens === undefined ? {} : { maxTokens }),
    },
    hyperparameters: {
      seed: config.training.seed,
      ...(epochs === undefined ? {} : { epochs }),
      ...(batchSize === undefined ? {} : { batchSize }),
      ...(learningRate === undefined ? {} : { learningRate }),
      ...(negatives === undefined ? {} : { negatives }),
      ...(encoderLearningRate === undefined ? {} : { encoderLearningRate }),
    },
    validationFraction: 0.05,
    popularityHalfLifeMs:
      (numberFlag(flags, 'half-life-hours') ?? config.online.popularityHalfLifeMs / 3_600_000) *
      3_600_000,
    ablations: !flags.has('no-ablations'),
    log,
    onEncode: (done, total) => {
      if (!barActive) startBar('encoding');
      bar.update(Math.round((done / total) * 1000), { detail: `${done}/${total} texts` });
      if (done === total) stopBar();
    },
    onTrainStart: (variant) => {
      startBar(`training ${variant}`);
    },
    onTrainProgress: (fraction, loss) => {
      bar.update(Math.round(fraction * 1000), { detail: `loss ${loss.toFixed(4)}` });
    },
    onEpoch: (variant, report) => {
      log(
        `${variant} epoch ${report.epoch}: loss ${report.loss.toFixed(4)}` +
          (report.validation === undefined
            ? ''
            : `, validation auc ${report.validation.auc.toFixed(4)} mrr ${report.validation.mrr.toFixed(4)}`) +
          `, ${report.samplesPerSecond.toFixed(0)} samples/s`,
      );
    },
  });
  stopBar();
  const seconds = (Date.now() - started) / 1000;
  const notes = [
    `wall time ${seconds.toFixed(0)} s on ${String((await import('node:os')).cpus().length)} cores`,
    ...(maxTrain === undefined ? [] : [`train impressions subsampled to at most ${maxTrain}`]),
  ];
  const dir = writeReport(String(flags.get('reports') ?? 'reports'), result, notes);
  process.stdout.write(`\n${resultTable(result)}\n\n`);
  if (result.tokens !== undefined) process.stdout.write(`${tokenCostLines(result.tokens)}\n\n`);
  process.stdout.write(`report: ${dir}\n`);
  process.stdout.write(`${JSON.stringify({ ...summary(result), report: dir, seconds })}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      error instanceof ConfigError
        ? `${error.message}\n`
        : `eval failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
