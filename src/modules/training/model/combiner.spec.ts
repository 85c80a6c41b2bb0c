import { Random } from '../../../synthetic/prng';
import { CombinerSpec, runnableCombiner, shapeValue, validateCombiner } from './combiner';
import { CombinerSlate, DEFAULT_COMBINER_FIT, fitCombiner } from './combiner-fit';

const flat = { knots: [0], values: [0] };

describe('shape functions', () => {
  const shape = { knots: [0, 1, 3], values: [0, 2, -2] };

  it('interpolates between knots and is flat beyond the ends', () => {
    expect(shapeValue(shape, 0.5)).toBeCloseTo(1, 12);
    expect(shapeValue(shape, 2)).toBeCloseTo(0, 12);
    expect(shapeValue(shape, -5)).toBe(0);
    expect(shapeValue(shape, 9)).toBe(-2);
    expect(shapeValue(flat, 7)).toBe(0);
  });

  it('refuses a spec serving could not run, naming the input', () => {
    const spec: CombinerSpec = {
      kind: 'additive',
      shapes: { model: shape, popularity: flat, ctr: flat, recency: flat, price: flat },
      missingModel: 0,
      positionBias: [],
      fit: {},
    };
    expect(runnableCombiner(spec).contribution(0, 0.5)).toBeCloseTo(1, 12);
    expect(() =>
      validateCombiner({
        ...spec,
        shapes: { ...spec.shapes, ctr: { knots: [1, 1], values: [0, 0] } },
      }),
    ).toThrow('combiner.shapes.ctr.knots: must increase strictly');
    expect(() =>
      validateCombiner({ ...spec, shapes: { ...spec.shapes, price: { knots: [0], values: [] } } }),
    ).toThrow('combiner.shapes.price');
  });
});

/**
 * Slates of 10 whose click follows a known rule: likelier for a high model score and a low
 * price, and strongly for the top position, which is drawn independently of the features.
 */
function ruleSlates(count: number, seed: string): CombinerSlate[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => {
    const n = 10;
    const inputs = new Float64Array(n * 5);
    const utility: number[] = [];
    for (let i = 0; i < n; i++) {
      const model = random.next() * 4 - 2;
      const price = random.next();
      inputs.set([model, random.next(), random.next(), random.next(), price], i * 5);
      utility.push(model - 3 * price + (i === 0 ? 2 : 0) + -Math.log(-Math.log(random.next())));
    }
    const clicked = new Uint8Array(n);
    clicked[utility.indexOf(Math.max(...utility))] = 1;
    return { inputs, positions: Int32Array.from({ length: n }, (_, i) => i + 1), clicked };
  });
}

describe('fitCombiner', () => {
  it('recovers the rule: model shape rising, price shape falling, position soaked up', async () => {
    const { spec } = await fitCombiner(ruleSlates(600, 'rule'), {
      ...DEFAULT_COMBINER_FIT,
      epochs: 40,
    });
    const combiner = runnableCombiner(spec);
    const slope = (input: number) =>
      combiner.contribution(input, 0.9) - combiner.contribution(input, 0.1);
    // Logit gap over [0.1, 0.9]: model +0.8, price -2.4; the noise features about 0.
    expect(slope(0)).toBeGreaterThan(0.4);
    expect(slope(4)).toBeLessThan(-1.5);
    for (const noise of [1, 2, 3]) expect(Math.abs(slope(noise))).toBeLessThan(0.5);
    // Position 1 earns clicks for its own sake: the position term learns it, not the features.
    expect(spec.positionBias[0] - spec.positionBias[5]).toBeGreaterThan(1);
  }, 60_000);
});
