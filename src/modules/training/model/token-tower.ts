import * as tf from '@tensorflow/tfjs';
import { BERT_LAYER_PARAMS } from '../../../common/bert-layer';
import type { TokenStates } from '../../../common/token-states';
import { artifactTopLayers, ModelArtifact, WeightName } from './artifact';
import type { BertLayerTensors } from './bert-layers';
import { groupTokens, poolTokenGroup } from './tf-model';

/** Items per forward batch: bounds the activations (items × tokens × 1,536 floats at most). */
const BATCH_ITEMS = 256;

/**
 * The text vectors a token-attention model's item tower pools: each item's token states through
 * the version's own fine-tuned encoder layers (if any) and its token attention, L2-normalised.
 * tfjs, in length-grouped batches: a fine-tuned layer costs what an encoder layer costs, far too
 * much for the per-item loop of InterestScorer. Items without token states are left out.
 */
export async function pooledTokenTexts(
  artifact: ModelArtifact,
  tokens: { get(itemId: string): TokenStates | undefined },
  itemIds: Iterable<string>,
): Promise<Map<string, Float32Array>> {
  const arch = artifact.manifest.architecture;
  if (!arch.tokenAttention) throw new Error('the model does not pool token states');
  const d = arch.dimension;
  const weight = (name: WeightName): tf.Tensor => {
    const stored = artifact.weights[name];
    if (stored === undefined) throw new Error(`model has no weight ${name}`);
    return tf.tensor(stored.data, [...stored.shape]);
  };
  const layers = artifactTopLayers(artifact).map(
    (layer) =>
      Object.fromEntries(
        BERT_LAYER_PARAMS.map((param) => [
          param,
          tf.tensor(layer[param].data, [...layer[param].shape]),
        ]),
      ) as BertLayerTensors,
  );
  const attention = [weight('tokens.w'), weight('tokens.b'), weight('tokens.q')] as const;
  const ids = [...new Set(itemIds)].filter((id) => tokens.get(id) !== undefined);
  const out = new Map<string, Float32Array>();
  try {
    for (let start = 0; start < ids.length; start += BATCH_ITEMS) {
      const batch = ids.slice(start, start + BATCH_ITEMS);
      const { groups } = groupTokens(
        batch.map((id) => tokens.get(id)),
        arch.maxTokens,
        d,
      );
      for (const group of groups) {
        const pooled = tf.tidy(() => poolTokenGroup(group, arch, layers, attention));
        const values = await pooled.data<'float32'>();
        pooled.dispose();
        group.positions.forEach((position, row) => {
          out.set(batch[position], values.slice(row * d, (row + 1) * d));
        });
      }
      // Let timers and signals through between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    tf.dispose([...layers.flatMap((layer) => Object.values(layer)), ...attention]);
  }
  return out;
}
