import { Random } from '../../synthetic';
import { bestFirst, dotRow, topK } from './top-k';

function randomMatrix(rows: number, dimension: number, seed: string): Float32Array {
  const random = new Random(seed);
  return Float32Array.from({ length: rows * dimension }, () => random.next() * 2 - 1);
}

function bruteForce(matrix: Float32Array, dimension: number, query: Float32Array, k: number) {
  const rows = matrix.length / dimension;
  return Array.from({ length: rows }, (_, row) => ({
    row,
    score: dotRow(matrix, dimension, row, query),
  }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

describe('topK', () => {
  it.each([
    [1000, 7, 10],
    [500, 64, 1],
    [300, 33, 300],
    [5, 4, 10],
  ])('matches a brute-force sort (%i rows, dimension %i, k %i)', (rows, dimension, k) => {
    const matrix = randomMatrix(rows, dimension, `m${rows}`);
    const query = randomMatrix(1, dimension, `q${rows}`);
    const result = topK(matrix, dimension, query, k);
    const expected = bruteForce(matrix, dimension, query, k);
    expect(Array.from(result.rows)).toEqual(expected.map((entry) => entry.row));
    expected.forEach((entry, i) => {
      expect(result.scores[i]).toBeCloseTo(entry.score, 4);
    });
  });

  it('leaves out skipped rows and still returns k', () => {
    const matrix = randomMatrix(200, 8, 'skip');
    const query = randomMatrix(1, 8, 'skip-q');
    const best = bruteForce(matrix, 8, query, 20).map((entry) => entry.row);
    const skipped = new Set(best.slice(0, 5));
    const result = topK(matrix, 8, query, 15, (row) => skipped.has(row));
    expect(Array.from(result.rows)).toEqual(best.slice(5, 20));
  });

  it('returns nothing for k = 0 and rejects a query of the wrong dimension', () => {
    const matrix = randomMatrix(10, 4, 'zero');
    expect(topK(matrix, 4, new Float32Array(4), 0).rows).toHaveLength(0);
    expect(() => topK(matrix, 4, new Float32Array(3), 1)).toThrow('3 values');
  });
});

describe('bestFirst', () => {
  it('orders like a stable comparator sort, ties by index', () => {
    const random = new Random('best-first');
    for (const count of [0, 1, 2, 3, 7, 100, 257]) {
      // Few distinct values, so there are many ties.
      const scores = Float64Array.from({ length: count }, () => Math.floor(random.next() * 10));
      const expected = Array.from({ length: count }, (_, i) => i).sort(
        (a, b) => scores[b] - scores[a] || a - b,
      );
      expect(Array.from(bestFirst(scores))).toEqual(expected);
    }
  });

  it('breaks ties by the given keys', () => {
    const scores = Float32Array.from([1, 3, 1, 3]);
    const ties = Int32Array.from([9, 5, 2, 7]);
    expect(Array.from(bestFirst(scores, ties))).toEqual([1, 3, 2, 0]);
  });
});
