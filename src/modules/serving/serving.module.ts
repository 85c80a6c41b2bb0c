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
import { ACTIVATION_LISTENER, ModelSwapService } from './model-swap.service';
import { RetrievalIndexModule } from './retrieval-index.module';
import { LOADED_MODELS } from './served-model';
import type { LoadedModels } from './served-model';
import { ServingResolver, VersionIndexResolver } from './serving.resolver';
import { ServingService } from './serving.service';

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
    RetrievalIndexModule,
  ],
  providers: [
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
    ServingService,
    ServingResolver,
    VersionIndexResolver,
  ],
  exports: [ServingService],
})
export class ServingModule {}
