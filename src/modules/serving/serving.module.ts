import { Module } from '@nestjs/common';
import { EmbeddingApiModule } from '../embedding/embedding.module';
import { ExperimentsModule } from '../experiments/experiments.module';
import { HealthModule } from '../health/health.module';
import { OnlineStateReaderModule } from '../online-state/online-state.module';
import { RegistryModule } from '../registry/registry.module';
import { ModelSwapService } from './model-swap.service';
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
    ModelSwapService,
    // A factory, not `useExisting`: tests override this token to pin a model of their own. Only
    // the LoadedModels face, not the service itself, which Nest would then start and stop twice.
    {
      provide: LOADED_MODELS,
      inject: [ModelSwapService],
      useFactory: (swap: ModelSwapService): LoadedModels => ({
        current: () => swap.current(),
        others: () => swap.others(),
        onChange: (listener) => {
          swap.onChange(listener);
        },
        beforeServing: (prepare) => {
          swap.beforeServing(prepare);
        },
      }),
    },
    ServingService,
    ServingResolver,
    VersionIndexResolver,
  ],
  exports: [ServingService],
})
export class ServingModule {}
