import { fromFloat16, toFloat16 } from './float16';

describe('float16', () => {
  it('encodes exactly representable values to their IEEE half bits', () => {
    const values = Float32Array.from([0, -0, 1, -2, 0.5, 65504, 2 ** -14, 2 ** -24, Infinity]);
    expect(Array.from(toFloat16(values))).toEqual([
      0x0000, 0x8000, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0400, 0x0001, 0x7c00,
    ]);
    expect(Array.from(fromFloat16(toFloat16(values)))).toEqual(Array.from(values));
  });

  it('rounds to nearest even, overflows to infinity, underflows to zero', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    // 1 + 3·2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties go to 1 + 2^-9.
    const values = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 2 ** -26, -1e-3]);
    const decoded = fromFloat16(toFloat16(values));
    expect(Array.from(decoded.subarray(0, 4))).toEqual([1, 1 + 2 ** -9, Infinity, 0]);
    expect(Math.abs(decoded[4] + 1e-3)).toBeLessThan(1e-3 * 2 ** -11);
    expect(Number.isNaN(fromFloat16(toFloat16(Float32Array.from([NaN])))[0])).toBe(true);
  });

  it('keeps every normal value within half a unit in the last place (relative 2^-11)', () => {
    const values = Float32Array.from(
      { length: 1000 },
      (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 9) - 4),
    );
    const decoded = fromFloat16(toFloat16(values));
    values.forEach((value, i) => {
      if (Math.abs(value) >= 2 ** -14) {
        expect(Math.abs(decoded[i] - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -11);
      }
    });
  });
});
