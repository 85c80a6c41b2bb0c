import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Random } from '../../synthetic';
import { hnswIndexBuilder } from './hnsw-index';
import type { IndexSource } from './retrieval';
import { topK } from './top-k';

const DIMENSION = 32;
const build = hnswIndexBuilder({ m: 16, efConstruction: 100, efSearch: 100 });

function source(rows: number, seed: string): IndexSource {
  const random = new Random(seed);
  const matrix = new Float32Array(new SharedArrayBuffer(rows * DIMENSION * 4));
  for (let i = 0; i < matrix.length; i++) matrix[i] = random.next() * 2 - 1;
  // Every other row: rows are labels, not positions.
  const indexed = Int32Array.from({ length: rows / 2 }, (_, i) => 2 * i);
  return { matrix, dimension: DIMENSION, rows: indexed, extra: undefined };
}

/** This process's index files left in the temporary directory. */
async function leftFiles(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith(`recsys-hnsw-${process.pid}-`));
}

describe('hnswIndexBuilder', () => {
  it('builds on another thread: this one stays idle, and the index finds the nearest rows', async () => {
    const built = source(40_000, 'thread');
    const before = performance.eventLoopUtilization();
    const index = await build(built, new AbortController().signal);
    const busy = performance.eventLoopUtilization(before).utilization;
    // Building here took the whole event loop; on its thread, this one mostly waits.
    expect(busy).toBeLessThan(0.5);
    expect(index.size).toBe(20_000);
    expect(index.bytes).toBeGreaterThan(20_000 * DIMENSION * 4);
    const query = built.matrix.slice(4 * DIMENSION, 5 * DIMENSION);
    const exact = topK(built.matrix, DIMENSION, query, 10, (row) => row % 2 === 1).rows;
    const found = new Set(index.search(query, 10));
    expect(Array.from(exact).filter((row) => found.has(row)).length).toBeGreaterThanOrEqual(9);
    expect(await leftFiles()).toEqual([]);
  });

  it('stops the thread when aborted, and leaves no file behind', async () => {
    const abort = new AbortController();
    const building = build(source(40_000, 'abort'), abort.signal);
    setTimeout(() => {
      abort.abort();
    }, 200);
    await expect(building).rejects.toMatchObject({ name: 'AbortError' });
    expect(await leftFiles()).toEqual([]);
  });
});
