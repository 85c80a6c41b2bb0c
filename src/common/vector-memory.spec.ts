import { Worker } from 'node:worker_threads';
import { SCORE_BLOCK, VectorMemory } from './vector-memory';

/** Seeded values in [0, 1) (a 32-bit xorshift over the seed's characters). */
class Random {
  private state: number;

  constructor(seed: string) {
    let hash = 2_166_136_261;
    for (let i = 0; i < seed.length; i++) hash = Math.imul(hash ^ seed.charCodeAt(i), 16_777_619);
    this.state = hash;
  }

  next(): number {
    this.state ^= this.state << 13;
    this.state ^= this.state >>> 17;
    this.state ^= this.state << 5;
    return (this.state >>> 0) / 4_294_967_296;
  }
}

/** The reference: row · query summed in doubles. */
function dotRow(matrix: Float32Array, dimension: number, row: number, query: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < dimension; i++) sum += matrix[row * dimension + i] * query[i];
  return sum;
}

function filled(rows: number, dimension: number, seed: string): VectorMemory {
  const random = new Random(seed);
  const memory = new VectorMemory(dimension, rows);
  for (let i = 0; i < rows * dimension; i++) memory.matrix[i] = random.next() * 2 - 1;
  return memory;
}

function randomQuery(dimension: number, seed: string): Float32Array {
  const random = new Random(seed);
  return Float32Array.from({ length: dimension }, () => random.next() * 2 - 1);
}

describe('VectorMemory', () => {
  // Dimensions that exercise each loop: blocks of 16, of 4, and the scalar tail.
  it.each([1, 3, 4, 15, 16, 17, 33, 64, 384, 385])(
    'scores listed rows and ranges as the JavaScript dot does (dimension %i)',
    (dimension) => {
      const memory = filled(50, dimension, `m${dimension}`);
      const query = randomQuery(dimension, `q${dimension}`);
      const rows = Int32Array.from([49, 0, 7, 7, 23]);
      const listed = new Float64Array(rows.length);
      memory.dotRows(rows, rows.length, query, listed);
      const range = new Float32Array(50);
      memory.dotRange(0, 50, query, range);
      rows.forEach((row, i) => {
        const expected = dotRow(memory.matrix, dimension, row, query);
        expect(listed[i]).toBeCloseTo(expected, 4);
        expect(range[row]).toBeCloseTo(expected, 4);
      });
    },
  );

  it('scores more rows than one block, and only the count asked', () => {
    const memory = filled(SCORE_BLOCK + 10, 8, 'blocks');
    const query = randomQuery(8, 'blocks-q');
    const rows = Int32Array.from({ length: SCORE_BLOCK * 2 + 5 }, (_, i) => (i * 7) % memory.rows);
    const out = new Float32Array(rows.length + 1).fill(-1);
    memory.dotRows(rows, rows.length, query, out);
    rows.forEach((row, i) => {
      expect(out[i]).toBeCloseTo(dotRow(memory.matrix, 8, row, query), 4);
    });
    expect(out[rows.length]).toBe(-1);
  });

  it('grows in place: rows written stay, new rows read as zeros', () => {
    const memory = filled(3, 16, 'grow');
    const before = memory.matrix.slice();
    memory.reserve(100_000);
    expect(memory.rows).toBe(100_000);
    expect(memory.bytes).toBeGreaterThanOrEqual(100_000 * 16 * 4);
    expect(memory.matrix.subarray(0, before.length)).toEqual(before);
    expect(memory.matrix[99_999 * 16]).toBe(0);
    const out = new Float32Array(1);
    memory.dotRange(99_999, 100_000, randomQuery(16, 'grow-q'), out);
    expect(out[0]).toBe(0);
  });

  it('refuses rows out of range and a query of the wrong dimension', () => {
    const memory = filled(4, 8, 'bad');
    const out = new Float32Array(2);
    expect(() => {
      memory.dotRows(Int32Array.from([4]), 1, randomQuery(8, 'q'), out);
    }).toThrow('row 4 is out of range');
    expect(() => {
      memory.dotRows(Int32Array.from([-1]), 1, randomQuery(8, 'q'), out);
    }).toThrow('row -1');
    expect(() => {
      memory.dotRange(3, 5, randomQuery(8, 'q'), out);
    }).toThrow('rows 3..5');
    expect(() => {
      memory.dotRows(Int32Array.from([0]), 1, new Float32Array(7), out);
    }).toThrow('7 values');
  });

  it('shares its matrix with another thread without a copy', async () => {
    const memory = filled(2, 4, 'thread');
    const worker = new Worker(
      'const { parentPort, workerData } = require("node:worker_threads"); workerData[1] = 42; parentPort.postMessage(workerData[0]);',
      { eval: true, workerData: memory.matrix },
    );
    const seen = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(seen).toBe(memory.matrix[0]);
    expect(memory.matrix[1]).toBe(42);
  });
});
