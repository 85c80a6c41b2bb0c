import { SCORE_BLOCK } from '../../common/vector-memory';

/* Exact nearest neighbours by score, one block of rows at a time; dot products in JavaScript. */

export interface Neighbours {
  /** Row numbers, best first. */
  readonly rows: Int32Array;
  readonly scores: Float32Array;
}

/** Dot product of `query` with row `row`; unrolled by four (about 2x faster than the plain loop). */
export function dotRow(
  matrix: Float32Array,
  dimension: number,
  row: number,
  query: Float32Array,
): number {
  const base = row * dimension;
  const end = dimension - (dimension % 4);
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  for (let j = 0; j < end; j += 4) {
    a += matrix[base + j] * query[j];
    b += matrix[base + j + 1] * query[j + 1];
    c += matrix[base + j + 2] * query[j + 2];
    d += matrix[base + j + 3] * query[j + 3];
  }
  for (let j = end; j < dimension; j++) a += matrix[base + j] * query[j];
  return a + b + c + d;
}

export function dot(x: Float32Array, y: Float32Array): number {
  return dotRow(x, x.length, 0, y);
}

/** Writes the scores of rows from..to (at most SCORE_BLOCK of them) to `out[0 .. to - from)`. */
export type RangeScorer = (from: number, to: number, out: Float32Array) => void;

/**
 * The `k` rows with the largest dot product with `query` (plus `bias[row]` when given), best
 * first, over a matrix in JavaScript memory; rows for which `skip` returns true are left out.
 */
export function topK(
  matrix: Float32Array,
  dimension: number,
  query: Float32Array,
  k: number,
  skip?: (row: number) => boolean,
  bias?: Float32Array,
): Neighbours {
  if (query.length !== dimension) {
    throw new Error(`query has ${query.length} values, the matrix ${dimension} per row`);
  }
  const scoreRange: RangeScorer = (from, to, out) => {
    for (let row = from; row < to; row++) {
      out[row - from] =
        dotRow(matrix, dimension, row, query) + (bias === undefined ? 0 : bias[row]);
    }
  };
  return topKOf(Math.floor(matrix.length / dimension), k, scoreRange, skip);
}

/**
 * The `k` best of rows 0 .. rowsTotal - 1 by `scoreRange`, best first; rows for which `skip`
 * returns true are left out (it is only asked about rows good enough to enter the result). One
 * pass in blocks of SCORE_BLOCK rows with a size-k min-heap: O(n·d + n·log k), no allocation per
 * row.
 */
export function topKOf(
  rowsTotal: number,
  k: number,
  scoreRange: RangeScorer,
  skip?: (row: number) => boolean,
): Neighbours {
  const size = Math.max(0, Math.min(k, rowsTotal));
  const heapRows = new Int32Array(size);
  const heapScores = new Float32Array(size);
  const block = new Float32Array(SCORE_BLOCK);
  let count = 0;
  for (let from = 0; size > 0 && from < rowsTotal; from += SCORE_BLOCK) {
    const to = Math.min(rowsTotal, from + SCORE_BLOCK);
    scoreRange(from, to, block);
    for (let row = from; row < to; row++) {
      const score = block[row - from];
      if (count === size) {
        if (score <= heapScores[0]) continue;
        if (skip?.(row)) continue;
        siftDown(heapRows, heapScores, count, row, score);
      } else {
        if (skip?.(row)) continue;
        siftUp(heapRows, heapScores, count, row, score);
        count++;
      }
    }
  }
  const order = bestFirst(heapScores.subarray(0, count), heapRows);
  return {
    rows: order.map((i) => heapRows[i]),
    scores: Float32Array.from(order, (i) => heapScores[i]),
  };
}

/**
 * Indexes of `scores`, highest score first; ties in ascending order of `ties[i]` (default: the
 * index). A merge sort over typed arrays: for a request's 100 items about 10x faster than
 * `Array.prototype.sort` with a comparator, which calls back into JavaScript per comparison.
 */
export function bestFirst(scores: Float32Array | Float64Array, ties?: Int32Array): Int32Array {
  const count = scores.length;
  // Both halves in one allocation (a typed array of its own costs a malloc and a sweep).
  const halves = new Int32Array(2 * count);
  let from = halves.subarray(0, count);
  let to = halves.subarray(count);
  for (let i = 0; i < count; i++) from[i] = i;
  const before = (a: number, b: number) =>
    scores[a] > scores[b] || (scores[a] === scores[b] && (ties ? ties[a] < ties[b] : a < b));
  for (let width = 1; width < count; width *= 2) {
    for (let start = 0; start < count; start += 2 * width) {
      const middle = Math.min(start + width, count);
      const end = Math.min(start + 2 * width, count);
      let left = start;
      let right = middle;
      for (let out = start; out < end; out++) {
        if (left < middle && (right >= end || !before(from[right], from[left]))) {
          to[out] = from[left++];
        } else {
          to[out] = from[right++];
        }
      }
    }
    [from, to] = [to, from];
  }
  return from;
}

function siftUp(rows: Int32Array, scores: Float32Array, at: number, row: number, score: number) {
  let i = at;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (scores[parent] <= score) break;
    rows[i] = rows[parent];
    scores[i] = scores[parent];
    i = parent;
  }
  rows[i] = row;
  scores[i] = score;
}

/** Replaces the root (the current minimum) with `row` and restores the heap. */
function siftDown(
  rows: Int32Array,
  scores: Float32Array,
  count: number,
  row: number,
  score: number,
) {
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= count) break;
    const right = left + 1;
    const child = right < count && scores[right] < scores[left] ? right : left;
    if (scores[child] >= score) break;
    rows[i] = rows[child];
    scores[i] = scores[child];
    i = child;
  }
  rows[i] = row;
  scores[i] = score;
}
