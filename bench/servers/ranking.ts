import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../src/common/logger';
import { loadConfig } from '../../src/config/config';
import { OnlineStateService } from '../../src/modules/ingest/online-state.service';
import { fakeCategoryModel } from '../../src/modules/ranking/serving-model.fake';
import { ServedModelHolder } from '../../src/modules/ranking/serving-model';
import { createServer } from '../../src/server';
import { generateCatalog } from '../../src/synthetic';
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
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const ready: ServerReady = { port };
  process.send(ready);
}

void main().catch((error: unknown) => {
  process.stderr.write(`ranking server failed: ${String(error)}\n`);
  process.exit(1);
});
