import type { TokenStates } from '../../common/token-states';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of `value`, rounded to nearest even (overflow to infinity). */
export function toHalf(value: number): number {
  f32[0] = value;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit leading 1 in, round to nearest even.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (rest > midpoint || (rest === midpoint && (half & 1) === 1) ? half + 1 : half);
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half);
}

let halfTable: Float32Array | undefined;
/** Every binary16 bit pattern's float32 value, built once (256 KiB): decoding is one lookup. */
function halves(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >>> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    table[bits] =
      exponent === 0
        ? sign * mantissa * 2 ** -24
        : exponent === 0x1f
          ? mantissa === 0
            ? sign * Infinity
            : Number.NaN
          : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return (halfTable = table);
}

export function halfToFloat(bits: number): number {
  return halves()[bits & 0xffff];
}

/** float32 → binary16 bit patterns. */
export function encodeHalf(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toHalf(values[i]);
  return out;
}

/** binary16 bit patterns → float32 (into `out` when given). */
export function decodeHalf(
  bits: Uint16Array,
  out = new Float32Array(bits.length),
  offset = 0,
): Float32Array {
  const table = halves();
  for (let i = 0; i < bits.length; i++) out[offset + i] = table[bits[i]];
  return out;
}

/** Stored form of token states: uint16 count, then count x dimension binary16 values (LE). */
export function tokenStatesToBytes(states: TokenStates, dimension: number): Buffer {
  if (states.data.length !== states.count * dimension) {
    throw new Error(
      `token states have ${states.data.length} values, not ${states.count} x ${dimension}`,
    );
  }
  const out = Buffer.alloc(2 + states.count * dimension * 2);
  out.writeUInt16LE(states.count, 0);
  const halves = encodeHalf(states.data);
  for (let i = 0; i < halves.length; i++) out.writeUInt16LE(halves[i], 2 + i * 2);
  return out;
}

/** Stored size of `count` token states. */
export function tokenStatesByteLength(count: number, dimension: number): number {
  return 2 + count * dimension * 2;
}

/** The binary16 values of one stored record, without decoding (`bytes` starts at its count). */
export function tokenHalvesFromBytes(
  bytes: Uint8Array,
  dimension: number,
): { count: number; halves: Uint16Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint16(0, true);
  if (bytes.byteLength < tokenStatesByteLength(count, dimension)) {
    throw new Error(`token record truncated: ${bytes.byteLength} bytes for ${count} tokens`);
  }
  const halves = new Uint16Array(count * dimension);
  for (let i = 0; i < halves.length; i++) halves[i] = view.getUint16(2 + i * 2, true);
  return { count, halves };
}

export function bytesToTokenStates(bytes: Uint8Array, dimension: number): TokenStates {
  const { count, halves } = tokenHalvesFromBytes(bytes, dimension);
  return { count, data: decodeHalf(halves) };
}
