import { Module } from '@nestjs/common';
import { EmbeddingApiModule } from '../embedding/embedding.module';
import { RegistryApiModule } from '../registry/registry.module';
import { CatalogFeatures } from './catalog-features.service';
import { OnlineStateReader } from './online-state.reader';
import { POPULARITY_FEED, PopularityMirror } from './popularity-mirror';
import { ProfileService } from './profile.service';
import { RankingRedisRepository } from './ranking-redis.repository';
import { RankingRepository } from './ranking.repository';
import { RankingResolver } from './ranking.resolver';
import { RankingService } from './ranking.service';
import { RegistryModelSource } from './registry-model.source';
import { SERVING_MODEL_SOURCE, ServedModelHolder } from './serving-model';

/**
 * The api role's ranking: `rank`, `recommend` and ranking profiles. The served model is the
 * registry's hot-swapped active version; `ServedModelHolder.pin` lets tests and benchmarks serve
 * a fixed model instead.
 */
@Module({
  imports: [RegistryApiModule, EmbeddingApiModule],
  providers: [
    RankingRepository,
    RankingRedisRepository,
    { provide: POPULARITY_FEED, useExisting: RankingRedisRepository },
    PopularityMirror,
    OnlineStateReader,
    CatalogFeatures,
    ProfileService,
    RankingService,
    RankingResolver,
    RegistryModelSource,
    {
      provide: ServedModelHolder,
      inject: [RegistryModelSource],
      useFactory: (registry: RegistryModelSource) => new ServedModelHolder(registry),
    },
    { provide: SERVING_MODEL_SOURCE, useExisting: ServedModelHolder },
  ],
  exports: [RankingService, ServedModelHolder, SERVING_MODEL_SOURCE],
})
export class RankingModule {}
