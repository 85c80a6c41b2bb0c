import { Module } from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { createPgListener } from '../../infra/pg-listener';
import { LOGGER } from '../../infra/tokens';
import { HealthModule } from '../health/health.module';
import { PgArtifactStore } from './artifact.repository';
import { TrainingModule } from '../training/training.module';
import { TrainingService } from '../training/training.service';
import { CatalogVectorsRepository } from './catalog-vectors.repository';
import { InterestModelLoader } from './interest-model.loader';
import { ModelSwapService, REGISTRY_LISTENER } from './model-swap.service';
import { RegistryRepository } from './registry.repository';
import { RegistryResolver, TrainingRunResolver } from './registry.resolver';
import { RegistryService } from './registry.service';
import { ARTIFACT_STORE, MODEL_LOADER, MODEL_TRAINER } from './registry.types';
import type { ModelTrainer } from './registry.types';
import { TrainingScheduler } from './training.scheduler';
import { TrainingRunService } from './training-run.service';

/** Registry storage, activation and training runs; shared by the api and train roles. */
@Module({
  imports: [TrainingModule],
  providers: [
    RegistryRepository,
    { provide: ARTIFACT_STORE, useClass: PgArtifactStore },
    // The training module fits models on a worker thread; the registry only orchestrates.
    {
      provide: MODEL_TRAINER,
      inject: [TrainingService],
      useFactory: (trainer: TrainingService): ModelTrainer => trainer,
    },
    RegistryService,
    TrainingRunService,
  ],
  exports: [RegistryRepository, ARTIFACT_STORE, RegistryService, TrainingRunService],
})
export class RegistryCoreModule {}

/** The api role's part: ops GraphQL and the hot-swapped served model of this replica. */
@Module({
  imports: [RegistryCoreModule, HealthModule],
  providers: [
    CatalogVectorsRepository,
    { provide: MODEL_LOADER, useClass: InterestModelLoader },
    {
      provide: REGISTRY_LISTENER,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => createPgListener(config.postgres, logger),
    },
    ModelSwapService,
    RegistryResolver,
    TrainingRunResolver,
  ],
  exports: [ModelSwapService],
})
export class RegistryApiModule {}

/** The train role's part: scheduled incremental fine-tuning. */
@Module({ imports: [RegistryCoreModule], providers: [TrainingScheduler] })
export class RegistryTrainModule {}
