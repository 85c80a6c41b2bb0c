import type { INestApplicationContext } from '@nestjs/common';
import type { BertLayerWeights } from '../../src/common/bert-layer';
import { RegistryRepository } from '../../src/modules/registry/registry.repository';
import { RegistryService } from '../../src/modules/registry/registry.service';
import { ARTIFACT_STORE, ArtifactStore } from '../../src/modules/registry/registry.types';
import {
  DEFAULT_ARCHITECTURE,
  ModelArchitecture,
} from '../../src/modules/training/model/architecture';
import { serializeModel } from '../../src/modules/training/model/artifact';
import { initialWeights } from '../../src/modules/training/model/init-weights';

/**
 * The artifact of an untrained interest model: what training would write before any step
 * (`encoderLayers`: where a model that fine-tunes encoder layers starts them).
 */
export function untrainedArtifact(
  architecture: ModelArchitecture,
  encoderId: string,
  seed: string,
  encoderLayers?: readonly BertLayerWeights[],
): Buffer {
  return serializeModel(
    {
      architecture,
      encoderId,
      backend: 'cpu',
      hyperparameters: {},
      metrics: {},
      itemClicks: {},
      warmItems: [],
      createdAt: new Date(0).toISOString(),
    },
    initialWeights(architecture, 0, seed, encoderLayers === undefined ? {} : { encoderLayers }),
  );
}

/** Registers and activates `artifact` as training would; returns the version id. */
export async function activateArtifact(
  app: INestApplicationContext,
  encoderId: string,
  artifact: Buffer,
): Promise<string> {
  const registry = app.get(RegistryRepository, { strict: false });
  const id = await registry.insertTrainingVersion({
    parentId: null,
    encoderId,
    triggeredBy: 'test',
  });
  await app.get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false }).put(id, artifact);
  await registry.setVersionStatus(id, 'candidate', null);
  await app.get(RegistryService, { strict: false }).activate(id, 'test');
  return id;
}

/**
 * Registers and activates an untrained interest model over `encoderId`'s vectors, as training
 * would: its item tower is the identity, so rankings stay checkable. Returns the version id.
 */
export function activateUntrainedModel(
  app: INestApplicationContext,
  encoderId: string,
  dimension: number,
): Promise<string> {
  const architecture = { ...DEFAULT_ARCHITECTURE, dimension, idEmbedding: false };
  return activateArtifact(
    app,
    encoderId,
    untrainedArtifact(architecture, encoderId, `untrained-${encoderId}`),
  );
}
