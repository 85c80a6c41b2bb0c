import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { AppModule } from '../../src/app.module';
import { createLogger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import { RegistryRepository } from '../../src/modules/registry/registry.repository';
import { RegistryService } from '../../src/modules/registry/registry.service';
import { ARTIFACT_STORE, ArtifactStore } from '../../src/modules/registry/registry.types';
import { TrainingRunService } from '../../src/modules/training/training-run.service';
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

export interface TrainedVersions {
  /** Trained by a FULL training run and active. */
  readonly served: string;
  /** A candidate with the same artifact bytes under its own id: the experiment's second arm. */
  readonly second: string;
  readonly trainSeconds: number;
  /** The served version's artifact. */
  readonly artifact: Buffer;
  readonly artifactBytes: number;
  readonly outcome: string;
}

/**
 * The served version as production makes it: text vectors stored under the trainer's encoder
 * id, then a FULL training run (what `train-model --mode FULL` queues and the train role runs:
 * the tfjs trainer in a child process, the artifact into the artifact store, the version into
 * the registry, the promotion gate), activated through the registry if the gate left it a
 * candidate.
 */
export async function trainServedVersion(
  config: AppConfig,
  items: readonly SyntheticItem[],
): Promise<TrainedVersions> {
  // The served version's index is left to the api replicas, as the benches measure them; a
  // train role builds it ahead (catalog-scale's --built-ahead phase).
  const app = await trainingContext({
    ...config,
    retrieval: { ...config.retrieval, prebuild: false },
  });
  try {
    const encoderId = await insertTextVectors(app, config.postgres.url, items);
    const started = Date.now();
    const run = await app.get(TrainingRunService).run('FULL', 'bench');
    const trainSeconds = (Date.now() - started) / 1000;
    if (run.status !== 'succeeded' || run.versionId === null) {
      throw new Error(`training run ${run.id} ${run.status}: ${run.error ?? 'no version'}`);
    }
    const registry = app.get(RegistryService, { strict: false });
    if ((await registry.activeVersion())?.id !== run.versionId) {
      await registry.activate(run.versionId, 'bench');
    }
    const repository = app.get(RegistryRepository, { strict: false });
    const artifacts = app.get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false });
    const artifact = await artifacts.get(run.versionId);
    const second = await repository.insertTrainingVersion({
      parentId: run.versionId,
      encoderId,
      triggeredBy: 'bench',
    });
    await artifacts.put(second, artifact);
    await repository.setVersionStatus(second, 'candidate', null);
    return {
      served: run.versionId,
      second,
      trainSeconds,
      artifact,
      artifactBytes: artifact.length,
      outcome: run.outcome ?? 'none',
    };
  } finally {
    await app.close();
  }
}
