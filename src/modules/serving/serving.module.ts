import { Module } from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { createPgListener } from '../../infra/pg-listener';
import { LOGGER } from '../../infra/tokens';
import { EmbeddingApiModule } from '../embedding/embedding.module';
import { ExperimentsModule } from '../experiments/experiments.module';
import { HealthModule } from '../health/health.module';
import { OnlineStateReaderModule } from '../online-state/online-state.module';
import { RegistryModule } from '../registry/registry.module';
import { hnswIndexBuilder, hnswIndexOpener } from './hnsw-index';
import { InterestModelLoader } from './interest-model.loader';
import { ACTIVATION_LISTENER, ModelSwapService } from './model-swap.service';
import { VECTOR_INDEX_BUILDER, VECTOR_INDEX_OPENER } from './retrieval';
import { RetrievalIndexRepository } from './retrieval-index.repository';
import { LOADED_MODELS, MODEL_LOADER } from './served-model';
import type { LoadedModels } from './served-model';
import { ServingRepository } from './serving.repository';
import { ServingResolver } from './serving.resolver';
import { ServingService } from './serving.service';
import { StoredIndexService } from './stored-index.service';

/**
 * The api role's served model: the active version loaded and hot-swapped on activation, and the
 * item table every request ranks over (features, popularity, the version's item vectors by row).
 */
@Module({
  imports: [
    RegistryModule,
    ExperimentsModule,
    EmbeddingApiModule,
    OnlineStateReaderModule,
    HealthModule,
  ],
  providers: [
    ServingRepository,
    { provide: MODEL_LOADER, useClass: InterestModelLoader },
    {
      provide: ACTIVATION_LISTENER,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => createPgListener(config.postgres, logger),
    },
    ModelSwapService,
    // A factory, not `useExisting`: tests override this token to pin a model of their own.
    {
      provide: LOADED_MODELS,
      inject: [ModelSwapService],
      useFactory: (swap: ModelSwapService): LoadedModels => swap,
    },
    {
      provide: VECTOR_INDEX_BUILDER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => hnswIndexBuilder(config.retrieval),
    },
    {
      provide: VECTOR_INDEX_OPENER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => hnswIndexOpener(config.retrieval),
    },
    RetrievalIndexRepository,
    StoredIndexService,
    ServingService,
    ServingResolver,
  ],
  exports: [ServingService],
})
export class ServingModule {}
