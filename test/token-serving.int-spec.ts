/**
 * @jest-environment ./test/support/shared-realm-environment.ts
 */
// onnxruntime-node hands back typed arrays of the main realm (see that file).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { TokenStates } from '../src/common/token-states';
import { readEncoderOnnx, topLayerWeights } from '../src/modules/embedding/encoder-onnx';
import { EncoderStates } from '../src/modules/embedding/encoder-states';
import { EmbeddingService } from '../src/modules/embedding/embedding.service';
import { itemText } from '../src/modules/embedding/item-text';
import { ModelSwapService } from '../src/modules/serving/model-swap.service';
import { ServingService } from '../src/modules/serving/serving.service';
import { DEFAULT_ARCHITECTURE } from '../src/modules/training/model/architecture';
import { loadModel } from '../src/modules/training/model/artifact';
import { InterestScorer } from '../src/modules/training/model/interest-scorer';
import { pooledTokenTexts } from '../src/modules/training/model/token-tower';
import { generateCatalog } from '../src/synthetic';
import { startApp } from './support/app';
import { nudgedLayers } from './support/nudged-layers';
import { eventually } from './support/poll';
import { insertItems, insertItemVectors } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';
import { activateArtifact, untrainedArtifact } from './support/untrained-model';

/**
 * A version whose item tower pools token states through its own fine-tuned top encoder layer,
 * served end to end: activation encodes the catalog's texts through the version's layers (ONNX
 * Runtime, the layers written into the graph) and a new text is encoded the same way. Both must
 * equal what training computes for the same weights (tfjs, token-tower.ts). Needs the model
 * folder (`scripts/fetch-model.sh`, which `npm test` runs); skipped with a message when absent.
 */
const FOLDER = path.resolve(__dirname, '..', 'models', 'all-MiniLM-L6-v2');
const present = existsSync(path.join(FOLDER, 'onnx', 'model.onnx'));
if (!present) {
  process.stderr.write(`SKIPPED token serving tests: ${FOLDER} is missing\n`);
}
const describeModel = present ? describe : describe.skip;

const catalog = generateCatalog({ items: 40, seed: 'token-serving', idPrefix: 'tok-' });
const D = 384;
const architecture = {
  ...DEFAULT_ARCHITECTURE,
  dimension: D,
  tokenAttention: true,
  encoderTopLayers: 1,
  maxTokens: 24,
  idEmbedding: false,
};

describeModel('a version with fine-tuned encoder layers, served (real stack, real encoder)', () => {
  let context: TestContext;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext();
    await context.createServiceTopics();
    await insertItems(
      context.config.postgres.url,
      catalog.items.map((item) => ({
        itemId: item.itemId,
        title: item.title,
        category: item.category,
      })),
    );
    app = await startApp(context.config, { role: 'api' });
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it('scores the catalog and new texts through its own layer, as training computes them', async () => {
    const encoderId = app.get(EmbeddingService, { strict: false }).encoderId;
    // The stored (mean-pooled) vectors only say which items are embedded: noise must not matter.
    const ids = catalog.items.map((item) => item.itemId);
    await insertItemVectors(context.config.postgres.url, encoderId, {
      ids,
      dimension: D,
      matrix: Float32Array.from({ length: ids.length * D }, (_, i) => Math.sin(i)),
    });
    const onnx = readEncoderOnnx(FOLDER);
    const layers = nudgedLayers(topLayerWeights(onnx, 1), 7);
    const bytes = untrainedArtifact(architecture, encoderId, 'token-serving', layers);
    const versionId = await activateArtifact(app, encoderId, bytes);
    const serving = app.get(ServingService, { strict: false });
    const served = (
      await eventually(() => serving.current().served, 120_000, {
        what: 'the token version served',
        until: (current) => current?.versionId === versionId,
      })
    ).value;
    if (served === undefined) throw new Error('not served');

    // Training's side: the states after layer 5 (inputs cut at the version's token limit, as
    // the service cuts them), through the version's layer in tfjs, pooled, then the tower.
    const fresh = { itemId: 'tok-new', text: 'Waterproof hiking boots. Category: outdoor.' };
    const texts = new Map(
      catalog.items.map((item) => [
        item.itemId,
        itemText({ title: item.title, category: item.category }),
      ]),
    );
    texts.set(fresh.itemId, fresh.text);
    const states = await EncoderStates.create(onnx, {
      layers: [5],
      threads: 1,
      maxTokens: architecture.maxTokens,
    });
    const [encoded] = await states.encode([...texts.values()]);
    await states.dispose();
    const tokens = new Map<string, TokenStates>([...texts.keys()].map((id, i) => [id, encoded[i]]));
    const artifact = loadModel(bytes);
    const pooled = await pooledTokenTexts(artifact, tokens, texts.keys());
    const scorer = InterestScorer.fromArtifact(artifact);
    const expected = (id: string) => scorer.itemVector(pooled.get(id) ?? new Float32Array(D), id);
    const maxDifference = (a: Float32Array, b: Float32Array) =>
      Math.max(...Array.from(a, (value, i) => Math.abs(value - b[i])));

    const { items } = serving.current();
    const catalogError = Math.max(
      ...ids.map((id) => maxDifference(served.vectors.vector(items.row(id)), expected(id))),
    );
    const [onDemand] = await served.model.encodeItems([fresh]);
    const onDemandError = maxDifference(onDemand, expected(fresh.itemId));
    process.stderr.write(
      `token serving: catalog max abs ${catalogError.toExponential(2)}, new text ${onDemandError.toExponential(2)}\n`,
    );
    expect(catalogError).toBeLessThan(1e-4);
    // Served from the rows alone: the load's own copy of the vectors was let go.
    expect(app.get(ModelSwapService, { strict: false }).current()?.catalog.ids).toEqual([]);
    expect(onDemandError).toBeLessThan(1e-4);
  });
});
