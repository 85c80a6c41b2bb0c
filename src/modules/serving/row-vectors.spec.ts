import { VectorMemory } from '../../common/vector-memory';
import { Random } from '../../synthetic';
import { RowVectors } from './row-vectors';

const DIMENSION = 6;

/** A load's output: item i's vector (every value i + 1 + j / 10) in row i of new memory. */
function loaded(items: number): VectorMemory {
  const memory = new VectorMemory(DIMENSION, items);
  for (let i = 0; i < items; i++) {
    for (let j = 0; j < DIMENSION; j++) memory.matrix[i * DIMENSION + j] = i + 1 + j / 10;
  }
  return memory;
}

/** Runs the move to the end; how many turns it gave back. */
function move(vectors: RowVectors, rows: Int32Array, bias?: Float32Array, step = 3): number {
  return [...vectors.moveToRows(rows, bias, step)].length;
}

function expectMoved(vectors: RowVectors, rows: Int32Array, bias?: Float32Array): void {
  const arriving = new Map(Array.from(rows, (row, item) => [row, item]));
  for (let row = 0; row < vectors.rows; row++) {
    const item = arriving.get(row);
    expect(vectors.has(row)).toBe(item !== undefined);
    const expected = Array.from({ length: DIMENSION }, (_, j) =>
      item === undefined ? 0 : item + 1 + j / 10,
    );
    expect(Array.from(vectors.matrix.subarray(row * DIMENSION, (row + 1) * DIMENSION))).toEqual(
      expected.map((value) => Math.fround(value)),
    );
    expect(vectors.bias?.[row] ?? 0).toBe(
      item === undefined || bias === undefined ? 0 : bias[item],
    );
  }
}

describe('RowVectors.moveToRows', () => {
  it('moves a load’s vectors to their rows in place: chains, cycles, rows no item moves to', () => {
    // Row 1 is left (a deleted item's), items 1 and 3 move on along a chain, item 4 past the
    // load's rows, item 2 stays.
    const rows = Int32Array.of(0, 3, 2, 4, 6);
    const memory = loaded(rows.length);
    const vectors = new RowVectors(DIMENSION, 8, memory);
    const bias = Float32Array.of(0.5, 0, -1, 2, 0.25);
    move(vectors, rows, bias);
    expectMoved(vectors, rows, bias);
    expect(vectors.matrix.buffer).toBe(memory.matrix.buffer);
  });

  it('moves random permutations with holes into a larger table, a few vectors per turn', () => {
    const random = new Random('rows');
    for (let round = 0; round < 20; round++) {
      const items = 1 + Math.floor(random.next() * 60);
      const capacity = items + Math.floor(random.next() * 20);
      const free = Array.from({ length: capacity }, (_, row) => row);
      for (let i = free.length - 1; i > 0; i--) {
        const j = Math.floor(random.next() * (i + 1));
        [free[i], free[j]] = [free[j], free[i]];
      }
      // Some items keep their own row, as most do when the table and the catalog share an order.
      const rows = Int32Array.from({ length: items }, (_, i) => (random.next() < 0.3 ? -1 : i));
      const taken = new Set(rows);
      const left = free.filter((row) => !taken.has(row));
      for (let i = 0; i < items; i++) if (rows[i] === -1) rows[i] = left.pop() ?? -1;
      const vectors = new RowVectors(DIMENSION, capacity, loaded(items));
      const turns = move(vectors, rows, undefined, 4);
      expectMoved(vectors, rows);
      expect(vectors.bias).toBeUndefined();
      expect(turns).toBeLessThanOrEqual(Math.ceil(items / 4));
    }
  });

  it('moves nothing when every item keeps its row', () => {
    const rows = Int32Array.of(0, 1, 2, 3);
    const vectors = new RowVectors(DIMENSION, 4, loaded(4));
    expect(move(vectors, rows, undefined, 1)).toBe(0);
    expectMoved(vectors, rows);
  });

  it('refuses two items for one row', () => {
    const vectors = new RowVectors(DIMENSION, 4, loaded(2));
    expect(() => move(vectors, Int32Array.of(1, 1))).toThrow(/row 1 is out of range or taken/);
  });
});
