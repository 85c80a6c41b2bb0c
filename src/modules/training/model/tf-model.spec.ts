import * as tf from '@tensorflow/tfjs';
import { Random } from '../../../synthetic/prng';
import { tokenAttentionPool } from './tf-model';

const D = 8;
const A = 4;

function randomTensor(random: Random, shape: number[], scale = 1): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => (random.next() - 0.5) * 2 * scale),
    shape,
  );
}

describe('token attention pooling', () => {
  beforeAll(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
  });

  // Two items over 5 token slots: the first has 3 real tokens, the second all 5.
  const mask = () => tf.tensor2d([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], [2, 5]);

  it('gives padded tokens zero weight, so their values do not matter', () => {
    const random = new Random('mask');
    const states = randomTensor(random, [2, 5, D], 2) as tf.Tensor3D;
    const [w, b, q] = [
      randomTensor(random, [D, A]),
      randomTensor(random, [A]),
      randomTensor(random, [A]),
    ];
    const { pooled, weights } = tokenAttentionPool(states, mask(), w, b, q);
    expect(pooled.shape).toEqual([2, D]);
    expect(weights.shape).toEqual([2, 5]);
    const a = weights.arraySync();
    expect(a[0][3]).toBe(0);
    expect(a[0][4]).toBe(0);
    a.forEach((row) => {
      expect(row.reduce((sum, x) => sum + x, 0)).toBeCloseTo(1, 5);
    });
    // The second item's weights differ between tokens: the check below is not about uniform weights.
    expect(Math.max(...a[1]) - Math.min(...a[1])).toBeGreaterThan(0.01);

    // Garbage in the padded slots of item 0 leaves both outputs unchanged.
    const data = states.arraySync();
    data[0][3] = data[0][3].map(() => 1e3);
    data[0][4] = data[0][4].map(() => -7);
    const again = tokenAttentionPool(tf.tensor3d(data), mask(), w, b, q).pooled.arraySync();
    const first = pooled.arraySync();
    for (let i = 0; i < D; i++) expect(again[0][i]).toBeCloseTo(first[0][i], 6);
    // And each pooled vector is unit length.
    first.forEach((v) => {
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    });
  });

  it('with q = 0 is the encoder pooling: the normalised mean of the real tokens', () => {
    const random = new Random('mean');
    const states = randomTensor(random, [2, 5, D], 2) as tf.Tensor3D;
    const { pooled } = tokenAttentionPool(
      states,
      mask(),
      randomTensor(random, [D, A]),
      randomTensor(random, [A]),
      tf.zeros([A]),
    );
    const data = states.arraySync();
    const counts = [3, 5];
    pooled.arraySync().forEach((vector, item) => {
      const mean = Array.from({ length: D }, (_, i) =>
        data[item].slice(0, counts[item]).reduce((sum, token) => sum + token[i], 0),
      );
      const norm = Math.hypot(...mean);
      vector.forEach((x, i) => {
        expect(x).toBeCloseTo(mean[i] / norm, 5);
      });
    });
  });

  it('passes gradients to W, b and q (from q = 0, where training starts)', () => {
    const random = new Random('grad');
    const states = randomTensor(random, [2, 5, D], 2) as tf.Tensor3D;
    const target = randomTensor(random, [2, D]);
    const w = tf.variable(randomTensor(random, [D, A]));
    const b = tf.variable(tf.zeros([A]));
    const q = tf.variable(tf.zeros([A]));
    const loss = () =>
      tf.sum<tf.Scalar>(tf.mul(tokenAttentionPool(states, mask(), w, b, q).pooled, target));
    const first = tf.variableGrads(loss, [w, b, q]).grads;
    // At q = 0 the weights do not depend on W and b yet; q is what moves first.
    expect(tf.max(tf.abs(first[q.name])).dataSync()[0]).toBeGreaterThan(1e-4);
    q.assign(randomTensor(random, [A]));
    const grads = tf.variableGrads(loss, [w, b, q]).grads;
    for (const v of [w, b, q]) {
      const g = grads[v.name];
      expect(g.shape).toEqual(v.shape);
      expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(1e-4);
    }
  });
});
