import { Random } from '../../synthetic';
import { hnswIndexBuilder } from './hnsw-index';
import {
  biasSlot,
  indexSource,
  IndexBuilt,
  Retrieval,
  RetrievalPath,
  RetrievalSettings,
} from './retrieval';
import type { VectorIndexBuilder } from './retrieval';
import { RowVectors } from './row-vectors';
import { topK } from './top-k';

const DIMENSION = 32;
const HNSW = hnswIndexBuilder({ m: 16, efConstruction: 100, efSearch: 100, annCandidates: 100 });

/** Items around a few cluster directions (as embeddings are), with a bias when asked. */
function catalog(rows: number, seed: string, withBias = false): RowVectors {
  const random = new Random(seed);
  const gaussian = () =>
    Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
  const centres = Array.from({ length: 20 }, () =>
    Float32Array.from({ length: DIMENSION }, gaussian),
  );
  const vectors = new RowVectors(DIMENSION, rows);
  for (let row = 0; row < rows; row++) {
    const centre = centres[row % centres.length];
    const vector = Float32Array.from(centre, (value) => value + 0.8 * gaussian());
    vectors.set(row, vector, withBias ? random.next() * 4 - 2 : 0, 0);
  }
  return vectors;
}

function user(seed: string): Float32Array {
  const random = new Random(seed);
  return Float32Array.from({ length: DIMENSION }, () => random.next() * 2 - 1);
}

/** A user vector as the model pools it: near the items of the user's history. */
function historyUser(vectors: RowVectors, seed: string): Float32Array {
  const random = new Random(seed);
  const a = vectors.vector(Math.floor(random.next() * vectors.rows));
  const b = vectors.vector(Math.floor(random.next() * vectors.rows));
  return Float32Array.from(a, (value, i) => (value + b[i]) / 2 + 0.3 * (random.next() * 2 - 1));
}

/** What the exact scan answers (the reference). */
function exact(
  vectors: RowVectors,
  query: Float32Array,
  scale: number,
  count: number,
  accept = (_row: number) => true,
) {
  const folded = vectors.bias === undefined ? query : query.map((value) => value * scale);
  return Array.from(
    topK(
      vectors.matrix,
      DIMENSION,
      folded,
      count,
      (row) => !vectors.has(row) || !accept(row),
      vectors.bias,
    ).rows,
  );
}

function recording() {
  const paths: RetrievalPath[] = [];
  const builds: IndexBuilt[] = [];
  const failures: unknown[] = [];
  return {
    paths,
    builds,
    failures,
    observer: {
      answered: (path: RetrievalPath) => paths.push(path),
      progress: () => undefined,
      built: (built: IndexBuilt) => builds.push(built),
      failed: (error: unknown) => {
        failures.push(error);
      },
    },
  };
}

const SETTINGS: RetrievalSettings = { annMinItems: 1000, annCandidates: 100, annMaxDelta: 50 };

function recallAt(found: readonly number[], expected: readonly number[]): number {
  const wanted = new Set(expected);
  return found.filter((row) => wanted.has(row)).length / expected.length;
}

describe('Retrieval', () => {
  it.each([false, true])(
    'finds at least 95 %% of the exact top 20 through the index (bias %s)',
    async (withBias) => {
      const vectors = catalog(4000, `recall-${String(withBias)}`, withBias);
      const { observer, paths, builds } = recording();
      const retrieval = new Retrieval(vectors, 1.5, SETTINGS, HNSW, observer);
      await retrieval.maintain();
      expect(builds).toEqual([
        expect.objectContaining({ rows: 4000, stale: undefined, adopted: false }),
      ]);
      let recall = 0;
      const queries = 50;
      for (let q = 0; q < queries; q++) {
        const query = historyUser(vectors, `q${q}`);
        const found = Array.from(await retrieval.nearest(query, 20, () => true, vectors.rows));
        recall += recallAt(found, exact(vectors, query, 1.5, 20)) / queries;
      }
      expect(recall).toBeGreaterThanOrEqual(0.95);
      expect(new Set(paths)).toEqual(new Set(['ann']));
    },
  );

  it('scans exactly below the item threshold, and builds no index', async () => {
    const vectors = catalog(500, 'small');
    const { observer, paths, builds } = recording();
    const retrieval = new Retrieval(vectors, 1, SETTINGS, HNSW, observer);
    await retrieval.maintain();
    const query = user('small');
    expect(Array.from(await retrieval.nearest(query, 10, () => true, 500))).toEqual(
      exact(vectors, query, 1, 10),
    );
    expect(builds).toEqual([]);
    expect(paths).toEqual(['exact']);
    expect(retrieval.indexed).toBe(false);
  });

  it('scans exactly until the index is built', async () => {
    const vectors = catalog(2000, 'building');
    const { observer, paths } = recording();
    const retrieval = new Retrieval(vectors, 1, SETTINGS, HNSW, observer);
    const building = retrieval.maintain();
    const query = user('building');
    expect(Array.from(await retrieval.nearest(query, 10, () => true, 2000))).toEqual(
      exact(vectors, query, 1, 10),
    );
    await building;
    await retrieval.nearest(query, 10, () => true, 2000);
    expect(paths).toEqual(['exact', 'ann']);
  });

  it('answers deletions and items set after the build, and rebuilds past the delta', async () => {
    const vectors = catalog(2000, 'changes');
    const { observer, paths, builds } = recording();
    const retrieval = new Retrieval(vectors, 1, SETTINGS, HNSW, observer);
    await retrieval.maintain();
    const query = user('changes');
    const before = Array.from(await retrieval.nearest(query, 10, () => true, 2000));
    // The best item is deleted; a new item points exactly along the query; another moves there.
    vectors.clear(before[0]);
    const along = query.map((value) => value * 10);
    vectors.set(2000, along, 0, 1);
    vectors.set(
      before[5],
      along.map((value) => value * 0.99),
      0,
      1,
    );
    const after = Array.from(await retrieval.nearest(query, 10, () => true, 2001));
    expect(after.slice(0, 2)).toEqual([2000, before[5]]);
    expect(after).not.toContain(before[0]);
    expect(after).toEqual(exact(vectors, query, 1, 10));
    expect(retrieval.maintain()).toBeUndefined();
    // Past annMaxDelta changes, an index of the current vectors replaces the first.
    for (let row = 0; row < SETTINGS.annMaxDelta; row++)
      vectors.set(3000 + row, user(`n${row}`), 0, 2);
    await retrieval.maintain();
    expect(builds.map((built) => built.rows)).toEqual([2000, 2000 + SETTINGS.annMaxDelta]);
    expect(Array.from(await retrieval.nearest(query, 10, () => true, 3100))).toEqual(
      exact(vectors, query, 1, 10),
    );
    expect(paths.every((path) => path === 'ann')).toBe(true);
  });

  it('falls back to the exact scan when too few of the index candidates pass the filter', async () => {
    const vectors = catalog(2000, 'filter');
    const { observer, paths } = recording();
    const retrieval = new Retrieval(vectors, 1, SETTINGS, HNSW, observer);
    await retrieval.maintain();
    const query = user('filter');
    // One row in a hundred: far fewer than 10 among the index's 100 candidates.
    const rare = (row: number) => row % 100 === 7;
    expect(Array.from(await retrieval.nearest(query, 10, rare, 2000))).toEqual(
      exact(vectors, query, 1, 10, rare),
    );
    expect(paths).toEqual(['ann_fallback']);
  });

  it('stops a build when closed, and serves exactly after', async () => {
    const vectors = catalog(3000, 'closed');
    const { observer, paths, builds } = recording();
    const retrieval = new Retrieval(vectors, 1, SETTINGS, HNSW, observer);
    const building = retrieval.maintain();
    await retrieval.close();
    await building;
    expect(builds).toEqual([]);
    await retrieval.nearest(user('closed'), 5, () => true, 3000);
    expect(paths).toEqual(['exact']);
  });

  it('drops an index that stops answering: the exact scan serves until the next build', async () => {
    const vectors = catalog(2000, 'failing');
    const { observer, paths, builds, failures } = recording();
    let failing = true;
    const flaky: VectorIndexBuilder = async (source, signal) => {
      const index = await HNSW(source, signal);
      return {
        dimension: index.dimension,
        size: index.size,
        bytes: index.bytes,
        search: (query, count) =>
          failing ? Promise.reject(new Error('thread gone')) : index.search(query, count),
        close: () => {
          index.close();
        },
      };
    };
    const retrieval = new Retrieval(vectors, 1, SETTINGS, flaky, observer);
    await retrieval.maintain();
    const query = user('failing');
    expect(Array.from(await retrieval.nearest(query, 10, () => true, 2000))).toEqual(
      exact(vectors, query, 1, 10),
    );
    expect(failures).toEqual([new Error('thread gone')]);
    expect(retrieval.indexed).toBe(false);
    failing = false;
    await retrieval.maintain();
    await retrieval.nearest(query, 10, () => true, 2000);
    expect(builds).toHaveLength(2);
    expect(paths).toEqual(['ann_fallback', 'ann']);
    await retrieval.close();
  });

  it.each([
    ['opened from the store', undefined],
    ["adopted from another version's graph", 3.5],
  ])('scans the stale rows of an index %s exactly beside its candidates', async (_, drift) => {
    const vectors = catalog(2000, 'opened');
    const { observer, builds } = recording();
    // As an index opened from the store (or adopted: its drift measured): it lacks the rows whose
    // vectors changed since it was written, and says which.
    const stale = Int32Array.of(7, 1500);
    const opened: VectorIndexBuilder = async (source, signal) => {
      const index = await HNSW(
        { ...source, rows: source.rows.filter((row) => !stale.includes(row)) },
        signal,
      );
      return {
        dimension: index.dimension,
        size: index.size,
        bytes: index.bytes,
        stale,
        drift,
        search: (query, count) => index.search(query, count),
        close: () => {
          index.close();
        },
      };
    };
    const retrieval = new Retrieval(vectors, 1, SETTINGS, opened, observer);
    await retrieval.maintain();
    expect(builds).toEqual([
      expect.objectContaining({ rows: 1998, stale: 2, adopted: drift !== undefined }),
    ]);
    for (const row of stale) {
      const found = await retrieval.nearest(vectors.vector(row).slice(), 5, () => true, 2000);
      expect(Array.from(found)).toEqual(exact(vectors, vectors.vector(row), 1, 5));
      expect(Array.from(found)).toContain(row);
    }
    await retrieval.close();
  });
});

describe('biasSlot', () => {
  it("holds each listed row's bias over the scale, and nothing while every bias is 0", () => {
    const rows = Int32Array.of(3, 0, 2);
    expect(biasSlot(undefined, rows, 2)).toBeUndefined();
    expect(biasSlot(new Float32Array(4), rows, 2)).toBeUndefined();
    expect(Array.from(biasSlot(Float32Array.of(1, 0, -0.5, 4), rows, 2) ?? [])).toEqual([
      2, 0.5, -0.25,
    ]);
  });

  it("gives a replica's index no slot once its rows' biases are all back to 0", () => {
    const vectors = new RowVectors(2, 2);
    vectors.set(0, [1, 0], 0.5, 0);
    vectors.set(1, [0, 1], 0, 0);
    expect(Array.from(indexSource(vectors, 1).extra ?? [])).toEqual([0.5, 0]);
    vectors.set(0, [1, 0], 0, 0);
    expect(indexSource(vectors, 1).extra).toBeUndefined();
  });
});
