import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Pool } from 'pg';
import { loadConfig } from '../src/config/config';
import { PgBulkReader } from '../src/infra/pg-bulk-reader';
import { stopCatalogThread, threadPass } from '../src/modules/serving/catalog-adapter';
import { TowerPass, towerPass } from '../src/modules/serving/catalog-tower';
import type { TextVectors } from '../src/modules/serving/served-model';
import { ServingRepository } from '../src/modules/serving/serving.repository';
import { DEFAULT_ARCHITECTURE } from '../src/modules/training/model/architecture';
import { Random } from '../src/synthetic/prng';
import {
  databaseUrlFor,
  dropDatabase,
  freshDatabase,
  insertEmbeddedItems,
} from './lib/bench-store';
import { Benchmark, integerFlag, progress } from './lib/harness';
import { percentile } from './lib/percentile';
import { measured, ThreadBusy } from './lib/thread-busy';

const DATABASE = 'recsys_bench_catalog_load';
const ENCODER_ID = 'bench-encoder:fp32';
const SEED_ROWS = 5000;
const WARM_ITEMS = 5000;
/** Rows per block, each followed by a turn of the event loop, as serving ran the pass before. */
const REFERENCE_ROWS = 512;

const REFERENCE = 'on the request thread (reference)';

function randomValues(random: Random, length: number, scale: number): Float32Array {
  return Float32Array.from({ length }, () => (random.next() - 0.5) * scale);
}

/** `items` embedded items, each with a random text vector. */
async function seed(pool: Pool, items: number, random: Random): Promise<void> {
  const d = DEFAULT_ARCHITECTURE.dimension;
  for (let start = 0; start < items; start += SEED_ROWS) {
    const ids = Array.from(
      { length: Math.min(SEED_ROWS, items - start) },
      (_, i) => `item-${String(start + i).padStart(7, '0')}`,
    );
    await insertEmbeddedItems(pool, ids, ENCODER_ID, d, () =>
      Buffer.from(randomValues(random, d, 1).buffer),
    );
  }
}

/**
 * The reference read: the text vectors as serving read them on the request thread before the
 * bulk reader's thread (pg decoding each page's rows into strings and buffers on this thread).
 */
async function readOnThisThread(pool: Pool, pageRows: number): Promise<TextVectors> {
  const ids: string[] = [];
  let dimension = 0;
  let matrix = new Float32Array(0);
  for (let after = ''; ;) {
    const { rows } = await pool.query<{ item_id: string; dimension: number; vector: Buffer }>(
      `SELECT e.item_id, e.dimension, e.vector, i.deleted
         FROM (SELECT * FROM item_embeddings WHERE encoder_id = $1 AND item_id > $2
               ORDER BY item_id LIMIT $3) e
         LEFT JOIN items i USING (item_id) ORDER BY e.item_id`,
      [ENCODER_ID, after, pageRows],
    );
    for (const row of rows) {
      dimension ||= row.dimension;
      if ((ids.length + 1) * dimension > matrix.length) {
        const grown = new Float32Array(Math.ceil(ids.length * 1.5 + pageRows) * dimension);
        grown.set(matrix);
        matrix = grown;
      }
      new Uint8Array(matrix.buffer, ids.length * dimension * 4, dimension * 4).set(row.vector);
      ids.push(row.item_id);
    }
    if (rows.length < pageRows) break;
    after = rows[rows.length - 1].item_id;
    await yieldToEventLoop();
  }
  return { ids, dimension, matrix: matrix.subarray(0, ids.length * dimension) };
}

/** The default architecture's tower (random weights) over `text`, a tenth of the items warm. */
function towerOver(text: TextVectors, random: Random): TowerPass {
  const { dimension: d, adapterHidden: hidden } = DEFAULT_ARCHITECTURE;
  const shared = new Float32Array(new SharedArrayBuffer(text.matrix.byteLength));
  shared.set(text.matrix);
  return {
    dimension: d,
    text: shared,
    out: new Float32Array(new SharedArrayBuffer(text.matrix.byteLength)),
    adapter: {
      hidden,
      w1: randomValues(random, d * hidden, 0.2),
      b1: randomValues(random, hidden, 0.2),
      w2: randomValues(random, hidden * d, 0.2),
      b2: randomValues(random, d, 0.2),
    },
    idTable: randomValues(random, WARM_ITEMS * d, 0.2),
    idRows: Int32Array.from(text.ids, (_, row) => (row % 10 === 0 ? (row / 10) % WARM_ITEMS : -1)),
    backend: 'auto',
  };
}

/** The reference pass: on this thread a block at a time, a turn of the event loop after each. */
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

function sameValues(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length || a.some((value, i) => value !== b[i])) {
    throw new Error(`the two ways disagree on ${what}`);
  }
}

interface Stage extends ThreadBusy {
  readonly run: number;
  readonly stage: string;
}

/**
 * `npm run bench -- catalog-load [--items 300000] [--runs 3]`: the two bulk steps of a version's
 * load in a replica, each on the request thread (the reference, as serving ran them before) and
 * off it: the catalog's text vectors read from PostgreSQL (the bulk reader's thread,
 * pg-bulk-reader.ts) and the item tower's pass over them (the default architecture: 384-d, the
 * residual adapter's 32 hidden units, ID embeddings for a tenth of the items; the catalog pass's
 * thread, catalog-adapter.ts). The request thread's busy time and event-loop delay, and wall time.
 */
const benchmark: Benchmark = {
  description:
    'A version’s load: the text vectors’ read and the item tower’s pass, on the request thread and off it',
  async run(args) {
    const items = integerFlag(args, 'items', 300_000, 1);
    const runs = integerFlag(args, 'runs', 3, 1);
    const config = loadConfig(process.env);
    const databaseUrl = databaseUrlFor(config.postgres.directUrl, DATABASE);
    await freshDatabase(databaseUrl);
    const pool = new Pool({ connectionString: databaseUrl, max: 2 });
    const reader = new PgBulkReader({
      ...config.postgres,
      url: databaseUrl,
      directUrl: databaseUrl,
    });
    const repository = new ServingRepository(pool, reader, config);
    const { catalogPageRows } = config.ranking;
    const random = new Random('catalog-load-bench');
    const stages: Stage[] = [];
    try {
      progress(`seeding ${items.toLocaleString('en-US')} items with 384-d text vectors`);
      await seed(pool, items, random);
      for (let run = 1; run <= runs; run++) {
        progress(`run ${run} of ${runs}`);
        let reference: TextVectors | undefined;
        stages.push({
          run,
          stage: 'text vectors read',
          ...(await measured(REFERENCE, async () => {
            reference = await readOnThisThread(pool, catalogPageRows);
          })),
        });
        let text: TextVectors | undefined;
        stages.push({
          run,
          stage: 'text vectors read',
          ...(await measured('on the bulk reader’s thread', async () => {
            text = await repository.textVectors(ENCODER_ID, items);
          })),
        });
        if (reference === undefined || text === undefined)
          throw new Error('a read returned nothing');
        sameValues(reference.matrix, text.matrix, 'the text vectors');
        const pass = towerOver(text, random);
        stages.push({
          run,
          stage: 'item tower pass',
          ...(await measured(REFERENCE, () => passOnThisThread(pass))),
        });
        const referenceOut = pass.out.slice();
        pass.out.fill(0);
        stages.push({
          run,
          stage: 'item tower pass',
          ...(await measured('on the catalog pass’s thread', () => threadPass(pass))),
        });
        sameValues(referenceOut, pass.out, 'the item vectors');
      }
    } finally {
      await stopCatalogThread();
      await reader.close();
      await pool.end();
      await dropDatabase(databaseUrl);
    }
    const medianBusy = (stage: string, reference: boolean) =>
      percentile(
        stages
          .filter((s) => s.stage === stage && (s.way === REFERENCE) === reference)
          .map((s) => s.busyS)
          .sort((a, b) => a - b),
        50,
      );
    const ratios = ['text vectors read', 'item tower pass'].map((stage) => ({
      stage,
      reference: medianBusy(stage, true),
      offThread: medianBusy(stage, false),
    }));
    return {
      title: `A version's load over ${items.toLocaleString('en-US')} items (${runs} runs each way)`,
      rows: stages.map((s) => ({
        run: s.run,
        stage: s.stage,
        way: s.way,
        'request thread busy s': s.busyS,
        'loop delay p99 ms': s.delayP99Ms,
        'loop delay max ms': s.delayMaxMs,
        'wall s': s.wallS,
      })),
      figures: {
        items,
        stages,
        busyRatios: Object.fromEntries(ratios.map((r) => [r.stage, r.reference / r.offThread])),
      },
      notes: [
        ...ratios.map(
          (r) =>
            `${r.stage}: the request thread busy ${r.reference.toFixed(3)} s on it against ${r.offThread.toFixed(3)} s off it (medians), ${(r.reference / r.offThread).toFixed(0)}× less.`,
        ),
        'Both ways of each stage produced the same values (checked every run). Busy is the event loop’s active time (performance.eventLoopUtilization) during the stage; the delay is how late its 1 ms timer ran. The references run as serving ran them before: a page of RANK_CATALOG_PAGE_ROWS per statement with a turn of the event loop after each, the pass in blocks of 512 rows likewise.',
      ],
    };
  },
};

export default benchmark;
