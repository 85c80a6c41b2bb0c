import { andThen, bothOf } from './maybe-async';

describe('andThen', () => {
  it('continues at once with a value at hand', () => {
    const steps: string[] = [];
    const result = andThen(2, (value) => {
      steps.push('next');
      return value * 3;
    });
    steps.push('after');
    expect(result).toBe(6);
    expect(steps).toEqual(['next', 'after']);
  });

  it('continues after a promise, and passes its rejection on', async () => {
    const result = andThen(Promise.resolve(2), (value) => value * 3);
    expect(result).toBeInstanceOf(Promise);
    await expect(result).resolves.toBe(6);
    await expect(andThen(Promise.reject(new Error('no')), () => 1)).rejects.toThrow('no');
  });
});

describe('bothOf', () => {
  it('pairs two values at hand at once, and waits when either is a promise', async () => {
    expect(bothOf(1, 'a')).toEqual([1, 'a']);
    const waited = bothOf(1, Promise.resolve('a'));
    expect(waited).toBeInstanceOf(Promise);
    await expect(waited).resolves.toEqual([1, 'a']);
    await expect(bothOf(Promise.resolve(1), 'a')).resolves.toEqual([1, 'a']);
  });
});
