import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { ServingService } from '../../src/modules/serving/serving.service';
import { topK } from '../../src/modules/serving/top-k';
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
 * from these histories (item ids, most recent first).
 */
export interface RecallRequest {
  readonly histories: readonly (readonly string[])[];
  readonly k: number;
  readonly pool: number;
}

export interface RecallAnswer {
  readonly recallAtK: number;
  readonly users: number;
}

/** The process's resident memory (Linux /proc), in bytes. */
export function rssBytes(pid: number | 'self' = 'self'): number {
  const line = readFileSync(`/proc/${String(pid)}/status`, 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('VmRSS:'));
  return Number(line?.replace(/\D+/g, '') ?? 0) * 1024;
}

/**
 * The real service (api role) for the recommend benchmark: serves the in-memory category model
 * over the seeded catalog (BENCH_ITEMS items in PostgreSQL) plus BENCH_EXTRA_ITEMS item vectors
 * of the same categories without catalog rows, so a large catalog does not need seeding; waits
 * for the ANN index (when RECOMMEND_ANN_MIN_ITEMS lets one build) before it reports ready.
 */
async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  const config = loadConfig({ ...process.env, ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
  const catalog = generateCatalog({
    items: Number(process.env.BENCH_ITEMS),
    seed: process.env.BENCH_SEED ?? 'bench',
  });
  const extra = Number(process.env.BENCH_EXTRA_ITEMS ?? 0);
  const items = [
    ...catalog.items,
    ...Array.from({ length: extra }, (_, i) => ({
      itemId: `extra-${String(i)}`,
      category: catalog.categories[i % catalog.categories.length],
    })),
  ];
  const model = fakeCategoryModel(items, {
    versionId: 'bench',
    dimension: Number(process.env.BENCH_DIMENSION ?? 384),
  });
  const app = await startApp(config, { models: new PinnedModels({ model }) });
  await app.get(OnlineStateService, { strict: false }).rebuild(() => undefined);
  const serving = app.get(ServingService, { strict: false });
  const served = serving.current().served;
  if (served === undefined) throw new Error('no served model');
  const started = performance.now();
  let buildMs: number | undefined;
  const building = served.retrieval.maintain();
  if (building !== undefined) {
    await building;
    buildMs = performance.now() - started;
  }
  process.on('message', (message: unknown) => {
    const request = message as RecallRequest;
    process.send?.(recall(serving, request));
  });
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const ready: RecommendServerReady = {
    port,
    items: items.length,
    indexed: served.retrieval.indexed,
    indexBuildMs: buildMs,
    indexBytes: served.retrieval.bytes,
    rssBytes: rssBytes(),
  };
  process.send(ready);
}

/** The users' top k by the served retrieval (pool rows re-scored) against the exact scan's. */
function recall(serving: ServingService, request: RecallRequest): RecallAnswer {
  const { items, served } = serving.current();
  if (served === undefined) throw new Error('no served model');
  const { vectors, model, retrieval } = served;
  let found = 0;
  let users = 0;
  for (const history of request.histories) {
    const pooled = history
      .map((itemId) => items.row(itemId))
      .filter((row) => row >= 0 && vectors.has(row))
      .map((row, i) => ({ vector: vectors.vector(row), type: 'click', ts: Date.now() - i }));
    if (pooled.length === 0) continue;
    const user = model.userVector(pooled);
    const all = () => true;
    const served = retrieval.nearest(user, request.pool, all, items.size).subarray(0, request.k);
    const exact = topK(
      vectors.matrix.subarray(0, items.size * vectors.dimension),
      vectors.dimension,
      user,
      request.k,
      (row) => !vectors.has(row),
      vectors.bias,
    );
    const truth = new Set(exact.rows);
    for (const row of served) if (truth.has(row)) found++;
    users++;
  }
  return { recallAtK: found / Math.max(1, users * request.k), users };
}

// The bench imports this file for its types and `rssBytes`: only a forked server runs main.
if (require.main === module) {
  void main().catch((error: unknown) => {
    process.stderr.write(`recommend server failed: ${String(error)}\n`);
    process.exit(1);
  });
}
