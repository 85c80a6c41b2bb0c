import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { ExperimentsModule } from '../experiments/experiments.module';
import { OnlineStateReaderModule } from '../online-state/online-state.module';
import { ServedLogModule } from '../served-log/served-log.module';
import { ServingModule } from '../serving/serving.module';
import { LocalUserVectors } from './local-user-vectors';
import { ProfileService } from './profile.service';
import { RankingRepository } from './ranking.repository';
import { RankingResolver } from './ranking.resolver';
import { RankingService } from './ranking.service';
import { UserVectorCacheRepository } from './user-vector-cache.repository';

/** The api role's ranking: `rank`, `recommend` and ranking profiles, over what serving holds. */
@Module({
  imports: [AuthModule, ServingModule, ExperimentsModule, OnlineStateReaderModule, ServedLogModule],
  providers: [
    RankingRepository,
    UserVectorCacheRepository,
    LocalUserVectors,
    ProfileService,
    RankingService,
    RankingResolver,
  ],
  exports: [RankingService],
})
export class RankingModule {}
