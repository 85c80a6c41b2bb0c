import { DEFAULT_ARCHITECTURE } from '../training/model/architecture';
import { loadModel, serializeModel } from '../training/model/artifact';
import { initialWeights } from '../training/model/init-weights';
import { InterestScorer } from '../training/model/interest-scorer';
import { ArtifactInterestModel } from './interest-model';

const D = 8;
const architecture = {
  ...DEFAULT_ARCHITECTURE,
  dimension: D,
  idEmbedding: false,
  popularity: true,
};

function artifact(): Buffer {
  const weights = initialWeights(architecture, 0, 'spec');
  const popularity = Float32Array.of(0.5);
  return serializeModel(
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
  );
}

const vector = (seed: number) => Float32Array.from({ length: D }, (_, i) => Math.sin(seed + i));

describe('ArtifactInterestModel', () => {
  const bytes = artifact();
  const model = InterestScorer.fromArtifact(bytes);
  const encoder = {
    encoderId: 'enc',
    encodeOnDemand: (text: string) => Promise.resolve(vector(text.length)),
  };
  const served = (onDemand = encoder) =>
    new ArtifactInterestModel('42', loadModel(bytes), onDemand);

  it('runs the item tower over text vectors, with the bias, and exposes the scale', async () => {
    const text = { ids: ['a', 'b'], dimension: D, matrix: new Float32Array(2 * D) };
    text.matrix.set(vector(1), 0);
    text.matrix.set(vector(2), D);
    const { matrix, bias } = await served().itemTower(text);
    const expected = model.itemVector(vector(2), 'b');
    Array.from(matrix.subarray(D, 2 * D)).forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i], 4);
    });
    expect(bias[0]).toBeCloseTo(0.5 * Math.log1p(9), 5);
    expect(served().versionId).toBe('42');
    expect(served().scale).toBeCloseTo(model.scale, 6);
    expect(served().itemBias('x')).toBeCloseTo(0.5 * Math.log1p(3), 5);
  });

  it('runs the catalog into WebAssembly memory serving can take over, the same vectors', async () => {
    const text = { ids: ['a', 'b', 'c'], dimension: D, matrix: new Float32Array(3 * D) };
    [1, 2, 3].forEach((seed, row) => {
      text.matrix.set(vector(seed), row * D);
    });
    const tower = await served().itemTower(text);
    const { memory, bias } = await served().catalogTower(text);
    expect(memory.rows).toBe(3);
    expect(Array.from(memory.matrix)).toEqual(Array.from(tower.matrix));
    expect(Array.from(bias)).toEqual(Array.from(tower.bias));
  });

  it('refuses text vectors of another size', async () => {
    const text = { ids: ['a'], dimension: D + 1, matrix: new Float32Array(D + 1) };
    await expect(served().itemTower(text)).rejects.toThrow(/values, the model expects/);
  });

  it('pools history with the attention of the model, ages from the timestamps', () => {
    const now = Date.now();
    const history = [
      { vector: vector(1), type: 'click', ts: now - 60_000 },
      { vector: vector(2), type: 'click', ts: now - 7_200_000 },
    ];
    const expected = model.userVector(
      history.map((entry) => entry.vector),
      [60_000, 7_200_000],
    );
    const actual = served().userVector(history);
    actual.forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i], 3);
    });
  });

  it("runs on-demand text vectors through the model's item tower", async () => {
    const [encoded] = await served().encodeItems([{ itemId: 'new', text: 'abc' }]);
    expect(Array.from(encoded)).toEqual(Array.from(model.itemVector(vector(3))));
  });

  it('refuses text vectors of another encoder', async () => {
    const other = served({ ...encoder, encoderId: 'other' });
    await expect(other.encodeItems([{ itemId: 'new', text: 'abc' }])).rejects.toThrow(/other/);
  });

  describe('a token-attention version', () => {
    const tokenArchitecture = { ...architecture, tokenAttention: true };
    const tokenModel = loadModel(
      serializeModel(
        { ...loadModel(bytes).manifest, architecture: tokenArchitecture },
        initialWeights(tokenArchitecture, 0, 'spec'),
      ),
    );
    const tokenScorer = InterestScorer.fromArtifact(tokenModel);
    /** Two tokens per text, from its length: a fake of the version's encoder. */
    const statesOf = (text: string) => ({
      count: 2,
      data: Float32Array.from({ length: 2 * D }, (_, i) => Math.cos(text.length + i)),
    });
    const texts = new Map([
      ['a', 'first item'],
      ['b', 'second, longer item'],
    ]);
    const source = {
      encoder: {
        encode: (list: readonly string[]) => Promise.resolve(list.map(statesOf)),
        encodeOnDemand: (text: string) => Promise.resolve(statesOf(text)),
      },
      texts: (ids: readonly string[]) =>
        Promise.resolve(
          new Map(
            ids.flatMap((id) => {
              const text = texts.get(id);
              return text === undefined ? [] : [[id, text] as const];
            }),
          ),
        ),
    };
    const expected = (text: string, id?: string) =>
      tokenScorer.itemVector(tokenScorer.tokenPooledText(statesOf(text)), id);

    it('is refused without a token encoder', () => {
      expect(() => new ArtifactInterestModel('43', tokenModel, encoder)).toThrow(/token encoder/);
    });

    it("pools its items' token states, not their stored vectors, for the catalog and new texts", async () => {
      const served = new ArtifactInterestModel('43', tokenModel, encoder, source);
      const stored = {
        ids: ['a', 'b', 'gone'],
        dimension: D,
        matrix: Float32Array.from({ length: 3 * D }, () => 1),
      };
      const { matrix } = await served.itemTower(stored);
      Array.from(matrix.subarray(D, 2 * D)).forEach((value, i) => {
        expect(value).toBeCloseTo(expected('second, longer item', 'b')[i], 5);
      });
      // An item whose text is gone (deleted since) gets no pooled text.
      expect(Array.from(matrix.subarray(2 * D))).toEqual(
        Array.from(tokenScorer.itemVector(new Float32Array(D))),
      );
      const [encoded] = await served.encodeItems([{ itemId: 'new', text: 'abc' }]);
      expect(Array.from(encoded)).toEqual(Array.from(expected('abc', 'new')));
    });
  });

  it('loads artifacts written before token attention existed as encoder-pooled', () => {
    const older = Object.fromEntries(
      Object.entries(architecture).filter(([key]) => !/^(tokenAttention|maxTokens)/.test(key)),
    ) as unknown as typeof architecture;
    const manifest = { ...loadModel(bytes).manifest, architecture: older };
    const loaded = loadModel(serializeModel(manifest, loadModel(bytes).weights));
    expect(loaded.manifest.architecture).toEqual(architecture);
    expect(() => new ArtifactInterestModel('44', loaded, encoder)).not.toThrow();
  });
});
