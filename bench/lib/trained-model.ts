import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { AppModule } from '../../src/app.module';
import { createLogger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import { TrainingCoreModule } from '../../src/modules/training/training.module';
import { TrainingService } from '../../src/modules/training/training.service';
import type { SyntheticItem } from '../../src/synthetic';
import { fakeCategoryModel } from '../../test/support/fakes/category-model';

/** The text vectors' dimension: the production encoder's (all-MiniLM-L6-v2). */
export const TEXT_DIMENSION = 384;
const CHUNK = 5000;

/** The training side of the service (registry, artifact store, trainer) in this process. */
export function trainingContext(config: AppConfig): Promise<INestApplicationContext> {
  return NestFactory.createApplicationContext(
    AppModule.withModules(config, createLogger('warn'), [TrainingCoreModule]),
    { logger: false },
  );
}

/**
 * Text vectors for every item under the trainer's encoder id, in place of running the encoder
 * over every text: each item's category direction plus item noise, so training has something to
 * learn. What serving costs depends on the dimension, not on the values.
 */
export async function insertTextVectors(
  app: INestApplicationContext,
  databaseUrl: string,
  items: readonly SyntheticItem[],
): Promise<string> {
  const { encoderId } = app.get(TrainingService, { strict: false });
  const { ids, matrix } = fakeCategoryModel(items, {
    versionId: 'text',
    dimension: TEXT_DIMENSION,
  }).catalog;
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    for (let start = 0; start < ids.length; start += CHUNK) {
      const chunk = ids.slice(start, start + CHUNK);
      await db.query(
        `INSERT INTO item_embeddings (item_id, encoder_id, text_hash, dimension, vector)
         SELECT u.id, $2, 'bench', $3, u.vector FROM unnest($1::text[], $4::bytea[]) AS u(id, vector)`,
        [
          chunk,
          encoderId,
          TEXT_DIMENSION,
          chunk.map((_, i) =>
            Buffer.from(
              matrix.buffer,
              matrix.byteOffset + (start + i) * TEXT_DIMENSION * 4,
              TEXT_DIMENSION * 4,
            ),
          ),
        ],
      );
    }
  } finally {
    await db.end();
  }
  return encoderId;
}
