import {
  BERT_LAYER_PARAMS,
  BertLayerParam,
  BertLayerWeights,
  BertTensor,
} from '../../../common/bert-layer';
import { DEFAULT_ARCHITECTURE } from './architecture';
import { untrainedArtifact } from '../../../../test/support/untrained-model';
import { loadModel } from './artifact';
import { warmStartWeights } from './init-weights';

const D = 4;

/** A layer whose every value is `marker` (shapes do not matter to the warm start). */
const layerOf = (marker: number): BertLayerWeights =>
  Object.fromEntries(
    BERT_LAYER_PARAMS.map((param): [BertLayerParam, BertTensor] => [
      param,
      { shape: [2], data: Float32Array.of(marker, marker) },
    ]),
  ) as BertLayerWeights;

const architecture = (k: number) => ({
  ...DEFAULT_ARCHITECTURE,
  dimension: D,
  tokenAttention: true,
  encoderTopLayers: k,
  idEmbedding: false,
});

function parentWith(k: number, layers: BertLayerWeights[]) {
  return loadModel(untrainedArtifact(architecture(k), 'enc', 'parent', layers));
}

describe('warmStartWeights with fine-tuned encoder layers', () => {
  const first = (weights: ReturnType<typeof warmStartWeights>, name: `top.${number}.query.bias`) =>
    weights[name]?.data[0];

  it("continues the parent's layers, each at the encoder layer it belongs to", () => {
    // The parent fine-tuned layer 5 (its top.0); the child fine-tunes layers 4 and 5.
    const parent = parentWith(1, [layerOf(55)]);
    const child = warmStartWeights(parent, architecture(2), [], 'child', [layerOf(4), layerOf(5)]);
    expect(first(child, 'top.0.query.bias')).toBe(4);
    expect(first(child, 'top.1.query.bias')).toBe(55);
    // Fewer layers than the parent: the child's top.0 is the parent's top.1.
    const deep = parentWith(2, [layerOf(44), layerOf(55)]);
    const shallow = warmStartWeights(deep, architecture(1), [], 'child', [layerOf(5)]);
    expect(first(shallow, 'top.0.query.bias')).toBe(55);
    expect(shallow['top.1.query.bias']).toBeUndefined();
    // Same k, no pretrained layers given: the parent's, as they are.
    expect(first(warmStartWeights(deep, architecture(2), [], 'child'), 'top.0.query.bias')).toBe(
      44,
    );
  });

  it('names the layer a parent cannot provide when no pretrained layers are given', () => {
    const parent = parentWith(1, [layerOf(55)]);
    expect(() => warmStartWeights(parent, architecture(2), [], 'child')).toThrow(
      /the parent fine-tunes 1 encoder layers, not 2: the pretrained layers are needed/,
    );
  });
});
