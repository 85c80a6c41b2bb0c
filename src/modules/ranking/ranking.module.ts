import { Module } from '@nestjs/common';
import { CatalogFeatures } from './catalog-features.service';
import { OnlineStateReader } from './online-state.reader';
import { ProfileService } from './profile.service';
import { RankingRedisRepository } from './ranking-redis.repository';
import { RankingRepository } from './ranking.repository';
import { RankingResolver } from './ranking.resolver';
import { RankingService } from './ranking.service';
import { SERVING_MODEL_SOURCE, ServedModelHolder } from './serving-model';

/**
 * The api role's ranking: `rank`, `recommend` and ranking profiles. SERVING_MODEL_SOURCE is a
 * per-replica holder until the registry module provides the hot-swapped served model.
 */
@Module({
  providers: [
    RankingRepository,
    RankingRedisRepository,
    OnlineStateReader,
    CatalogFeatures,
    ProfileService,
    RankingService,
    RankingResolver,
    ServedModelHolder,
    { provide: SERVING_MODEL_SOURCE, useExisting: ServedModelHolder },
  ],
  exports: [RankingService, ServedModelHolder, SERVING_MODEL_SOURCE],
})
export class RankingModule {}
