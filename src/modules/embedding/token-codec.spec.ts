import {
  bytesToTokenStates,
  decodeHalf,
  encodeHalf,
  halfToFloat,
  toHalf,
  tokenStatesByteLength,
  tokenStatesToBytes,
} from './token-codec';

/** Deterministic uniforms in [0, 1) (xorshift32): the embedding module has no seeded PRNG. */
function uniforms(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

describe('binary16 codec', () => {
  it('encodes exact values exactly and the edge cases as IEEE 754 does', () => {
    for (const x of [0, 1, -1, 0.5, 2, 1024, 65504, -65504, 2 ** -14, 2 ** -24]) {
      expect(halfToFloat(toHalf(x))).toBe(x);
    }
    expect(toHalf(-0)).toBe(0x8000);
    expect(halfToFloat(toHalf(1e6))).toBe(Infinity);
    expect(halfToFloat(toHalf(-1e6))).toBe(-Infinity);
    expect(Number.isNaN(halfToFloat(toHalf(Number.NaN)))).toBe(true);
    expect(halfToFloat(toHalf(2 ** -26))).toBe(0);
    // Ties round to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    expect(halfToFloat(toHalf(1 + 2 ** -11))).toBe(1);
    expect(halfToFloat(toHalf(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
  });

  it('round-trips encoder-like values within half a unit in the last place (2^-11 relative)', () => {
    const next = uniforms(16);
    // BERT final states: mostly |x| < 1, a few outliers up to ~10.
    const values = Float32Array.from({ length: 20_000 }, () => {
      const u = next() * 2 - 1;
      return next() < 0.01 ? u * 10 : u;
    });
    const back = decodeHalf(encodeHalf(values));
    let worst = 0;
    values.forEach((x, i) => {
      const err = Math.abs(back[i] - x);
      // Below 2^-14 the spacing is fixed (subnormals): an absolute bound there.
      worst = Math.max(worst, Math.abs(x) >= 2 ** -14 ? err / Math.abs(x) : err / 2 ** -14);
    });
    expect(worst).toBeLessThanOrEqual(2 ** -11);
    expect(worst).toBeGreaterThan(0);
  });

  it('stores token states as count + binary16 and reads them back', () => {
    const d = 6;
    const next = uniforms(7);
    const states = { count: 3, data: Float32Array.from({ length: 18 }, () => next() - 0.5) };
    const bytes = tokenStatesToBytes(states, d);
    expect(bytes.length).toBe(tokenStatesByteLength(3, d));
    expect(bytes.length).toBe(2 + 3 * d * 2);
    const back = bytesToTokenStates(bytes, d);
    expect(back.count).toBe(3);
    back.data.forEach((x, i) => {
      expect(Math.abs(x - states.data[i])).toBeLessThan(2 ** -11);
    });
    expect(() => bytesToTokenStates(bytes.subarray(0, bytes.length - 2), d)).toThrow(/truncated/);
    expect(() => tokenStatesToBytes({ count: 4, data: states.data }, d)).toThrow(/values/);
  });
});
