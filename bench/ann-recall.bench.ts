import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config';
import { itemText } from '../src/modules/embedding/item-text';
import { cosine } from '../src/modules/embedding/vector-codec';
import { TransformersTextEncoder } from '../src/modules/embedding/transformers-encoder';
import { hnswIndexBuilder, hnswIndexOpener } from '../src/modules/serving/hnsw-index';
import type { VectorIndex } from '../src/modules/serving/retrieval';
import { bestFirst, dotRow, topK } from '../src/modules/serving/top-k';
import {
  generateBehaviour,
  generateCatalog,
  Random,
  SyntheticCatalog,
  SyntheticItem,
} from '../src/synthetic';
import { fakeCategoryModel } from '../test/support/fakes/category-model';
import { Benchmark, integerFlag, progress } from './lib/harness';

const SEED = 'bench-recommend';
const K = 20;
const DIMENSION = 384;

type Vectors = 'words' | 'category' | 'encoder';

interface Settings {
  readonly items: number;
  readonly vectors: Vectors;
  /** HNSW graphs to build: links per item (M) and efConstruction. */
  readonly graphs: readonly { readonly m: number; readonly efConstruction: number }[];
  readonly efs: readonly number[];
  readonly users: number;
  /**
   * How far each item moves in the next version (its vector plus this share of its length in a
   * random direction), one adoption of the first graph per value; none: no adoption measured.
   */
  readonly drifts: readonly number[];
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 1);
  const text = (flag: string): string | undefined => {
    const index = args.indexOf(`--${flag}`);
    return index === -1 ? undefined : args[index + 1];
  };
  const vectors = text('vectors') ?? 'words';
  if (vectors !== 'words' && vectors !== 'category' && vectors !== 'encoder') {
    throw new Error('--vectors: words, category or encoder');
  }
  const efs = (text('ef') ?? '100,200,400,800').split(',').map(Number);
  if (!efs.every((ef) => Number.isInteger(ef) && ef >= K)) {
    throw new Error(`--ef: integers of at least ${K}, comma-separated`);
  }
  const graphs = (text('graphs') ?? '48:200').split(',').map((graph) => {
    const [m, efConstruction] = graph.split(':').map(Number);
    if (!Number.isInteger(m) || m < 2 || !Number.isInteger(efConstruction) || efConstruction < 1) {
      throw new Error('--graphs: M:efConstruction pairs, comma-separated (e.g. 16:100,48:200)');
    }
    return { m, efConstruction };
  });
  const drifts = (text('drift') ?? '').split(',').filter(Boolean).map(Number);
  if (!drifts.every((drift) => Number.isFinite(drift) && drift >= 0)) {
    throw new Error('--drift: non-negative numbers, comma-separated (e.g. 0.1,0.3,0.6)');
  }
  return {
    items: value('items', 100_000),
    vectors,
    graphs,
    efs,
    users: value('users', 200),
    drifts,
  };
}

/**
 * The next version's vectors: each item's moved by `drift` of its length in a random direction
 * of its own (a seeded Gaussian), in shared memory.
 */
function drifted(matrix: Float32Array, drift: number): Float32Array<SharedArrayBuffer> {
  const random = new Random(`${SEED}:drift:${drift}`);
  const next = new Float32Array(new SharedArrayBuffer(matrix.byteLength));
  const step = new Float32Array(DIMENSION);
  for (let row = 0; row < matrix.length / DIMENSION; row++) {
    let stepNorm = 0;
    let norm = 0;
    for (let j = 0; j < DIMENSION; j++) {
      const u = 1 - random.next();
      step[j] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.next());
      stepNorm += step[j] * step[j];
      norm += matrix[row * DIMENSION + j] ** 2;
    }
    const scale = (drift * Math.sqrt(norm)) / (Math.sqrt(stepNorm) || 1);
    for (let j = 0; j < DIMENSION; j++) {
      next[row * DIMENSION + j] = matrix[row * DIMENSION + j] + scale * step[j];
    }
  }
  return next;
}

/** The mean cosine between each item's vector in `a` and in `b`. */
function meanCosine(a: Float32Array, b: Float32Array): number {
  const rows = a.length / DIMENSION;
  let sum = 0;
  for (let row = 0; row < rows; row++) {
    const at = row * DIMENSION;
    sum += cosine(a.subarray(at, at + DIMENSION), b.subarray(at, at + DIMENSION));
  }
  return sum / rows;
}

interface Query {
  readonly vector: Float32Array;
  readonly seen: Set<number>;
}

/** recall@20 of the index's `ef` candidates re-scored exactly, and ms per query. */
async function recallAt(
  index: VectorIndex,
  matrix: Float32Array,
  queries: readonly Query[],
  exact: readonly Int32Array[],
  ef: number,
): Promise<{ recall: number; ms: number }> {
  let found = 0;
  const started = performance.now();
  for (const [q, { vector, seen }] of queries.entries()) {
    const candidates = (await index.search(vector, ef)).filter((row) => !seen.has(row));
    const scores = Float32Array.from(candidates, (row) => dotRow(matrix, DIMENSION, row, vector));
    const truth = new Set(exact[q]);
    for (const i of bestFirst(scores, candidates).subarray(0, K)) {
      if (truth.has(candidates[i])) found++;
    }
  }
  return {
    recall: Number((found / (K * queries.length)).toFixed(3)),
    ms: Number(((performance.now() - started) / queries.length).toFixed(2)),
  };
}

/** Each item's vector, row-major and unit length, in shared memory (the index build reads it). */
async function itemVectors(
  items: readonly SyntheticItem[],
  vectors: Vectors,
): Promise<Float32Array<SharedArrayBuffer>> {
  const matrix = new Float32Array(new SharedArrayBuffer(items.length * DIMENSION * 4));
  if (vectors !== 'encoder') {
    const model = fakeCategoryModel(
      items.map((item) => ({ itemId: item.itemId, category: item.category, text: itemText(item) })),
      { versionId: 'bench', dimension: DIMENSION, vectors },
    );
    matrix.set(model.catalog.matrix);
    return matrix;
  }
  const { embedding } = loadConfig(process.env);
  const encoder = await TransformersTextEncoder.create({ ...embedding, batchSize: 32 });
  try {
    const chunk = 512;
    for (let i = 0; i < items.length; i += chunk) {
      const encoded = await encoder.encode(items.slice(i, i + chunk).map((item) => itemText(item)));
      encoded.forEach((vector, j) => {
        matrix.set(vector, (i + j) * DIMENSION);
      });
      if (i % (chunk * 20) === 0) progress(`encoded ${i.toLocaleString('en-US')} texts`);
    }
  } finally {
    await encoder.dispose();
  }
  return matrix;
}

/**
 * Users' vectors as the stand-in model pools them (recency-weighted mean of their clicked items,
 * unit length), and the items each clicked (left out of its answers, as recommend does).
 */
function users(
  catalog: SyntheticCatalog,
  matrix: Float32Array,
  count: number,
): { vector: Float32Array; seen: Set<number> }[] {
  const { items } = catalog;
  const to = new Date();
  const { events } = generateBehaviour({
    catalog,
    users: 2000,
    impressions: 200_000,
    seed: SEED,
    from: new Date(to.getTime() - 7 * 86_400_000),
    to,
  });
  const rowOf = new Map(items.map((item, row) => [item.itemId, row]));
  const histories = new Map<string, { row: number; ts: number }[]>();
  for (const event of events) {
    if (event.type === 'impression') continue;
    const history = histories.get(event.userId) ?? [];
    history.push({ row: rowOf.get(event.itemId) ?? 0, ts: Date.parse(event.timestamp) });
    histories.set(event.userId, history);
  }
  return [...histories.values()].slice(0, count).map((history) => {
    const rows = history
      .sort((a, b) => b.ts - a.ts)
      .slice(0, 50)
      .map((entry) => entry.row);
    const vector = new Float32Array(DIMENSION);
    rows.forEach((row, i) => {
      for (let j = 0; j < DIMENSION; j++) vector[j] += 0.9 ** i * matrix[row * DIMENSION + j];
    });
    const norm = Math.hypot(...vector) || 1;
    return { vector: vector.map((value) => value / norm), seen: new Set(rows) };
  });
}

const benchmark: Benchmark = {
  description:
    'HNSW recall@20 and search time by search list, for the stand-in model or the encoder vectors',
  async run(args) {
    const settings = parseSettings(args);
    const loadBefore = loadavg()[0] ?? 0;
    progress(`${settings.items} items, vectors by ${settings.vectors}`);
    const catalog = generateCatalog({ items: settings.items, seed: SEED });
    const { items } = catalog;
    const matrix = await itemVectors(items, settings.vectors);
    const queries = users(catalog, matrix, settings.users);
    const rows: Record<string, string | number>[] = [];
    const exactOf = (vectors: Float32Array, users: readonly Query[]) =>
      users.map(
        ({ vector, seen }) => topK(vectors, DIMENSION, vector, K, (row) => seen.has(row)).rows,
      );
    const exact = exactOf(matrix, queries);
    const allRows = Int32Array.from(items, (_, row) => row);
    const sourceOf = (vectors: Float32Array<SharedArrayBuffer>) => ({
      matrix: vectors,
      dimension: DIMENSION,
      rows: allRows,
      extra: undefined,
    });
    const adoptions: Record<string, string | number>[] = [];
    for (const [g, { m, efConstruction }] of settings.graphs.entries()) {
      progress(`building the index (M ${m}, efConstruction ${efConstruction})`);
      // efSearch 1: each search's list is then the rows it asks for (hnswlib raises it to those).
      // The index samples its own recall (the service's check) at the first search list.
      const hnsw = { m, efConstruction, efSearch: 1, annCandidates: settings.efs[0] };
      const started = performance.now();
      const index = await hnswIndexBuilder(hnsw)(sourceOf(matrix), new AbortController().signal);
      const buildSeconds = Math.round((performance.now() - started) / 1000);
      for (const ef of settings.efs) {
        const { recall, ms } = await recallAt(index, matrix, queries, exact, ef);
        rows.push({
          'M, efConstruction': `${m}, ${efConstruction}`,
          'build s': buildSeconds,
          'index MiB': Math.round(index.bytes / 2 ** 20),
          'search list (= candidates)': ef,
          'recall@20': recall,
          'ms per query': ms,
        });
      }
      if (g === 0 && settings.drifts.length > 0) {
        adoptions.push(...(await adopt(index, hnsw, buildSeconds)));
      }
      index.close();
    }

    /** The next version at each drift: the first graph adopted, against a fresh build. */
    async function adopt(
      index: VectorIndex,
      hnsw: Parameters<typeof hnswIndexBuilder>[0],
      buildSeconds: number,
    ): Promise<Record<string, string | number>[]> {
      const dir = await mkdtemp(path.join(tmpdir(), 'ann-recall-'));
      const written = path.join(dir, 'first.hnsw');
      const adoptedRows: Record<string, string | number>[] = [];
      try {
        await index.write?.(written);
        for (const drift of settings.drifts) {
          progress(`the next version, items moved by ${drift} of their length`);
          const next = drifted(matrix, drift);
          const nextQueries = users(catalog, next, settings.users);
          const nextExact = exactOf(next, nextQueries);
          const file = path.join(dir, `adopted-${drift}.hnsw`);
          await copyFile(written, file);
          let started = performance.now();
          const adopted = await hnswIndexOpener(hnsw)(
            file,
            index.pointFormat ?? '',
            allRows,
            sourceOf(next),
            new AbortController().signal,
            true,
          );
          const adoptSeconds = (performance.now() - started) / 1000;
          started = performance.now();
          const fresh = await hnswIndexBuilder(hnsw)(sourceOf(next), new AbortController().signal);
          const freshSeconds = (performance.now() - started) / 1000;
          for (const ef of settings.efs) {
            adoptedRows.push({
              drift,
              'mean cos (item, next)': Number(meanCosine(matrix, next).toFixed(3)),
              'drift measured by the adoption, deg': Number(
                (adopted.drift ?? Number.NaN).toFixed(1),
              ),
              'search list': ef,
              'recall@20 adopted': (await recallAt(adopted, next, nextQueries, nextExact, ef))
                .recall,
              'recall@20 fresh build': (await recallAt(fresh, next, nextQueries, nextExact, ef))
                .recall,
              'sampled recall adopted / fresh (the service’s check)': `${adopted.recall?.toFixed(3) ?? '?'} / ${fresh.recall?.toFixed(3) ?? '?'}`,
              'adopt s / build s': `${adoptSeconds.toFixed(1)} / ${freshSeconds.toFixed(0)} (first graph ${buildSeconds})`,
            });
          }
          adopted.close();
          fresh.close();
          await rm(file, { force: true });
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      return adoptedRows;
    }

    return {
      title: `HNSW recall@20 over ${settings.items.toLocaleString('en-US')} items, vectors by ${settings.vectors}`,
      rows,
      tables:
        adoptions.length === 0
          ? []
          : [
              {
                title: `The next version adopting the first graph (M ${settings.graphs[0].m}), against a fresh build of its own`,
                rows: adoptions,
              },
            ],
      figures: { settings, rows, adoptions, loadAverage1mBefore: loadBefore },
      notes: [
        `recall@20: the top 20 of the index's candidates re-scored exactly against the exact scan's, for ${queries.length} users' vectors pooled from synthetic histories (the recommend bench's), their history items left out`,
        'ms per query: the index search and the exact re-scoring, on one thread',
        ...(adoptions.length === 0
          ? []
          : [
              `adopted: the first graph's file given the next version's vectors and opened (hnsw-graph.ts, as RECOMMEND_ANN_ADOPT does); the users' vectors pooled again from the next version's; the sampled recall is the service's own check (64 items' vectors as users, ${settings.efs[0]} candidates); the drift is the mean angle between each point's vector before and after, which RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES judges, on which RECOMMEND_ANN_ADOPT_RECALL_LOSS judges`,
            ]),
        `vectors: words, the stand-in model by item text (IDF-weighted word directions plus a little noise); category, a category direction plus isotropic noise; encoder, the production sentence encoder on each item's text (slow: every item is encoded here)`,
        `1-minute load average before: ${loadBefore.toFixed(2)}`,
      ],
    };
  },
};

export default benchmark;
