import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../src/common/logger';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { fakeCategoryModel } from '../../src/modules/ranking/serving-model.fake';
import { RankingService } from '../../src/modules/ranking/ranking.service';
import { ServedModelHolder } from '../../src/modules/ranking/serving-model';
import { createServer } from '../../src/server';
import { generateCatalog } from '../../src/synthetic';
import { SKIP_RANKING } from './common';
import type { ServerReady } from './common';

/**
 * The real service (api role) for the ranking benchmark: rebuilds the online state from the
 * seeded PostgreSQL, serves the in-memory category model over the same catalog, then listens.
 * Env: DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX, BENCH_ITEMS, BENCH_SEED, BENCH_DIMENSION.
 */
async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  const config = loadConfig({ ...process.env, ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
  const app = await createServer(config, createLogger(config.logLevel));
  await app.init();
  await app.get(OnlineStateService, { strict: false }).rebuild(() => undefined);
  const catalog = generateCatalog({
    items: Number(process.env.BENCH_ITEMS),
    seed: process.env.BENCH_SEED ?? 'bench',
  });
  app.get(ServedModelHolder, { strict: false }).pin(
    fakeCategoryModel(catalog.items, {
      versionId: 'bench',
      dimension: Number(process.env.BENCH_DIMENSION ?? 64),
    }),
  );
  // The bench's reference for what the ranking itself costs: `rank` answered through the same
  // HTTP + GraphQL path with the ranking skipped (candidates in their order, score 0).
  const ranking = app.get(RankingService, { strict: false });
  const rank = ranking.rank.bind(ranking);
  const skipRanking: RankingService['rank'] = (_userId, candidates, _profile, requestId) =>
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
