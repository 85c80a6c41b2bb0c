import { loadavg } from 'node:os';
import { loadConfig } from '../src/config/config';
import { itemText } from '../src/modules/embedding/item-text';
import { TransformersTextEncoder } from '../src/modules/embedding/transformers-encoder';
import { hnswIndexBuilder } from '../src/modules/serving/hnsw-index';
import { bestFirst, dotRow, topK } from '../src/modules/serving/top-k';
import {
  generateBehaviour,
  generateCatalog,
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
  return {
    items: value('items', 100_000),
    vectors,
    graphs,
    efs,
    users: value('users', 200),
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
    const exact = queries.map(
      ({ vector, seen }) => topK(matrix, DIMENSION, vector, K, (row) => seen.has(row)).rows,
    );
    const rows: Record<string, string | number>[] = [];
    for (const { m, efConstruction } of settings.graphs) {
      progress(`building the index (M ${m}, efConstruction ${efConstruction})`);
      const started = performance.now();
      // efSearch 1: each search's list is then the rows it asks for (hnswlib raises it to those).
      const index = await hnswIndexBuilder({ m, efConstruction, efSearch: 1, annCandidates: K })(
        {
          matrix,
          dimension: DIMENSION,
          rows: Int32Array.from(items, (_, row) => row),
          extra: undefined,
        },
        new AbortController().signal,
      );
      const buildSeconds = Math.round((performance.now() - started) / 1000);
      for (const ef of settings.efs) {
        let found = 0;
        const searchStarted = performance.now();
        for (const [q, { vector, seen }] of queries.entries()) {
          const candidates = (await index.search(vector, ef)).filter((row) => !seen.has(row));
          const scores = Float32Array.from(candidates, (row) =>
            dotRow(matrix, DIMENSION, row, vector),
          );
          const truth = new Set(exact[q]);
          for (const i of bestFirst(scores, candidates).subarray(0, K)) {
            if (truth.has(candidates[i])) found++;
          }
        }
        rows.push({
          'M, efConstruction': `${m}, ${efConstruction}`,
          'build s': buildSeconds,
          'index MiB': Math.round(index.bytes / 2 ** 20),
          'search list (= candidates)': ef,
          'recall@20': Number((found / (K * queries.length)).toFixed(3)),
          'ms per query': Number(((performance.now() - searchStarted) / queries.length).toFixed(2)),
        });
      }
    }
    return {
      title: `HNSW recall@20 over ${settings.items.toLocaleString('en-US')} items, vectors by ${settings.vectors}`,
      rows,
      figures: { settings, rows, loadAverage1mBefore: loadBefore },
      notes: [
        `recall@20: the top 20 of the index's candidates re-scored exactly against the exact scan's, for ${queries.length} users' vectors pooled from synthetic histories (the recommend bench's), their history items left out`,
        'ms per query: the index search and the exact re-scoring, on one thread',
        `vectors: words, the stand-in model by item text (IDF-weighted word directions plus a little noise); category, a category direction plus isotropic noise; encoder, the production sentence encoder on each item's text (slow: every item is encoded here)`,
        `1-minute load average before: ${loadBefore.toFixed(2)}`,
      ],
    };
  },
};

export default benchmark;
