import { encodeEach, TextEncoder } from './text-encoder';

/** Answers `encode` with whatever vectors it is given, whatever the texts. */
const answering = (vectors: Float32Array[]): TextEncoder => ({
  modelId: 'fixed:2',
  dimension: 2,
  encode: () => Promise.resolve(vectors),
});

describe('encodeEach', () => {
  it('returns one vector per text, in order', async () => {
    const vectors = [Float32Array.of(1, 0), Float32Array.of(0, 1)];
    await expect(encodeEach(answering(vectors), ['a', 'b'])).resolves.toEqual(vectors);
  });

  it('refuses an answer with fewer or more vectors than texts, naming the encoder', async () => {
    const one = [Float32Array.of(1, 0)];
    await expect(encodeEach(answering(one), ['a', 'b'])).rejects.toThrow(
      'encoder fixed:2 returned 1 vectors for 2 texts',
    );
    await expect(encodeEach(answering([...one, ...one]), ['a'])).rejects.toThrow(
      'returned 2 vectors for 1 texts',
    );
  });

  it('refuses a vector of another dimension than the encoder reports', async () => {
    await expect(encodeEach(answering([Float32Array.of(1, 0, 0)]), ['a'])).rejects.toThrow(
      'encoder fixed:2 returned a vector of 3 values, not 2',
    );
  });
});
