import { Random } from '../../synthetic/prng';
import { DEFAULT_ARCHITECTURE, ModelArchitecture } from '../training/model/architecture';
import { loadModel, serializeModel, WeightName } from '../training/model/artifact';
import { initialWeights } from '../training/model/init-weights';
import { InterestScorer } from '../training/model/interest-scorer';
import { adaptCatalog, catalogBackend, stopCatalogThread } from './catalog-adapter';

function randomModel(arch: ModelArchitecture, warmItems: string[]): Buffer {
  const random = new Random('adapter-spec');
  const weights = initialWeights(arch, warmItems.length, 1) as Record<
    WeightName,
    { shape: number[]; data: Float32Array }
  >;
  // Fresh weights zero the adapter output and ID table; a trained model does not.
  for (const tensor of Object.values(weights)) {
    for (let i = 0; i < tensor.data.length; i++) tensor.data[i] = (random.next() - 0.5) * 0.2;
  }
  return serializeModel(
    {
      architecture: arch,
      encoderId: 'spec',
      backend: 'cpu',
      hyperparameters: {},
      metrics: {},
      itemClicks: Object.fromEntries(warmItems.map((id, i) => [id, i + 2])),
      warmItems,
      createdAt: '2025-01-01T00:00:00Z',
    },
    weights,
  );
}

describe('adaptCatalog', () => {
  const arch: ModelArchitecture = { ...DEFAULT_ARCHITECTURE, dimension: 48, adapterHidden: 16 };
  // More rows than one of the thread's blocks (4,096), warm items in the first and the last block.
  const ids = Array.from({ length: 4200 }, (_, i) => `item-${String(i)}`);
  const random = new Random('text');
  const text = {
    ids,
    dimension: arch.dimension,
    matrix: Float32Array.from({ length: ids.length * arch.dimension }, () => random.next() - 0.5),
  };

  afterAll(stopCatalogThread);

  it.each([
    ['adapter and ID embeddings', arch, undefined],
    ['no adapter', { ...arch, adapterHidden: 0 }, undefined],
    // A backend whose tensors are not in WebAssembly memory: the values are read with dataSync().
    ['adapter and ID embeddings, cpu backend', arch, 'cpu' as const],
  ])(
    'computes the scorer’s item tower for every item (%s)',
    async (_name, architecture, backend) => {
      const artifact = loadModel(randomModel(architecture, ['item-3', 'item-4097', 'item-4199']));
      const scorer = InterestScorer.fromArtifact(artifact);
      const matrix = new Float32Array(new SharedArrayBuffer(text.matrix.byteLength));
      const bias = await adaptCatalog(artifact, scorer, text, matrix, backend);
      if (backend !== undefined) expect(await catalogBackend(backend)).toBe(backend);
      const d = architecture.dimension;
      let maxDiff = 0;
      ids.forEach((id, row) => {
        const expected = scorer.itemVector(text.matrix.subarray(row * d, (row + 1) * d), id);
        for (let i = 0; i < d; i++) {
          maxDiff = Math.max(maxDiff, Math.abs((matrix[row * d + i] ?? 0) - (expected[i] ?? 0)));
        }
        expect(bias[row]).toBeCloseTo(scorer.itemBias(id), 6);
      });
      expect(maxDiff).toBeLessThan(1e-4);
      // The ID embedding made a difference for warm items (the test would pass vacuously otherwise).
      const plain = scorer.itemVector(text.matrix.subarray(3 * d, 4 * d));
      expect(Math.abs(matrix[3 * d] - plain[0])).toBeGreaterThan(1e-4);
    },
  );
});
