import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { AppModule } from '../../src/app.module';
import { createLogger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import { ensureDatabase, migrate } from '../../src/infra/migrator';
import { TrainingCoreModule } from '../../src/modules/training/training.module';
import { TrainingService } from '../../src/modules/training/training.service';
import type { SyntheticItem } from '../../src/synthetic';
import { fakeCategoryModel } from '../../test/support/fakes/category-model';

/** The text vectors' dimension: the production encoder's (all-MiniLM-L6-v2). */
export const TEXT_DIMENSION = 384;
const CHUNK = 5000;

/** Drops `databaseUrl`'s database if it exists, creates it and migrates it. */
export async function freshDatabase(databaseUrl: string): Promise<void> {
  const admin = new URL(databaseUrl);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
  await ensureDatabase(databaseUrl);
  await migrate(databaseUrl, createLogger('warn'));
}

export async function dropDatabase(databaseUrl: string): Promise<void> {
  const admin = new URL(databaseUrl);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** Catalog rows as ingest stores them, already embedded (no embedding work pending). */
export async function insertCatalog(
  databaseUrl: string,
  items: readonly SyntheticItem[],
): Promise<void> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    for (let i = 0; i < items.length; i += CHUNK) {
      const chunk = items.slice(i, i + CHUNK);
      await db.query(
        `INSERT INTO items (item_id, title, description, category, tags, price, created_at, source_ts, text_hash, embed_pending)
         SELECT u.id, u.title, u.description, u.category, '{}', u.price, u.created_at, now(), 'bench', false
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[])
           AS u(id, title, description, category, price, created_at)`,
        [
          chunk.map((item) => item.itemId),
          chunk.map((item) => item.title),
          chunk.map((item) => item.description),
          chunk.map((item) => item.category),
          chunk.map((item) => item.price),
          chunk.map((item) => item.createdAt),
        ],
      );
    }
  } finally {
    await db.end();
  }
}

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
