import { Random } from '../../synthetic/prng';
import { untrainedArtifact } from '../../../test/support/untrained-model';
import { fitServedCombiner } from './combiner-stage';
import { Impression, vectorsFromMap } from './dataset/dataset';
import { DEFAULT_ARCHITECTURE } from './model/architecture';
import { loadModel } from './model/artifact';
import { InterestScorer } from './model/interest-scorer';

const D = 8;
const ITEMS = 40;

/** An untrained model over random text vectors: its scores carry no sign of the rule below. */
function untrained() {
  const architecture = { ...DEFAULT_ARCHITECTURE, dimension: D, idEmbedding: false };
  const artifact = untrainedArtifact(architecture, 'fake:8', 'combiner-stage');
  const random = new Random('vectors');
  const vectors = vectorsFromMap(
    'fake:8',
    D,
    new Map(
      Array.from({ length: ITEMS }, (_, i) => [
        `i${i}`,
        Float32Array.from({ length: D }, () => random.next() - 0.5),
      ]),
    ),
  );
  return { scorer: InterestScorer.fromArtifact(loadModel(artifact)), vectors };
}

/** Logged slates of 10 whose clicked item is the one with the lowest logged price input. */
function slates(count: number): Impression[] {
  const random = new Random('slates');
  return Array.from({ length: count }, (_, s) => {
    const shown = [...Array(ITEMS).keys()]
      .sort(() => random.next() - 0.5)
      .slice(0, 10)
      .map((i) => `i${i}`);
    const price = shown.map(() => random.next());
    const cheapest = shown[price.indexOf(Math.min(...price))];
    return {
      id: `r${s}`,
      userId: `u${s % 7}`,
      time: s * 1000,
      history: [{ itemId: shown[0] === cheapest ? shown[1] : shown[0], time: Number.NaN }],
      clicked: [cheapest],
      notClicked: shown.filter((id) => id !== cheapest),
      served: Object.fromEntries(
        shown.map((id, p) => [id, { position: p + 1, inputs: [0.5, 0.05, 0.5, price[p]] }]),
      ),
    };
  });
}

describe('fitServedCombiner', () => {
  it('ships a combiner that beats the model alone on the judged half of held-out slates', async () => {
    const { scorer, vectors } = untrained();
    const stage = await fitServedCombiner(scorer, slates(200), vectors, 50);
    expect(stage.spec).toBeDefined();
    expect(stage.metrics.combinerShipped).toBe(1);
    expect(stage.metrics.combinerAuc).toBeGreaterThan(stage.metrics.combinerModelAuc + 0.2);
    expect(stage.spec?.fit.judgedSlates).toBe(100);
    expect(stage.note).toMatch(/ships$/);
  }, 60_000);

  it('ships none with too few clicked, logged slates, and says so', async () => {
    const { scorer, vectors } = untrained();
    const stage = await fitServedCombiner(scorer, slates(30), vectors, 50);
    expect(stage.spec).toBeUndefined();
    expect(stage.metrics).toEqual({ combinerSlates: 30 });
    expect(stage.note).toBe('30 clicked, logged slates in the held-out window; 50 needed');
  });
});
