import type { GraphSource } from './hnsw-graph';
import { sampledRecall } from './hnsw-graph';

const DIMENSION = 12;
const CHECK = { queries: 16, candidates: 40, ef: 40, k: 5 };

/** 300 rows of a 400-row matrix, in shuffled order, each with a bias (the extra value). */
function source(): GraphSource {
  let state = 7;
  const random = () => {
    state = (Math.imul(state, 48_271) + 11) >>> 0;
    return state / 0x1_0000_0000 - 0.5;
  };
  const matrix = Float32Array.from({ length: 400 * DIMENSION }, random);
  const rows = Int32Array.from({ length: 300 }, (_, i) => (i * 37) % 400);
  const extra = Float32Array.from(rows, () => random());
  return { matrix, dimension: DIMENSION, rows, extra };
}

/** The rows of the `count` best scores for `query`, by a plain scan: what a perfect index finds. */
function exactRows(graph: GraphSource, query: readonly number[], count: number): number[] {
  const { matrix, dimension, rows, extra } = graph;
  const scored = Array.from(rows, (row, i) => {
    let score = (extra?.[i] ?? 0) * (query[dimension] ?? 0);
    for (let j = 0; j < dimension; j++) score += matrix[row * dimension + j] * query[j];
    return { row, score };
  });
  return scored
    .sort((a, b) => b.score - a.score)
    .slice(0, count)
    .map(({ row }) => row);
}

describe('sampledRecall', () => {
  const graph = source();
  const held = new Uint8Array(graph.rows.length).fill(1);
  const recallOf = (
    search: (query: number[], count: number) => readonly number[],
    stopped = () => false,
  ) => sampledRecall(search, graph, held, CHECK, stopped);

  it('is 1 for a search that finds the exact top rows, biases included', () => {
    expect(recallOf((query, count) => exactRows(graph, query, count))).toBe(1);
  });

  it('counts what the candidates hold of each exact top k', () => {
    // Only the 3 best of each top 5 come back: 3 of 5 found.
    expect(recallOf((query) => exactRows(graph, query, 3))).toBeCloseTo(3 / 5, 10);
    expect(recallOf(() => [])).toBe(0);
  });

  it('is undefined once stopped', () => {
    const stopped = () => true;
    expect(recallOf(() => [], stopped)).toBeUndefined();
  });
});
