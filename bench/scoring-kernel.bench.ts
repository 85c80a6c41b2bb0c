import { Random } from '../src/synthetic';
import { RowVectors } from '../src/modules/serving/row-vectors';
import { dotRow, topK, topKOf } from '../src/modules/serving/top-k';
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

/** Median and 90th percentile of `repetitions` timings (µs) of `work` on fresh random rows. */
function measure(
  settings: Settings,
  random: Random,
  cold: boolean,
  work: (rows: Int32Array) => void,
): { median: number; p90: number } {
  const flush = new Float64Array(cold ? FLUSH_BYTES / 8 : 0);
  const times: number[] = [];
  const rows = new Int32Array(settings.candidates);
  for (let rep = 0; rep < settings.repetitions; rep++) {
    for (let i = 0; i < rows.length; i++) rows[i] = Math.floor(random.next() * settings.items);
    // One read per cache line of the flush buffer, written back so it cannot be skipped.
    for (let i = 0; i < flush.length; i += 8) flush[i] += 1;
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
    ],
    figures: { settings, rounds: rows, scanJsMs: scanJs, scanSimdMs: scanSimd, ratios },
    notes: [
      'Fresh random rows for every repetition, as a rank reads its candidates: "warm" only skips the cache flush, the rows still come mostly from memory.',
      'SIMD: four rows at a time, f32x4 products with float32 sums; JavaScript: four-way unrolled, sums in doubles. Scores agree to about 1e-6 relative.',
    ],
  };
}

export default benchmark;
