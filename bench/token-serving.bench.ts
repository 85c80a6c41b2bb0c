import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config';
import { readEncoderOnnx, topLayerWeights } from '../src/modules/embedding/encoder-onnx';
import { itemText } from '../src/modules/embedding/item-text';
import { encoderFolder, TokenEncoders } from '../src/modules/embedding/token-encoders';
import { TransformersTextEncoder } from '../src/modules/embedding/transformers-encoder';
import { ArtifactInterestModel } from '../src/modules/serving/interest-model';
import {
  DEFAULT_ARCHITECTURE,
  ModelArchitecture,
} from '../src/modules/training/model/architecture';
import { loadModel } from '../src/modules/training/model/artifact';
import { generateCatalog } from '../src/synthetic';
import { untrainedArtifact } from '../test/support/untrained-model';
import { Benchmark, integerFlag, progress } from './lib/harness';

const D = 384;

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

/**
 * The serving cost of a version's item tower (issue #19): encoding one new item, and the catalog
 * pass at activation, for today's tower over the stored mean-pooled vector and for the token
 * towers (k = 0: the pretrained encoder's token states; k = 1: the version's own top layer
 * written into the ONNX graph). The same ArtifactInterestModel the api runs, on synthetic texts.
 */
const benchmark: Benchmark = {
  description:
    'serving a token-attention version (issue #19): one new item encoded, and the catalog pass ' +
    'at activation, vs the pooled-vector tower of today',
  async run(args) {
    const catalogSize = integerFlag(args, 'items', 512, 8);
    const singles = integerFlag(args, 'singles', 40, 4);
    const config = loadConfig(process.env);
    const folder = encoderFolder(config.embedding);
    if (!existsSync(path.join(folder, 'onnx', 'model.onnx'))) {
      throw new Error(`${folder} is missing: run scripts/fetch-model.sh`);
    }
    const catalog = generateCatalog({ items: catalogSize + singles, seed: 'token-serving-bench' });
    const texts = catalog.items.map((item) => itemText(item));
    const ids = catalog.items.map((item) => item.itemId);
    const textOf = new Map(ids.map((id, i) => [id, texts[i]]));
    const pooledEncoder = await TransformersTextEncoder.create({
      model: config.embedding.model,
      modelDir: config.embedding.modelDir,
      quantized: config.embedding.quantized,
      threads: config.embedding.threads,
      batchSize: config.embedding.batchSize,
      allowRemote: false,
    });
    const onDemand = {
      encoderId: pooledEncoder.modelId,
      encodeOnDemand: async (text: string) => (await pooledEncoder.encode([text]))[0],
    };
    const tokenEncoders = new TokenEncoders(config);
    const onnx = readEncoderOnnx(folder);
    progress(
      `load average ${loadavg()
        .map((v) => v.toFixed(1))
        .join(' ')} before the run`,
    );

    const variants: { name: string; architecture: ModelArchitecture }[] = [
      { name: 'pooled vector + adapter (today)', architecture: DEFAULT_ARCHITECTURE },
      {
        name: 'token attention, k=0',
        architecture: { ...DEFAULT_ARCHITECTURE, tokenAttention: true },
      },
      {
        name: 'token attention + own top layer, k=1',
        architecture: { ...DEFAULT_ARCHITECTURE, tokenAttention: true, encoderTopLayers: 1 },
      },
    ];
    const rows: Record<string, string | number>[] = [];
    const figures: Record<string, unknown> = {
      items: catalogSize,
      singles,
      threads: config.embedding.threads,
      encoder: pooledEncoder.modelId,
    };
    let reference: { singleMs: number } | undefined;
    for (const [index, variant] of variants.entries()) {
      const arch = { ...variant.architecture, idEmbedding: false };
      const layers = topLayerWeights(onnx, arch.encoderTopLayers);
      const artifact = loadModel(untrainedArtifact(arch, pooledEncoder.modelId, 'bench', layers));
      const model = new ArtifactInterestModel(
        String(index + 1),
        artifact,
        onDemand,
        arch.tokenAttention
          ? {
              encoder: tokenEncoders.forLayers(String(index + 1), layers, arch.maxTokens),
              texts: (wanted) =>
                Promise.resolve(new Map(wanted.map((id) => [id, textOf.get(id) ?? '']))),
            }
          : undefined,
      );
      const catalogIds = ids.slice(0, catalogSize);
      progress(`${variant.name}: catalog pass over ${catalogSize} items`);
      // Today's pass reads stored vectors, encoded once at ingest: count that encoding apart.
      let ingestMs = 0;
      const stored = new Float32Array(catalogSize * D);
      if (!arch.tokenAttention) {
        const started = performance.now();
        const vectors = await pooledEncoder.encode(catalogIds.map((id) => textOf.get(id) ?? ''));
        ingestMs = performance.now() - started;
        vectors.forEach((vector, row) => {
          stored.set(vector, row * D);
        });
      }
      await model.encodeItems([{ itemId: 'warm-up', text: texts[0] }]);
      const passStarted = performance.now();
      await model.itemTower({ ids: catalogIds, dimension: D, matrix: stored });
      const passMs = performance.now() - passStarted;
      progress(`${variant.name}: ${singles} new items, one at a time`);
      const times: number[] = [];
      for (let i = 0; i < singles; i++) {
        const started = performance.now();
        await model.encodeItems([{ itemId: ids[catalogSize + i], text: texts[catalogSize + i] }]);
        times.push(performance.now() - started);
      }
      const singleMs = percentile(times, 0.5);
      reference ??= { singleMs };
      rows.push({
        'item tower': variant.name,
        'one new item p50 ms': singleMs,
        'p90 ms': percentile(times, 0.9),
        'vs today': singleMs / reference.singleMs,
        'catalog pass at activation, items/s': catalogSize / (passMs / 1000),
        'encoding at ingest (once per text), items/s': arch.tokenAttention
          ? '-'
          : catalogSize / (ingestMs / 1000),
        's per 50k items at activation': (passMs / catalogSize) * 50,
      });
      figures[variant.name] = {
        singleP50Ms: singleMs,
        passItemsPerSecond: catalogSize / (passMs / 1000),
        ...(arch.tokenAttention ? {} : { ingestItemsPerSecond: catalogSize / (ingestMs / 1000) }),
      };
    }
    await tokenEncoders.onApplicationShutdown();
    await pooledEncoder.dispose();
    return {
      title: `Serving a version's item tower: ${catalogSize} synthetic items, ${config.embedding.threads} ONNX thread(s), pooled encoder ${pooledEncoder.modelId}, token encoder fp32`,
      rows,
      figures,
      notes: [
        `load average after the run ${loadavg()
          .map((v) => v.toFixed(1))
          .join(' ')} (the machine is shared)`,
        "today's catalog pass reads the vectors encoded at ingest (shared by every version); a token tower encodes every text again per version, at activation",
      ],
    };
  },
};

export default benchmark;
