import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Random } from '../../synthetic';
import { hnswIndexBuilder, hnswIndexOpener } from './hnsw-index';
import type { IndexSource, VectorIndex } from './retrieval';
import { bestFirst, dotRow, topK } from './top-k';

const DIMENSION = 32;
// A search costing well above its messages to and from the index's thread: with efSearch 100 (about
// 0.2 ms here) those messages alone kept this thread 15–33 % busy under load, up to 52 % once.
const SETTINGS = { m: 16, efConstruction: 100, efSearch: 400, annCandidates: 400 };
const build = hnswIndexBuilder(SETTINGS);
const open = hnswIndexOpener(SETTINGS);

function source(rows: number, seed: string): IndexSource {
  const random = new Random(seed);
  const matrix = new Float32Array(new SharedArrayBuffer(rows * DIMENSION * 4));
  for (let i = 0; i < matrix.length; i++) matrix[i] = random.next() * 2 - 1;
  // Every other row: rows are labels, not positions.
  const indexed = Int32Array.from({ length: rows / 2 }, (_, i) => 2 * i);
  return { matrix, dimension: DIMENSION, rows: indexed, extra: undefined };
}

function row(built: IndexSource, index: number): Float32Array {
  return built.matrix.slice(index * DIMENSION, (index + 1) * DIMENSION);
}

describe('hnswIndexBuilder', () => {
  it('builds and searches on another thread: this one stays idle, and the index finds the nearest rows', async () => {
    const built = source(40_000, 'thread');
    const before = performance.eventLoopUtilization();
    const index = await build(built, new AbortController().signal);
    // Building here took the whole event loop; on its thread, this one mostly waits.
    expect(performance.eventLoopUtilization(before).utilization).toBeLessThan(0.5);
    expect(index.size).toBe(20_000);
    // Its inner-product graph samples well: no second graph.
    expect(index.pointFormat).toBe('inner-product');
    expect(index.bytes).toBeGreaterThan(20_000 * DIMENSION * 4);
    const query = row(built, 4);
    const exact = topK(built.matrix, DIMENSION, query, 10, (r) => r % 2 === 1).rows;
    const found = new Set(await index.search(query, 10));
    expect(Array.from(exact).filter((r) => found.has(r)).length).toBeGreaterThanOrEqual(9);
    // Many searches at once: each answered with its own rows, this thread mostly idle.
    const searching = performance.eventLoopUtilization();
    const queries = Array.from({ length: 200 }, (_, i) => row(built, 2 * i));
    const answers = await Promise.all(queries.map((q) => index.search(q, 5)));
    expect(performance.eventLoopUtilization(searching).utilization).toBeLessThan(0.5);
    answers.forEach((rows, i) => {
      expect(rows[0]).toBe(2 * i);
    });
    index.close();
  });

  it("builds a norm-augmented graph too when the inner-product graph's sampled recall is low, keeps the better, and writes, opens and adopts it", async () => {
    // Items sharing one direction in widely varied amounts: the inner-product graph leaves the
    // short ones with no link leading to them (0.80 of items' exact top 20 found, sampled 0.74).
    const random = new Random('one direction');
    const gaussian = () =>
      Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
    const unit = () => {
      const vector = Array.from({ length: DIMENSION }, gaussian);
      const norm = Math.hypot(...vector);
      return vector.map((value) => value / norm);
    };
    const shared = unit();
    const clusters = Array.from({ length: 20 }, unit);
    const rows = 8000;
    const matrix = new Float32Array(new SharedArrayBuffer(rows * DIMENSION * 4));
    for (let r = 0; r < rows; r++) {
      const cluster = random.pick(clusters);
      const noise = unit();
      const amount = 0.2 + 1.6 * random.next();
      for (let j = 0; j < DIMENSION; j++) {
        matrix[r * DIMENSION + j] = amount * shared[j] + 0.5 * cluster[j] + 0.3 * noise[j];
      }
    }
    const all = Int32Array.from({ length: rows }, (_, r) => r);
    const recallOf = async (index: VectorIndex, vectors: Float32Array) => {
      let found = 0;
      for (let q = 0; q < 200; q++) {
        const query = vectors.slice(q * 40 * DIMENSION, (q * 40 + 1) * DIMENSION);
        const exact = new Set(topK(vectors, DIMENSION, query, 20).rows);
        const candidates = await index.search(query, SETTINGS.annCandidates);
        const scored = Float32Array.from(candidates, (r) => dotRow(vectors, DIMENSION, r, query));
        for (const i of bestFirst(scored, candidates).subarray(0, 20)) {
          if (exact.has(candidates[i])) found++;
        }
      }
      return found / (200 * 20);
    };
    const signal = new AbortController().signal;
    const index = await build(
      { matrix, dimension: DIMENSION, rows: all, extra: undefined },
      signal,
    );
    expect(index.pointFormat).toBe('norm-augmented-l2');
    expect(index.recall).toBeGreaterThan(0.98);
    expect(await recallOf(index, matrix)).toBeGreaterThan(0.98);
    const dir = await mkdtemp(path.join(tmpdir(), 'hnsw-spec-'));
    const file = path.join(dir, 'index.hnsw');
    try {
      await index.write?.(file);
      const format = index.pointFormat ?? '';
      const same = { matrix, dimension: DIMENSION, rows: all, extra: undefined };
      const opened = await open(file, format, all, same, signal);
      expect(opened.stale).toHaveLength(0);
      const query = matrix.slice(0, DIMENSION);
      expect(await opened.search(query, 10)).toEqual(await index.search(query, 10));
      opened.close();
      // The next version: every item a little longer or shorter (Φ moves with them).
      const next = new Float32Array(new SharedArrayBuffer(matrix.byteLength));
      for (let r = 0; r < rows; r++) {
        const scale = 0.9 + 0.2 * random.next();
        for (let j = 0; j < DIMENSION; j++)
          next[r * DIMENSION + j] = scale * matrix[r * DIMENSION + j];
      }
      const moved = { matrix: next, dimension: DIMENSION, rows: all, extra: undefined };
      const adopted = await open(file, format, all, moved, signal, true);
      expect(adopted.pointFormat).toBe('norm-augmented-l2');
      expect(adopted.recall).toBeGreaterThan(0.96);
      expect(await recallOf(adopted, next)).toBeGreaterThan(0.96);
      adopted.close();
    } finally {
      index.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to open a written index of an unknown point format', async () => {
    await expect(
      open(
        '/nonexistent',
        'cosine',
        new Int32Array(0),
        source(2, 'none'),
        new AbortController().signal,
      ),
    ).rejects.toThrow('unknown point format cosine');
  });

  it('answers the searches taken before close, and refuses later ones', async () => {
    const built = source(4000, 'close');
    const index = await build(built, new AbortController().signal);
    const taken = Array.from({ length: 20 }, (_, i) => index.search(row(built, 2 * i), 3));
    index.close();
    const answers = await Promise.all(taken);
    expect(answers.map((rows) => rows[0])).toEqual(Array.from({ length: 20 }, (_, i) => 2 * i));
    await expect(index.search(row(built, 0), 3)).rejects.toThrow('closed');
  });

  it('refuses searches past 2 in flight and 256 waiting (RESOURCE_EXHAUSTED)', async () => {
    const built = source(4000, 'bound');
    const index = await build(built, new AbortController().signal);
    const settled = await Promise.allSettled(
      Array.from({ length: 263 }, (_, i) => index.search(row(built, 2 * (i % 100)), 3)),
    );
    const refused = settled.filter((outcome) => outcome.status === 'rejected');
    expect(refused).toHaveLength(5);
    expect(refused[0]).toMatchObject({ reason: { code: 'RESOURCE_EXHAUSTED' } });
    index.close();
  });

  it('withdraws a waiting search whose signal is aborted', async () => {
    const built = source(4000, 'withdraw');
    const index = await build(built, new AbortController().signal);
    const abandoned = new AbortController();
    const searches = Array.from({ length: 10 }, (_, i) =>
      index.search(row(built, 2 * i), 3, i === 9 ? abandoned.signal : undefined),
    );
    abandoned.abort(new Error('request abandoned'));
    const settled = await Promise.allSettled(searches);
    expect(settled.slice(0, 9).every((outcome) => outcome.status === 'fulfilled')).toBe(true);
    expect(settled[9]).toEqual({ status: 'rejected', reason: new Error('request abandoned') });
    index.close();
  });

  it('reports progress, and stops the thread between two points when aborted while building', async () => {
    const abort = new AbortController();
    const reported: number[] = [];
    // Aborted in the middle of adding points: a Worker.terminate landing inside hnswlib-node's
    // read of a point aborted the whole process (FATAL ERROR ... napi_throw).
    const building = build(source(40_000, 'abort'), abort.signal, (indexed) => {
      reported.push(indexed);
      abort.abort();
    });
    await expect(building).rejects.toMatchObject({ name: 'AbortError' });
    expect(reported[0]).toBe(1000);
  });

  it('writes an index that another replica opens over its own rows: points that changed or are unknown there are left out and their rows reported stale', async () => {
    const built = source(4000, 'written');
    const index = await build(built, new AbortController().signal);
    const dir = await mkdtemp(path.join(tmpdir(), 'hnsw-spec-'));
    const file = path.join(dir, 'index.hnsw');
    try {
      await index.write?.(file);
      // The other replica holds each item one row further on, lacks the item of row 0, has a new
      // vector for the item of row 4 (its row 5) and an item the index never saw (row 4001).
      const here = new Float32Array(new SharedArrayBuffer((4002 + 1) * DIMENSION * 4));
      here.set(built.matrix.subarray(0, 4000 * DIMENSION), DIMENSION);
      here.fill(0.5, 5 * DIMENSION, 6 * DIMENSION);
      here.fill(-0.5, 4001 * DIMENSION, 4002 * DIMENSION);
      const rows = Int32Array.from([...Array.from({ length: 1999 }, (_, i) => 2 * i + 3), 4001]);
      const labelRows = Int32Array.from({ length: 4000 }, (_, label) =>
        label === 0 ? -1 : label + 1,
      );
      const opened = await open(
        file,
        index.pointFormat ?? '',
        labelRows,
        { matrix: here, dimension: DIMENSION, rows, extra: undefined },
        new AbortController().signal,
      );
      expect(Array.from(opened.stale ?? [])).toEqual([5, 4001]);
      expect(opened.size).toBe(1998);
      const nearest = await opened.search(row(built, 8), 10);
      expect(nearest[0]).toBe(9);
      // The item whose vector changed is not found by its old one; the unknown item never is.
      const old = await opened.search(row(built, 4), 50);
      expect(Array.from(old)).not.toContain(5);
      expect(Array.from(await opened.search(row(built, 0), 50))).not.toContain(-1);
      opened.close();
    } finally {
      index.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("adopts another version's written graph: its points take this version's vectors, and the recall is sampled as recommend asks", async () => {
    const built = source(4000, 'graph');
    const index = await build(built, new AbortController().signal);
    expect(index.recall).toBeGreaterThan(0.95);
    const dir = await mkdtemp(path.join(tmpdir(), 'hnsw-spec-'));
    const file = path.join(dir, 'index.hnsw');
    try {
      await index.write?.(file);
      // The next version: every vector moved a little, the item of row 0 gone, row 8's moved
      // far, and an item the graph never saw (row 4001).
      const random = new Random('fine-tuned');
      const next = new Float32Array(new SharedArrayBuffer(4002 * DIMENSION * 4));
      next.set(built.matrix);
      for (let i = 0; i < next.length; i++) next[i] += 0.05 * (random.next() * 2 - 1);
      next.fill(0.9, 8 * DIMENSION, 9 * DIMENSION);
      next.fill(-0.5, 4001 * DIMENSION, 4002 * DIMENSION);
      const rows = Int32Array.from([...Array.from({ length: 1999 }, (_, i) => 2 * i + 2), 4001]);
      const labelRows = Int32Array.from({ length: 4000 }, (_, label) => (label === 0 ? -1 : label));
      const adopted = await open(
        file,
        index.pointFormat ?? '',
        labelRows,
        { matrix: next, dimension: DIMENSION, rows, extra: undefined },
        new AbortController().signal,
        true,
      );
      expect(adopted.size).toBe(1999);
      expect(Array.from(adopted.stale ?? [])).toEqual([4001]);
      expect(adopted.recall).toBeGreaterThan((index.recall ?? 1) - 0.02);
      // Each item moved by about 3 degrees (row 8's 90 degrees among 1,999).
      expect(adopted.drift).toBeGreaterThan(1);
      expect(adopted.drift).toBeLessThan(5);
      // Found by its new vector, not by its old one; the item gone is never found.
      const moved = next.slice(8 * DIMENSION, 9 * DIMENSION);
      expect((await adopted.search(moved, 1))[0]).toBe(8);
      expect(Array.from(await adopted.search(row(built, 0), 50))).not.toContain(0);
      const query = row(built, 100);
      const exact = topK(next, DIMENSION, query, 10, (r) => r % 2 === 1 || r === 0).rows;
      expect(Array.from(await adopted.search(query, 10))).toEqual(Array.from(exact));
      adopted.close();
    } finally {
      index.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('samples a low recall when the vectors have nothing to do with the graph', async () => {
    const narrow = { m: 8, efConstruction: 40, efSearch: 20, annCandidates: 20 };
    const built = source(40_000, 'one version');
    const index = await hnswIndexBuilder(narrow)(built, new AbortController().signal);
    const dir = await mkdtemp(path.join(tmpdir(), 'hnsw-spec-'));
    const file = path.join(dir, 'index.hnsw');
    try {
      await index.write?.(file);
      const unrelated = source(40_000, 'another model');
      const labelRows = Int32Array.from({ length: 40_000 }, (_, label) => label);
      const adopted = await hnswIndexOpener(narrow)(
        file,
        index.pointFormat ?? '',
        labelRows,
        unrelated,
        new AbortController().signal,
        true,
      );
      expect(adopted.size).toBe(20_000);
      expect(adopted.recall).toBeLessThan((index.recall ?? 0) - 0.1);
      expect(adopted.drift).toBeGreaterThan(60);
      adopted.close();
    } finally {
      index.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
