import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { TrainingService } from '../../src/modules/training/training.service';
import type { SyntheticItem } from '../../src/synthetic';
import { startApp } from './app';
import { fakeCategoryModel } from './fakes/category-model';
import { insertItems, insertItemVectors } from './ranking-helpers';
import { createTestContext, TestContext } from './test-context';
import { activateUntrainedModel } from './untrained-model';

const DIMENSION = 32;

/**
 * The whole service (role `all`) over a synthetic catalog whose text vectors say each item's
 * category and nothing else, with an untrained model active: what tests of learning from clicks
 * start from. Topics of events, catalog and the served-slate log exist; `env` adds settings.
 */
export async function startCategoryStack(
  items: readonly SyntheticItem[],
  env: Record<string, string>,
): Promise<{ context: TestContext; app: NestFastifyApplication }> {
  const context = await createTestContext({
    TRAIN_BACKEND: 'cpu',
    TRAIN_EPOCHS: '3',
    TRAIN_CRON: 'off',
    SERVED_LOG_FLUSH_MS: '20',
    ...env,
  });
  await context.createServiceTopics();
  await insertItems(
    context.config.postgres.url,
    items.map((item) => ({
      itemId: item.itemId,
      title: item.title,
      category: item.category,
      price: item.price,
    })),
  );
  const app = await startApp(context.config, { role: 'all' });
  // Under the trainer's encoder id, so that training reads them as the items' text vectors.
  const encoderId = app.get(TrainingService, { strict: false }).encoderId;
  const vectors = fakeCategoryModel(items, { versionId: '0', dimension: DIMENSION }).catalog;
  await insertItemVectors(context.config.postgres.url, encoderId, {
    ids: vectors.ids,
    dimension: DIMENSION,
    matrix: vectors.matrix,
  });
  await activateUntrainedModel(app, encoderId, DIMENSION);
  return { context, app };
}
