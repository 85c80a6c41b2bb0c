import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { DEFAULT_ARCHITECTURE } from '../src/modules/training/model/architecture';
import { stopCatalogThread, threadPass } from '../src/modules/serving/catalog-adapter';
import { TowerPass, towerPass } from '../src/modules/serving/catalog-tower';
import { Random } from '../src/synthetic/prng';
import { Benchmark, integerFlag, progress } from './lib/harness';
import { percentile } from './lib/percentile';
import { measured, ThreadBusy } from './lib/thread-busy';

const WARM_ITEMS = 5000;
/** Rows per block, each followed by a turn of the event loop, as serving ran the pass before. */
const REFERENCE_ROWS = 512;

function randomValues(random: Random, length: number, scale: number): Float32Array {
  return Float32Array.from({ length }, () => (random.next() - 0.5) * scale);
}

/** A catalog pass of `items` rows through the default architecture's tower, random values. */
function randomPass(items: number): TowerPass {
  const random = new Random('catalog-pass-bench');
  const { dimension: d, adapterHidden: hidden } = DEFAULT_ARCHITECTURE;
  const text = new Float32Array(new SharedArrayBuffer(items * d * 4));
  for (let i = 0; i < text.length; i++) text[i] = random.next() - 0.5;
  return {
    dimension: d,
    text,
    out: new Float32Array(new SharedArrayBuffer(items * d * 4)),
    adapter: {
      hidden,
      w1: randomValues(random, d * hidden, 0.2),
      b1: randomValues(random, hidden, 0.2),
      w2: randomValues(random, hidden * d, 0.2),
      b2: randomValues(random, d, 0.2),
    },
    idTable: randomValues(random, WARM_ITEMS * d, 0.2),
    // One item in ten has an ID embedding, as a catalog with a warm head.
    idRows: Int32Array.from({ length: items }, (_, row) =>
      row % 10 === 0 ? (row / 10) % WARM_ITEMS : -1,
    ),
    backend: 'auto',
  };
}

/** The reference: `pass` on this thread a block at a time, with a turn of the event loop after each. */
async function passOnThisThread(pass: TowerPass): Promise<void> {
  const d = pass.dimension;
  for (let start = 0; start < pass.idRows.length; start += REFERENCE_ROWS) {
    const end = Math.min(pass.idRows.length, start + REFERENCE_ROWS);
    await towerPass({
      ...pass,
      text: pass.text.subarray(start * d, end * d),
      out: pass.out.subarray(start * d, end * d),
      idRows: pass.idRows.subarray(start, end),
    });
    await yieldToEventLoop();
  }
}

/**
 * `npm run bench -- catalog-pass [--items 300000] [--runs 3]`: a version's item tower over the
 * catalog (the default architecture: 384-d, the residual adapter's 32 hidden units, ID embeddings
 * for a tenth of the items) on the request thread (the reference, as serving ran it before the
 * catalog pass's thread) and on that thread (catalog-adapter.ts): the request thread's busy time
 * and event-loop delay during each pass, and its wall time.
 */
const benchmark: Benchmark = {
  description:
    'A version’s item tower over the catalog: on the request thread, on a thread of its own',
  async run(args) {
    const items = integerFlag(args, 'items', 300_000, 1);
    const runs = integerFlag(args, 'runs', 3, 1);
    progress(`${items.toLocaleString('en-US')} random text vectors`);
    const pass = randomPass(items);
    const reference = new Float32Array(pass.out.length);
    const passes: ThreadBusy[] = [];
    let maxDifference = 0;
    try {
      for (let run = 1; run <= runs; run++) {
        progress(`run ${run} of ${runs}`);
        passes.push(
          await measured('on the request thread (reference)', () => passOnThisThread(pass)),
        );
        reference.set(pass.out);
        pass.out.fill(0);
        passes.push(await measured('on the catalog pass’s thread', () => threadPass(pass)));
        for (let i = 0; i < reference.length; i++) {
          maxDifference = Math.max(maxDifference, Math.abs(reference[i] - pass.out[i]));
        }
      }
    } finally {
      await stopCatalogThread();
    }
    if (maxDifference > 1e-5) {
      throw new Error(`the two passes disagree by up to ${maxDifference}`);
    }
    const of = (way: string) => passes.filter((measure) => measure.way === way);
    const busy = [...new Set(passes.map((measure) => measure.way))].map((way) =>
      percentile(
        of(way)
          .map((measure) => measure.busyS)
          .sort((a, b) => a - b),
        50,
      ),
    );
    return {
      title: `The item tower over ${items.toLocaleString('en-US')} items (${runs} runs each way)`,
      rows: passes.map((measure, i) => ({
        run: Math.floor(i / 2) + 1,
        way: measure.way,
        'request thread busy s': measure.busyS,
        'loop delay p99 ms': measure.delayP99Ms,
        'loop delay max ms': measure.delayMaxMs,
        'wall s': measure.wallS,
      })),
      figures: { items, passes, busyRatio: busy[0] / busy[1], maxDifference },
      notes: [
        `The request thread's busy time, medians: ${busy[0].toFixed(3)} s on it against ${busy[1].toFixed(3)} s with the catalog pass's thread, ${(busy[0] / busy[1]).toFixed(0)}× less; both passes wrote the same values (largest difference ${maxDifference.toExponential(1)}).`,
        'Busy is the event loop’s active time (performance.eventLoopUtilization) during the pass; the delay is how late its 1 ms timer ran. The reference runs as serving ran it before, in blocks of 512 rows with a turn of the event loop after each.',
      ],
    };
  },
};

export default benchmark;
