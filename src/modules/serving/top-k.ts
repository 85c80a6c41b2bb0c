/** Exact nearest neighbours by dot product over a contiguous row-major Float32Array matrix. */

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

/**
 * The `k` rows with the largest dot product with `query` (plus `bias[row]` when given), best
 * first; rows for which `skip` returns true are left out (it is only asked about rows good enough
 * to enter the result). One pass with a size-k min-heap: O(n·d + n·log k), no allocation per row.
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
  const rowsTotal = Math.floor(matrix.length / dimension);
  const size = Math.max(0, Math.min(k, rowsTotal));
  const heapRows = new Int32Array(size);
  const heapScores = new Float32Array(size);
  let count = 0;
  for (let row = 0; row < rowsTotal; row++) {
    const score = dotRow(matrix, dimension, row, query) + (bias === undefined ? 0 : bias[row]);
    if (count === size) {
      if (size === 0 || score <= heapScores[0]) continue;
      if (skip?.(row)) continue;
      siftDown(heapRows, heapScores, count, row, score);
    } else {
      if (skip?.(row)) continue;
      siftUp(heapRows, heapScores, count, row, score);
      count++;
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
  let from = new Int32Array(count);
  let to = new Int32Array(count);
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
