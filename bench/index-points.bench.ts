import { loadavg } from 'node:os';
import { HierarchicalNSW } from 'hnswlib-node';
import { loadConfig } from '../src/config/config';
import { catalogBackend } from '../src/modules/serving/catalog-adapter';
import {
  HNSW_SEED,
  pointValues,
  pointWriter,
  queryPoint,
  sampledRecall,
  spaceOf,
} from '../src/modules/serving/hnsw-graph';
import type { PointFormat } from '../src/modules/serving/hnsw-graph';
import { recallCheck, SECOND_GRAPH_BELOW } from '../src/modules/serving/hnsw-index';
import type { HnswSettings } from '../src/modules/serving/hnsw-index';
import { ArtifactInterestModel } from '../src/modules/serving/interest-model';
import { biasSlot } from '../src/modules/serving/retrieval';
import type { IndexSource } from '../src/modules/serving/retrieval';
import { bestFirst, topK } from '../src/modules/serving/top-k';
import { loadModel } from '../src/modules/training/model/artifact';
import { fakeCategoryModel } from '../test/support/fakes/category-model';
import { databaseUrlFor, dropDatabase, seedCatalogAndWeek } from './lib/bench-store';
import { Benchmark, integerFlag, progress } from './lib/harness';
import { TEXT_DIMENSION, trainServedVersion } from './lib/trained-model';

/** Own database per run: concurrent runs must not drop each other's. */
const DATABASE = `recsys_bench_points_${String(process.pid)}`;
const SEED = 'bench-points';
const K = 20;
/** The history a user vector pools, most recent first (the served model's window is shorter). */
const HISTORY = 50;

interface Settings {
  readonly items: number;
  readonly users: number;
  readonly impressions: number;
  readonly efs: readonly number[];
}

function parseSettings(args: readonly string[]): Settings {
  const index = args.indexOf('--ef');
  const efs = (index === -1 ? '200,400,600,1000' : (args[index + 1] ?? '')).split(',').map(Number);
  if (!efs.every((ef) => Number.isInteger(ef) && ef >= K)) {
    throw new Error(`--ef: integers of at least ${K}, comma-separated`);
  }
  return {
    items: integerFlag(args, 'items', 60_000, 1000),
    users: integerFlag(args, 'users', 300, 1),
    impressions: integerFlag(args, 'impressions', 40_000, 1000),
    efs,
  };
}

/** A user as `recommend` asks the index: the model's query, and the items left out (seen). */
interface Query {
  readonly vector: Float32Array;
  readonly seen: ReadonlySet<number>;
}

/** Searches one graph: rows by about the largest score, `count` of them. */
type Search = (query: Float32Array, count: number) => Promise<ArrayLike<number>>;

/**
 * A graph of the source's points in `format`, as the index's thread builds it (hnsw.thread.ts:
 * the same points, hnswlib seed and settings), on this thread; and its recall sampled by the
 * service's own check, on which the service keeps an inner-product graph or builds the other.
 */
function graphOf(source: IndexSource, format: PointFormat, settings: HnswSettings) {
  const started = performance.now();
  const hnsw = new HierarchicalNSW(spaceOf(format), pointValues(source, format));
  hnsw.initIndex(source.rows.length, settings.m, settings.efConstruction, HNSW_SEED);
  const writePoint = pointWriter(source, format);
  const point = new Array<number>(pointValues(source, format)).fill(0);
  for (let i = 0; i < source.rows.length; i++) {
    writePoint(point, 0, i);
    hnsw.addPoint(point, source.rows[i]);
  }
  const seconds = (performance.now() - started) / 1000;
  let ef = 0;
  const searchSync = (query: number[], count: number, listed = count) => {
    if (listed !== ef) hnsw.setEf((ef = listed));
    return hnsw.searchKnn(queryPoint(query, format), count).neighbors;
  };
  const check = recallCheck(settings);
  const sampled = sampledRecall(
    (query, count) => searchSync(query, count, Math.max(check.ef, count)),
    source,
    new Uint8Array(source.rows.length).fill(1),
    check,
    () => false,
  );
  const search: Search = (query, count) => Promise.resolve(searchSync(Array.from(query), count));
  return { search, seconds, sampled: sampled ?? 0 };
}

/**
 * recall@20 as `recommend` gets it: the graph's `ef` candidates, seen items left out, re-scored
 * exactly, against the exact scan's top 20; and ms per query (search and re-scoring).
 */
async function recallAt(
  search: Search,
  score: (row: number, query: Float32Array) => number,
  queries: readonly Query[],
  exact: readonly ReadonlySet<number>[],
  ef: number,
): Promise<{ recall: number; ms: number }> {
  let found = 0;
  const started = performance.now();
  for (const [q, { vector, seen }] of queries.entries()) {
    const candidates = Int32Array.from(await search(vector, ef)).filter((row) => !seen.has(row));
    const scores = Float32Array.from(candidates, (row) => score(row, vector));
    for (const i of bestFirst(scores, candidates).subarray(0, K)) {
      if (exact[q].has(candidates[i])) found++;
    }
  }
  return {
    recall: found / (K * queries.length),
    ms: (performance.now() - started) / queries.length,
  };
}

const benchmark: Benchmark = {
  description:
    "recommend's index on a trained model's item vectors: recall@20 of the graph the service keeps (inner product, or norm-augmented where that samples low) against the inner-product graph alone",
  async run(args) {
    const settings = parseSettings(args);
    const loadBefore = loadavg()[0] ?? 0;
    const base = loadConfig(process.env);
    const databaseUrl = databaseUrlFor(base.postgres.url, DATABASE);
    const config = loadConfig({
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_KEY_PREFIX: `bench-points-${String(process.pid)}:`,
      KAFKA_TOPIC_PREFIX: `bench-points-${String(process.pid)}.`,
      TRAIN_CRON: 'off',
      TRAIN_EPOCHS: '2',
    });
    const { m, efConstruction } = config.retrieval;
    try {
      progress(`database ${DATABASE}: ${settings.items.toLocaleString('en-US')} items, a week`);
      const { catalog, events } = await seedCatalogAndWeek(databaseUrl, {
        items: settings.items,
        users: 1000,
        impressions: settings.impressions,
        seed: SEED,
      });
      progress(`${TEXT_DIMENSION}-d text vectors for every item, then a FULL training run`);
      const trained = await trainServedVersion(config, catalog.items);

      progress(`version ${trained.served}'s item tower over the catalog (as a replica loads it)`);
      await catalogBackend();
      const model = new ArtifactInterestModel(trained.served, loadModel(trained.artifact), {
        encoderId: 'none',
        encodeOnDemand: () => Promise.reject(new Error('no text is encoded on demand here')),
      });
      // The text vectors trainServedVersion stored (the same stand-in, computed again).
      const text = fakeCategoryModel(catalog.items, {
        versionId: 'text',
        dimension: TEXT_DIMENSION,
      }).catalog;
      const tower = await model.itemTower({ ...text, dimension: TEXT_DIMENSION });
      const { dimension } = model;
      const matrix = new Float32Array(new SharedArrayBuffer(tower.matrix.byteLength));
      matrix.set(tower.matrix);
      const rows = Int32Array.from(text.ids, (_, row) => row);
      const extra = biasSlot(tower.bias, rows, model.scale);
      const source: IndexSource = { matrix, dimension, rows, extra };
      let shortest = Infinity;
      let longest = 0;
      for (let row = 0; row < rows.length; row++) {
        const norm = Math.hypot(...matrix.subarray(row * dimension, (row + 1) * dimension));
        shortest = Math.min(shortest, norm);
        longest = Math.max(longest, norm);
      }

      // The users who clicked: their model vector from the history recommend would read.
      const rowOf = new Map(text.ids.map((id, row) => [id, row]));
      const histories = new Map<string, { row: number; type: string; ts: number }[]>();
      for (const event of events) {
        const row = rowOf.get(event.itemId);
        if (event.type === 'impression' || row === undefined) continue;
        const history = histories.get(event.userId) ?? [];
        history.push({ row, type: event.type, ts: Date.parse(event.timestamp) });
        histories.set(event.userId, history);
      }
      const queries: Query[] = [...histories.values()].slice(0, settings.users).map((history) => {
        const recent = history.sort((a, b) => b.ts - a.ts).slice(0, HISTORY);
        const user = model.userVector(
          recent.map(({ row, type, ts }) => ({
            vector: matrix.subarray(row * dimension, (row + 1) * dimension),
            type,
            ts,
          })),
        );
        const vector = new Float32Array(dimension + (extra === undefined ? 0 : 1));
        vector.set(user);
        if (extra !== undefined) vector[dimension] = 1;
        return { vector, seen: new Set(recent.map((entry) => entry.row)) };
      });
      const score = (row: number, query: Float32Array) => {
        let dot = extra === undefined ? 0 : extra[row] * query[dimension];
        for (let j = 0; j < dimension; j++) dot += matrix[row * dimension + j] * query[j];
        return dot;
      };
      const exact = queries.map(
        ({ vector, seen }) =>
          new Set(
            topK(matrix, dimension, vector.subarray(0, dimension), K, (row) => seen.has(row), extra)
              .rows,
          ),
      );

      const hnsw = { ...config.retrieval, m, efConstruction };
      progress(`the inner-product graph (M ${m}, efConstruction ${efConstruction})`);
      const inner = graphOf(source, 'inner-product', hnsw);
      progress('the norm-augmented graph of the same points');
      const augmented = graphOf(source, 'norm-augmented-l2', hnsw);
      // The service's rule (hnsw-index.ts): the second graph only below SECOND_GRAPH_BELOW.
      const servedFormat: PointFormat =
        inner.sampled < SECOND_GRAPH_BELOW && augmented.sampled > inner.sampled
          ? 'norm-augmented-l2'
          : 'inner-product';
      const servedSeconds =
        inner.seconds + (inner.sampled < SECOND_GRAPH_BELOW ? augmented.seconds : 0);

      const table: Record<string, string | number>[] = [];
      for (const ef of settings.efs) {
        const before = await recallAt(inner.search, score, queries, exact, ef);
        const other = await recallAt(augmented.search, score, queries, exact, ef);
        const served = servedFormat === 'inner-product' ? before : other;
        table.push({
          'search list (= candidates)': ef,
          'recall@20 inner product (before)': before.recall.toFixed(3),
          'recall@20 norm-augmented': other.recall.toFixed(3),
          [`recall@20 served (${servedFormat})`]: served.recall.toFixed(3),
          'ratio served / before': (served.recall / before.recall).toFixed(2),
          'ms per query inner / augmented': `${before.ms.toFixed(2)} / ${other.ms.toFixed(2)}`,
        });
      }
      const sampled = `${inner.sampled.toFixed(3)} / ${augmented.sampled.toFixed(3)}`;
      return {
        title: `recommend's index over ${settings.items.toLocaleString('en-US')} items of a trained model (${queries.length} users)`,
        rows: table,
        figures: {
          settings,
          users: queries.length,
          dimension,
          withBias: extra !== undefined,
          itemNorms: { shortest, longest },
          buildSeconds: {
            innerProduct: inner.seconds,
            normAugmented: augmented.seconds,
            served: servedSeconds,
          },
          sampledRecall: { innerProduct: inner.sampled, normAugmented: augmented.sampled },
          servedFormat,
          rows: table,
          loadAverage1mBefore: loadBefore,
        },
        notes: [
          `vectors: version ${trained.served}'s item tower over every item (a FULL run of 2 epochs on a week of synthetic events, stand-in text vectors: as the catalog-scale bench serves), item norms ${shortest.toFixed(2)}–${longest.toFixed(2)}${extra === undefined ? '' : ', with the bias slot'}`,
          `users: the ${queries.length} who clicked, each the model's vector of their last ${HISTORY} interactions; their items left out of the answers, as recommend does`,
          `recall@20: the graph's candidates re-scored exactly, against the exact scan's top 20; both graphs built as the index's thread builds them (M ${m}, efConstruction ${efConstruction}), here on one thread`,
          `served: the service's rule (hnsw-index.ts): the inner-product graph, unless its sampled recall is below ${SECOND_GRAPH_BELOW} and the norm-augmented one samples higher; sampled recall (items' vectors as users, ${config.retrieval.annCandidates} candidates) inner / augmented: ${sampled}`,
          `build s inner / augmented: ${inner.seconds.toFixed(0)} / ${augmented.seconds.toFixed(0)}; the service spends ${servedSeconds.toFixed(0)} s here (the second graph only when the first samples low)`,
          `1-minute load average before: ${loadBefore.toFixed(2)}`,
        ],
      };
    } finally {
      await dropDatabase(databaseUrl);
    }
  },
};

export default benchmark;
