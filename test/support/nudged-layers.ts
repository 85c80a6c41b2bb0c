import type { BertLayerWeights } from '../../src/common/bert-layer';

/**
 * Encoder layers a fine-tuning run could have produced: every value of `layers` moved by up to
 * ±5 %, seeded, so a test can tell a version's own layers from the pretrained ones.
 */
export function nudgedLayers(
  layers: readonly BertLayerWeights[],
  seed: number,
): BertLayerWeights[] {
  let state = seed;
  return layers.map(
    (layer) =>
      Object.fromEntries(
        Object.entries(layer).map(([param, tensor]) => [
          param,
          {
            shape: tensor.shape,
            data: tensor.data.map((value) => {
              state = (state * 1103515245 + 12345) % 2 ** 31;
              return value * (1 + 0.1 * (state / 2 ** 31 - 0.5));
            }),
          },
        ]),
      ) as BertLayerWeights,
  );
}
