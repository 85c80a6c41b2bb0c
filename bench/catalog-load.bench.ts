import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Pool } from 'pg';
import { loadConfig } from '../src/config/config';
import { PgBulkReader } from '../src/infra/pg-bulk-reader';
import { stopCatalogThread, threadPass } from '../src/modules/serving/catalog-adapter';
import { TowerPass, towerPass } from '../src/modules/serving/catalog-tower';
import { ItemTable } from '../src/modules/serving/item-table';
import { RowVectors } from '../src/modules/serving/row-vectors';
import type { TextVectors } from '../src/modules/serving/served-model';
import { ServingRepository } from '../src/modules/serving/serving.repository';
import { COPY_ROWS } from '../src/modules/serving/serving.service';
import { VectorMemory } from '../src/common/vector-memory';
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
const COPIED = 'copied to new rows (reference)';
const ROWS = 'to the item-table rows';
const isReference = (way: string) => way === REFERENCE || way === COPIED;

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

/**
 * The default architecture's tower (random weights) over `text`, a tenth of the items warm, into
 * `out`'s memory, as a load's.
 */
function towerOver(text: TextVectors, random: Random, out: VectorMemory): TowerPass {
  const { dimension: d, adapterHidden: hidden } = DEFAULT_ARCHITECTURE;
  const shared = new Float32Array(new SharedArrayBuffer(text.matrix.byteLength));
  shared.set(text.matrix);
  return {
    dimension: d,
    text: shared,
    out: out.matrix,
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

/**
 * A replica's item table and each catalog item's row in it: the table read at start by item id
 * with the deleted items (one in 50) among them, and one item in 200 added to it later, at its
 * end, as a replica that follows its catalog has them.
 */
function tableRows(ids: readonly string[]): { capacity: number; rows: Int32Array } {
  const table = new ItemTable();
  ids.forEach((itemId, i) => {
    if (i % 50 === 0) table.ensureRow(`${itemId}-deleted`);
    if (i % 200 !== 7) table.ensureRow(itemId);
  });
  const rows = Int32Array.from(ids, (itemId) => table.ensureRow(itemId));
  return { capacity: table.size, rows };
}

/** The reference: the tower's output copied to new rows, a turn after COPY_ROWS, as before. */
async function copyToRows(out: VectorMemory, rows: Int32Array, capacity: number) {
  const d = out.dimension;
  const vectors = new RowVectors(d, capacity);
  for (let start = 0; start < rows.length; start += COPY_ROWS) {
    const end = Math.min(rows.length, start + COPY_ROWS);
    for (let i = start; i < end; i++) {
      vectors.set(rows[i], out.matrix.subarray(i * d, (i + 1) * d), 0, 0);
    }
    await yieldToEventLoop();
  }
  return vectors;
}

/** The tower's output moved to its rows in its own memory, as serving does now. */
async function moveToRows(out: VectorMemory, rows: Int32Array, capacity: number) {
  const vectors = new RowVectors(out.dimension, capacity, out);
  const steps = vectors.moveToRows(rows, undefined, COPY_ROWS);
  while (steps.next().done !== true) await yieldToEventLoop();
  return vectors;
}

function sameValues(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length || a.some((value, i) => value !== b[i])) {
    throw new Error(`the two ways disagree on ${what}`);
  }
}

interface Stage extends ThreadBusy {
  readonly run: number;
  readonly stage: string;
  /** Memory the step allocated besides its input (the rows' step only). */
  readonly extraMiB?: number;
}

/**
 * `npm run bench -- catalog-load [--items 300000] [--runs 3]`: the two bulk steps of a version's
 * load in a replica, each on the request thread (the reference, as serving ran them before) and
 * off it: the catalog's text vectors read from PostgreSQL (the bulk reader's thread,
 * pg-bulk-reader.ts) and the item tower's pass over them (the default architecture: 384-d, the
 * residual adapter's 32 hidden units, ID embeddings for a tenth of the items; the catalog pass's
 * thread, catalog-adapter.ts). Then the tower's output put in a replica's item-table rows: copied
 * to new rows (the reference, as serving did before) and moved in place in the tower's own
 * memory (RowVectors.moveToRows). The request thread's busy time and event-loop delay, wall time,
 * and what the rows' step allocated.
 */
const benchmark: Benchmark = {
  description:
    'A version’s load: the text vectors’ read and the item tower’s pass, on the request thread and off it; its vectors to the rows, copied and moved',
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
        const out = new VectorMemory(text.dimension, text.ids.length);
        const pass = towerOver(text, random, out);
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
        const { capacity, rows } = tableRows(text.ids);
        let copied: RowVectors | undefined;
        const copy = await measured(COPIED, async () => {
          copied = await copyToRows(out, rows, capacity);
        });
        // Besides the tower's output: the copy's rows; the move allocates none.
        stages.push({ run, stage: ROWS, ...copy, extraMiB: (copied?.vectorBytes ?? 0) / 2 ** 20 });
        let moved: RowVectors | undefined;
        const move = await measured('moved in place, in the tower’s memory', async () => {
          moved = await moveToRows(out, rows, capacity);
        });
        stages.push({ run, stage: ROWS, ...move, extraMiB: 0 });
        if (copied === undefined || moved === undefined) throw new Error('no rows');
        sameValues(copied.matrix, moved.matrix, 'the rows’ vectors');
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
          .filter((s) => s.stage === stage && isReference(s.way) === reference)
          .map((s) => s.busyS)
          .sort((a, b) => a - b),
        50,
      );
    const ratios = ['text vectors read', 'item tower pass', ROWS].map((stage) => ({
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
        'extra MiB': s.extraMiB ?? '',
      })),
      figures: {
        items,
        stages,
        busyRatios: Object.fromEntries(ratios.map((r) => [r.stage, r.reference / r.offThread])),
      },
      notes: [
        ...ratios.map((r) =>
          r.stage === ROWS
            ? `${r.stage}: the request thread busy ${r.reference.toFixed(3)} s copying against ${r.offThread.toFixed(3)} s moving in place (medians), ${(r.reference / r.offThread).toFixed(2)}×; the copy allocated a second matrix (extra MiB), the move none.`
            : `${r.stage}: the request thread busy ${r.reference.toFixed(3)} s on it against ${r.offThread.toFixed(3)} s off it (medians), ${(r.reference / r.offThread).toFixed(0)}× less.`,
        ),
        'Both ways of each stage produced the same values (checked every run). Busy is the event loop’s active time (performance.eventLoopUtilization) during the stage; the delay is how late its 1 ms timer ran. The references run as serving ran them before: a page of RANK_CATALOG_PAGE_ROWS per statement with a turn of the event loop after each, the pass in blocks of 512 rows likewise.',
      ],
    };
  },
};

export default benchmark;
