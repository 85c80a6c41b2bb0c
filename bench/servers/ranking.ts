import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { RankingService } from '../../src/modules/ranking/ranking.service';
import { generateCatalog } from '../../src/synthetic';
import { PinnedModels, startApp } from '../../test/support/app';
import { fakeCategoryModel } from '../../test/support/fakes/category-model';
import { SKIP_RANKING } from './common';
import type { ServerReady } from './common';

/**
 * The real service (api role) for the ranking benchmark: serves the in-memory category model
 * over the seeded catalog, rebuilds the online state from the seeded PostgreSQL, then listens.
 * Env: DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX, BENCH_ITEMS, BENCH_SEED, BENCH_DIMENSION.
 */
async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  const config = loadConfig({ ...process.env, ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
  const catalog = generateCatalog({
    items: Number(process.env.BENCH_ITEMS),
    seed: process.env.BENCH_SEED ?? 'bench',
  });
  const model = fakeCategoryModel(catalog.items, {
    versionId: 'bench',
    dimension: Number(process.env.BENCH_DIMENSION ?? 64),
  });
  const app = await startApp(config, { models: new PinnedModels({ model }) });
  await app.get(OnlineStateService, { strict: false }).rebuild(() => undefined);
  // The bench's reference for what the ranking itself costs: `rank` answered through the same
  // HTTP + GraphQL path with the ranking skipped (candidates in their order, score 0).
  const ranking = app.get(RankingService, { strict: false });
  const rank = ranking.rank.bind(ranking);
  const skipRanking: RankingService['rank'] = (_userId, candidates, _profile, { requestId }) =>
    Promise.resolve({
      items: candidates.map((candidate, i) => ({
        itemId: candidate.itemId,
        rank: i + 1,
        score: 0,
        parts: [],
      })),
      modelVersion: null,
      requestId,
      degraded: [],
    });
  process.on('message', (message: unknown) => {
    ranking.rank = message === SKIP_RANKING ? skipRanking : rank;
    process.send?.(message);
  });
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const ready: ServerReady = { port };
  process.send(ready);
}

void main().catch((error: unknown) => {
  process.stderr.write(`ranking server failed: ${String(error)}\n`);
  process.exit(1);
});
