import { Random } from '../src/synthetic';
import { IdIndex } from '../src/modules/serving/id-index';
import { RowVectors } from '../src/modules/serving/row-vectors';
import { dotRow, topK, topKOf } from '../src/modules/serving/top-k';
import {
  ageFeature,
  DEFAULT_ARCHITECTURE,
  ModelArchitecture,
} from '../src/modules/training/model/architecture';
import { loadModel, ModelWeights } from '../src/modules/training/model/artifact';
import { InterestScorer } from '../src/modules/training/model/interest-scorer';
import { untrainedArtifact } from '../test/support/untrained-model';
import { Benchmark, BenchResult, integerFlag, progress } from './lib/harness';

interface Settings {
  readonly items: number;
  readonly dimension: number;
  readonly candidates: number;
  readonly repetitions: number;
  readonly rounds: number;
}

/** Bigger than the last-level cache: reading it evicts the rows a repetition touched. */
const FLUSH_BYTES = 64 * 1024 * 1024;

/**
 * Median and 90th percentile of `repetitions` timings (µs) of `work` on fresh random rows;
 * `prepare` runs untimed just before it, after the flush (what a request has just made).
 */
function measure(
  settings: Settings,
  random: Random,
  cold: boolean,
  work: (rows: Int32Array) => void,
  prepare?: (rows: Int32Array) => void,
): { median: number; p90: number } {
  const flush = new Float64Array(cold ? FLUSH_BYTES / 8 : 0);
  const times: number[] = [];
  const rows = new Int32Array(settings.candidates);
  for (let rep = 0; rep < settings.repetitions; rep++) {
    for (let i = 0; i < rows.length; i++) rows[i] = Math.floor(random.next() * settings.items);
    // One read per cache line of the flush buffer, written back so it cannot be skipped.
    for (let i = 0; i < flush.length; i += 8) flush[i] += 1;
    prepare?.(rows);
    const started = process.hrtime.bigint();
    work(rows);
    times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  times.sort((a, b) => a - b);
  const at = (share: number) => times[Math.floor(share * (times.length - 1))] ?? Number.NaN;
  return { median: at(0.5), p90: at(0.9) };
}

/** Wall time (ms) of `work`, best of three. */
function bestOf(work: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    work();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

const benchmark: Benchmark = {
  description:
    "the model score's dot products: the served WebAssembly SIMD kernel against the unrolled JavaScript loop it replaced, on the rows a rank reads and on a full exact scan",
  run(args) {
    return Promise.resolve(compare(args));
  },
};

function compare(args: readonly string[]): BenchResult {
  const settings: Settings = {
    items: integerFlag(args, 'items', 50_000, 1),
    dimension: integerFlag(args, 'dimension', 384, 1),
    candidates: integerFlag(args, 'candidates', 100, 1),
    repetitions: integerFlag(args, 'repetitions', 2000, 10),
    rounds: integerFlag(args, 'rounds', 2, 1),
  };
  const { items, dimension, candidates } = settings;
  const random = new Random('scoring-kernel');
  progress(`${items} random vectors of ${dimension}`);
  const vectors = new RowVectors(dimension, items);
  const vector = new Float32Array(dimension);
  for (let row = 0; row < items; row++) {
    for (let j = 0; j < dimension; j++) vector[j] = random.next() * 2 - 1;
    vectors.set(row, vector, 0, 0);
  }
  // The same rows in JavaScript memory, as the served vectors were kept before the kernel.
  const plain = new Float32Array(vectors.matrix);
  const user = Float32Array.from({ length: dimension }, () => random.next() * 2 - 1);
  const out = new Float64Array(candidates);
  const kernels = {
    javascript: (rows: Int32Array) => {
      for (let i = 0; i < rows.length; i++) out[i] = dotRow(plain, dimension, rows[i], user);
    },
    simd: (rows: Int32Array) => {
      vectors.scoreRows(rows, rows.length, user, 1, out);
    },
  };
  const rows: Record<string, string | number>[] = [];
  const ratios: number[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const cold of [false, true]) {
      progress(`round ${round}/${settings.rounds}, ${cold ? 'cold' : 'warm'} caches`);
      const js = measure(settings, random, cold, kernels.javascript);
      const simd = measure(settings, random, cold, kernels.simd);
      ratios.push(js.median / simd.median);
      rows.push({
        round,
        caches: cold ? 'cold (64 MB read before each)' : 'warm',
        'JavaScript µs (median)': js.median,
        'JavaScript µs (p90)': js.p90,
        'SIMD µs (median)': simd.median,
        'SIMD µs (p90)': simd.p90,
        'ratio JavaScript / SIMD': js.median / simd.median,
      });
    }
  }
  const tower = compareUserTowers(settings, random, plain);
  const lookups = compareIdLookups(settings, random);
  progress('exact scan of every row (top 200)');
  const scanJs = bestOf(() => topK(plain, dimension, user, 200));
  const scanSimd = bestOf(() =>
    topKOf(items, 200, (from, to, block) => {
      vectors.scoreRange(from, to, user, 1, block);
    }),
  );
  return {
    title: `Scoring kernel: ${candidates} random rows of a ${items.toLocaleString('en-US')} × ${dimension} float32 matrix, ${settings.repetitions} repetitions`,
    rows,
    tables: [
      {
        title: `Exact scan of all ${items.toLocaleString('en-US')} rows, top 200 (best of 3)`,
        rows: [
          {
            kernel: 'JavaScript (topK)',
            ms: scanJs,
          },
          { kernel: 'WebAssembly SIMD (topKOf over RowVectors)', ms: scanSimd },
          { kernel: 'ratio JavaScript / SIMD', ms: scanJs / scanSimd },
        ],
      },
      tower.table,
      lookups.table,
    ],
    figures: {
      settings,
      rounds: rows,
      scanJsMs: scanJs,
      scanSimdMs: scanSimd,
      ratios,
      userTower: tower.figures,
      idLookups: lookups.figures,
    },
    notes: [
      'Fresh random rows for every repetition, as a rank reads its candidates: "warm" only skips the cache flush, the rows still come mostly from memory.',
      'SIMD: four rows at a time, f32x4 products with float32 sums; JavaScript: four-way unrolled, sums in doubles. Scores agree to about 1e-6 relative.',
      'User tower: what a `rank` of a user without a cached interest vector computes (InterestScorer.userVector, attention over the most recent history items); the reference is the scalar JavaScript key projection it replaced, in this file, on the same weights.',
      "Id lookups: a request's candidate ids to item-table rows (IdIndex), fresh strings as a request parses them; one `get` after another (as served before) against `rowsOf`, which hashes every id and reads its first slot before confirming any.",
    ],
  };
}

/**
 * A request's candidate ids to rows: `IdIndex.get` one id after another against `rowsOf` (every
 * first slot read before any is confirmed), on fresh strings of `items` catalog-like ids.
 */
function compareIdLookups(settings: Settings, random: Random) {
  const ids = Array.from(
    { length: settings.items },
    (_, i) => `item-${String(i).padStart(7, '0')}`,
  );
  const index = new IdIndex(ids);
  const asked: string[] = [];
  const out = new Int32Array(settings.candidates);
  // Fresh strings, as JSON.parse gives a request's ids (not the index's own objects).
  const parse = (rows: Int32Array) => {
    for (let i = 0; i < rows.length; i++) asked[i] = JSON.parse(`"${ids[rows[i]]}"`) as string;
  };
  const lookup = {
    oneByOne: (rows: Int32Array) => {
      for (let i = 0; i < rows.length; i++) out[i] = index.get(asked[i]) ?? -1;
    },
    twoPasses: (rows: Int32Array) => {
      index.rowsOf(rows.length, (i) => asked[i], out);
    },
  };
  const rows: Record<string, string | number>[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const cold of [false, true]) {
      progress(`id lookups, round ${round}/${settings.rounds}, ${cold ? 'cold' : 'warm'} caches`);
      const oneByOne = measure(settings, random, cold, lookup.oneByOne, parse);
      const twoPasses = measure(settings, random, cold, lookup.twoPasses, parse);
      rows.push({
        round,
        caches: cold ? 'cold (64 MB read before each)' : 'warm',
        'get, one by one µs (median)': oneByOne.median,
        'rowsOf µs (median)': twoPasses.median,
        'ratio get / rowsOf': oneByOne.median / twoPasses.median,
      });
    }
  }
  return {
    table: {
      title: `Id lookups: ${settings.candidates} fresh ids of ${settings.items.toLocaleString('en-US')} to rows`,
      rows,
    },
    figures: { rounds: rows },
  };
}

/**
 * The user tower (history items' attention keys: a d × a projection each, then softmax pooling)
 * as served against the scalar JavaScript loop it replaced, on an untrained model's weights and
 * `maxHistory` random catalog rows per user.
 */
function compareUserTowers(settings: Settings, random: Random, catalog: Float32Array) {
  const architecture: ModelArchitecture = {
    ...DEFAULT_ARCHITECTURE,
    dimension: settings.dimension,
    idEmbedding: false,
  };
  const artifact = untrainedArtifact(architecture, 'bench-encoder', 'scoring-kernel');
  const served = InterestScorer.fromArtifact(artifact);
  const { weights } = loadModel(artifact);
  const { dimension: d, maxHistory } = architecture;
  const histories = Array.from({ length: 500 }, () =>
    Array.from({ length: maxHistory }, () => {
      const row = Math.floor(random.next() * settings.items);
      return catalog.subarray(row * d, (row + 1) * d);
    }),
  );
  const ages = Array.from({ length: maxHistory }, (_, j) => (j + 1) * 3_600_000);
  let difference = 0;
  for (const history of histories.slice(0, 50)) {
    const simd = served.userVector(history, ages);
    const scalar = scalarUserVector(architecture, weights, history, ages);
    for (let i = 0; i < d; i++) difference = Math.max(difference, Math.abs(simd[i] - scalar[i]));
  }
  const time = (work: (history: Float32Array[]) => void) => {
    const started = process.hrtime.bigint();
    for (const history of histories) work(history);
    return Number(process.hrtime.bigint() - started) / 1000 / histories.length;
  };
  const rows: Record<string, string | number>[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    progress(`user tower, round ${round}/${settings.rounds}`);
    const scalar = time((history) => scalarUserVector(architecture, weights, history, ages));
    const simd = time((history) => served.userVector(history, ages));
    rows.push({
      round,
      'JavaScript µs per user vector': scalar,
      'SIMD µs per user vector': simd,
      'ratio JavaScript / SIMD': scalar / simd,
    });
  }
  return {
    table: {
      title: `User tower: one interest vector from ${maxHistory} history items of ${d} (attention dimension ${architecture.attentionDim}), ${histories.length} users per round; largest difference ${difference.toExponential(1)}`,
      rows,
    },
    figures: { rounds: rows, largestDifference: difference },
  };
}

/** The user tower with its key projection in scalar JavaScript: the served code before SIMD. */
function scalarUserVector(
  architecture: ModelArchitecture,
  weights: ModelWeights,
  history: readonly Float32Array[],
  agesMs: readonly number[],
): Float32Array {
  const { dimension: d, attentionDim: a } = architecture;
  const tensor = (name: keyof ModelWeights) => {
    const found = weights[name];
    if (found === undefined) throw new Error(`the artifact has no ${name}`);
    return found.data;
  };
  const v = tensor('attention.v');
  const b = tensor('attention.b');
  const q = tensor('attention.q');
  const position = tensor('attention.position');
  const ageW = tensor('attention.age');
  const n = Math.min(history.length, architecture.maxHistory);
  const weightsOf = new Float64Array(n);
  const key = new Float64Array(a);
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const x = history[j];
    for (let k = 0; k < a; k++) key[k] = b[k];
    for (let i = 0; i < d; i++) {
      const xi = x[i];
      const row = i * a;
      for (let k = 0; k < a; k++) key[k] += xi * v[row + k];
    }
    const age = ageFeature(agesMs[j] ?? Number.NaN);
    for (let k = 0; k < a; k++) key[k] += position[j * a + k] + age * ageW[k];
    let logit = 0;
    for (let k = 0; k < a; k++) logit += Math.tanh(key[k]) * q[k];
    weightsOf[j] = logit;
    if (logit > max) max = logit;
  }
  let sum = 0;
  for (let j = 0; j < n; j++) sum += weightsOf[j] = Math.exp(weightsOf[j] - max);
  const acc = new Float64Array(d);
  for (let j = 0; j < n; j++) {
    const w = weightsOf[j] / sum;
    for (let i = 0; i < d; i++) acc[i] += w * history[j][i];
  }
  return Float32Array.from(acc);
}

export default benchmark;
