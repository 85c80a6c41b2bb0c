import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import type { Histogram } from 'prom-client';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { Metrics } from '../../src/modules/metrics/metrics.registry';
import { ServingService } from '../../src/modules/serving/serving.service';
import { RowVectors } from '../../src/modules/serving/row-vectors';
import { dotRow, topK } from '../../src/modules/serving/top-k';
import { itemText } from '../../src/modules/embedding/item-text';
import type { LoadedModel } from '../../src/modules/serving/served-model';
import { generateCatalog } from '../../src/synthetic';
import { PinnedModels, startApp } from '../../test/support/app';
import { fakeCategoryModel } from '../../test/support/fakes/category-model';

/** IPC: the server is ready (index built when there is one). */
export interface RecommendServerReady {
  readonly port: number;
  /** Item vectors served. */
  readonly items: number;
  readonly indexed: boolean;
  readonly indexBuildMs: number | undefined;
  readonly indexBytes: number;
  readonly rssBytes: number;
}

/**
 * IPC request: recall@k of the served retrieval against the exact scan, for user vectors pooled
 * from these histories (item ids, most recent first; left out of the answers, as `recommend`
 * leaves out what a user interacted with).
 */
export interface RecallRequest {
  readonly type: 'recall';
  readonly histories: readonly (readonly string[])[];
  readonly k: number;
  readonly pool: number;
}

export interface RecallAnswer {
  readonly type: 'recall';
  readonly recallAtK: number;
  readonly users: number;
}

/** IPC request: drop the index, so that the exact scan answers from now on. */
export interface ExactRequest {
  readonly type: 'exact';
}

/**
 * IPC request: the V8 heap as the server holds it. RSS also counts the heap's room between
 * collections (the image's `--heap-growing-percent=200`), which this tells apart from memory kept.
 */
export interface MemoryRequest {
  readonly type: 'memory';
}

export interface MemoryAnswer {
  readonly type: 'memory';
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** Outside the heap: the item vectors' WebAssembly memory, buffers. */
  readonly externalBytes: number;
}

export type ServerRequest = RecallRequest | ExactRequest | MemoryRequest;
export type ServerAnswer = RecallAnswer | { readonly type: 'exact' } | MemoryAnswer;

/** The process's resident memory (Linux /proc), in bytes. */
export function rssBytes(pid: number | 'self' = 'self'): number {
  const line = readFileSync(`/proc/${String(pid)}/status`, 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('VmRSS:'));
  return Number(line?.replace(/\D+/g, '') ?? 0) * 1024;
}

/**
 * The in-memory stand-in model over the seeded catalog (BENCH_ITEMS items in PostgreSQL) and
 * BENCH_EXTRA_ITEMS more items of the same generator without catalog rows, so that a large
 * catalog needs no seeding; BENCH_VECTORS places the vectors (see fakeCategoryModel).
 */
function benchModel(): { model: LoadedModel; items: number } {
  const seed = process.env.BENCH_SEED ?? 'bench';
  const extra = Number(process.env.BENCH_EXTRA_ITEMS ?? 0);
  const items = [
    ...generateCatalog({ items: Number(process.env.BENCH_ITEMS), seed }).items,
    ...(extra === 0
      ? []
      : generateCatalog({ items: extra, seed: `${seed}-extra`, idPrefix: 'extra-' }).items),
  ];
  const vectors = process.env.BENCH_VECTORS === 'category' ? 'category' : 'words';
  const model = fakeCategoryModel(
    items.map((item) => ({
      itemId: item.itemId,
      category: item.category,
      text: vectors === 'words' ? itemText(item) : undefined,
    })),
    { versionId: 'bench', dimension: Number(process.env.BENCH_DIMENSION ?? 384), vectors },
  );
  return { model, items: items.length };
}

/**
 * BENCH_JS_KERNEL=1: model scores by the JavaScript loop the served SIMD kernel replaced (the
 * exact scan issue #20 measured), in place of RowVectors' kernel, for the reference run.
 */
function useJavaScriptKernel(): void {
  const score = (vectors: RowVectors, row: number, user: Float32Array, scale: number) =>
    scale * dotRow(vectors.matrix, vectors.dimension, row, user) + (vectors.bias?.[row] ?? 0);
  RowVectors.prototype.scoreRows = function scoreRows(rows, count, user, scale, out) {
    for (let i = 0; i < count; i++) out[i] = score(this, rows[i], user, scale);
  };
  RowVectors.prototype.scoreRange = function scoreRange(from, to, user, scale, out) {
    for (let row = from; row < to; row++) out[row - from] = score(this, row, user, scale);
  };
}

/**
 * The real service (api role) for the recommend benchmark, serving benchModel(); waits for the
 * ANN index (when RECOMMEND_ANN_MIN_ITEMS lets one build) before it reports ready.
 */
async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  const config = loadConfig({ ...process.env, ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
  if (process.env.BENCH_JS_KERNEL === '1') useJavaScriptKernel();
  const { model, items } = benchModel();
  const app = await startApp(config, { models: new PinnedModels({ model }) });
  await app.get(OnlineStateService, { strict: false }).rebuild(() => undefined);
  const serving = app.get(ServingService, { strict: false });
  const served = serving.current().served;
  if (served === undefined) throw new Error('no served model');
  await served.retrieval.maintain();
  process.on('message', (request: ServerRequest) => {
    switch (request.type) {
      case 'recall':
        void recall(serving, request).then((answer) =>
          process.send?.(answer satisfies ServerAnswer),
        );
        return;
      case 'exact':
        void served.retrieval
          .close()
          .then(() => process.send?.({ type: 'exact' } satisfies ServerAnswer));
        return;
      case 'memory': {
        const { heapUsed, heapTotal, external } = process.memoryUsage();
        const answer: MemoryAnswer = {
          type: 'memory',
          heapUsedBytes: heapUsed,
          heapTotalBytes: heapTotal,
          externalBytes: external,
        };
        process.send?.(answer);
        return;
      }
    }
  });
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const ready: RecommendServerReady = {
    port,
    items,
    indexed: served.retrieval.indexed,
    indexBuildMs: await indexBuildMs(app.get(Metrics, { strict: false })),
    indexBytes: served.retrieval.bytes,
    rssBytes: rssBytes(),
  };
  process.send(ready);
}

/** The index build's time as the service measured it (from its start, at the model's binding). */
async function indexBuildMs(metrics: Metrics): Promise<number | undefined> {
  const histogram = metrics.registry.getSingleMetric('retrieval_index_build_seconds') as
    Histogram | undefined;
  const sum = (await histogram?.get())?.values.find(
    (value) => value.metricName === 'retrieval_index_build_seconds_sum',
  );
  return sum === undefined || sum.value === 0 ? undefined : sum.value * 1000;
}

/** The users' top k by the served retrieval (pool rows re-scored) against the exact scan's. */
async function recall(serving: ServingService, request: RecallRequest): Promise<RecallAnswer> {
  const { items, served } = serving.current();
  if (served === undefined) throw new Error('no served model');
  const { vectors, model, retrieval } = served;
  let found = 0;
  let users = 0;
  for (const history of request.histories) {
    const rows = history
      .map((itemId) => items.row(itemId))
      .filter((row) => row >= 0 && vectors.has(row));
    if (rows.length === 0) continue;
    const seen = new Set(rows);
    const user = model.userVector(
      rows.map((row, i) => ({ vector: vectors.vector(row), type: 'click', ts: Date.now() - i })),
    );
    const unseen = (row: number) => !seen.has(row);
    const served = (await retrieval.nearest(user, request.pool, unseen, items.size)).subarray(
      0,
      request.k,
    );
    const exact = topK(
      vectors.matrix.subarray(0, items.size * vectors.dimension),
      vectors.dimension,
      user,
      request.k,
      (row) => !vectors.has(row) || seen.has(row),
      vectors.bias,
    );
    const truth = new Set(exact.rows);
    for (const row of served) if (truth.has(row)) found++;
    users++;
  }
  return { type: 'recall', recallAtK: found / Math.max(1, users * request.k), users };
}

// The bench imports this file for its types and `rssBytes`: only a forked server runs main.
if (require.main === module) {
  void main().catch((error: unknown) => {
    process.stderr.write(`recommend server failed: ${String(error)}\n`);
    process.exit(1);
  });
}
