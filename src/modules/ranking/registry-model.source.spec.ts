import { DEFAULT_ARCHITECTURE } from '../training/model/architecture';
import { serializeModel } from '../training/model/artifact';
import { initialWeights } from '../training/model/init-weights';
import { InterestScorer } from '../training/model/interest-scorer';
import { interestServingModel } from './registry-model.source';

const D = 8;
const architecture = {
  ...DEFAULT_ARCHITECTURE,
  dimension: D,
  idEmbedding: false,
  popularity: true,
};

function scorer(): InterestScorer {
  const weights = initialWeights(architecture, 0, 'spec');
  const popularity = Float32Array.of(0.5);
  return InterestScorer.fromArtifact(
    serializeModel(
      {
        architecture,
        encoderId: 'enc',
        backend: 'cpu',
        hyperparameters: {},
        metrics: {},
        itemClicks: { a: 9, x: 3 },
        warmItems: [],
        createdAt: new Date(0).toISOString(),
      },
      { ...weights, 'score.popularity': { shape: [1], data: popularity } },
    ),
  );
}

const vector = (seed: number) => Float32Array.from({ length: D }, (_, i) => Math.sin(seed + i));

describe('interestServingModel', () => {
  const model = scorer();
  const loaded = { scorer: model, catalog: model.catalog(['a', 'b'], [vector(1), vector(2)]) };
  const encoder = {
    encoderId: 'enc',
    encodeOnDemand: (text: string) => Promise.resolve(vector(text.length)),
  };

  it('exposes the catalog with its bias and the scorer scale', () => {
    const served = interestServingModel('42', loaded, encoder);
    expect(served.versionId).toBe('42');
    expect(served.scale).toBeCloseTo(model.scale, 6);
    expect(served.catalog.index.get('b')).toBe(1);
    expect(served.catalog.bias?.[0]).toBeCloseTo(0.5 * Math.log1p(9), 5);
    expect(served.itemBias('x')).toBeCloseTo(0.5 * Math.log1p(3), 5);
  });

  it('pools history with the attention of the model, ages from the timestamps', () => {
    const served = interestServingModel('42', loaded, encoder);
    const now = Date.now();
    const history = [
      { vector: vector(1), type: 'click', ts: now - 60_000 },
      { vector: vector(2), type: 'click', ts: now - 7_200_000 },
    ];
    const expected = model.userVector(
      history.map((entry) => entry.vector),
      [60_000, 7_200_000],
    );
    const actual = served.userVector(history);
    actual.forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i], 3);
    });
  });

  it("runs on-demand text vectors through the model's item tower", async () => {
    const served = interestServingModel('42', loaded, encoder);
    const [encoded] = await served.encodeItems([{ itemId: 'new', text: 'abc' }]);
    expect(Array.from(encoded)).toEqual(Array.from(model.itemVector(vector(3))));
  });

  it('refuses text vectors of another encoder', async () => {
    const served = interestServingModel('42', loaded, { ...encoder, encoderId: 'other' });
    await expect(served.encodeItems([{ itemId: 'new', text: 'abc' }])).rejects.toThrow(/other/);
  });
});
