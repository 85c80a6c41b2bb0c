import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { matMul2d } from './tf-ops';

describe('matMul2d', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each(['cpu', 'wasm'])('on %s, has tf.matMul’s value and gradients', async (backend) => {
    await tf.setBackend(backend);
    const a = tf.randomNormal<tf.Rank.R2>([5, 3], 0, 1, 'float32', 1);
    const b = tf.randomNormal<tf.Rank.R2>([3, 4], 0, 1, 'float32', 2);
    // A non-uniform upstream gradient, so a transposition mistake shows.
    const weight = tf.randomNormal<tf.Rank.R2>([5, 4], 0, 1, 'float32', 3);
    const loss = (product: (x: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor2D) =>
      tf.grads((x: tf.Tensor, y: tf.Tensor) =>
        product(x as tf.Tensor2D, y as tf.Tensor2D)
          .mul(weight)
          .sum(),
      );
    const expected = loss((x, y) => tf.matMul(x, y))([a, b]);
    const actual = loss(matMul2d)([a, b]);
    expect(await matMul2d(a, b).array()).toEqual(await tf.matMul(a, b).array());
    for (const [i, grad] of actual.entries()) {
      const difference = (await grad.sub(expected[i]).abs().max().data())[0];
      expect(difference).toBeLessThan(1e-5);
      expect(grad.shape).toEqual(expected[i].shape);
    }
  });
});
