import { Module } from '@nestjs/common';
import { OnlineStatePostgresRepository } from './online-state-postgres.repository';
import { OnlineStateRedisRepository } from './online-state-redis.repository';
import { InterestChangeFollower } from './interest-change-follower';
import { OnlineStateReader } from './online-state.reader';
import { INTEREST_CHANGE_FEED, POPULARITY_FEED } from './online-state.store';
import { OnlineStateWriter } from './online-state.writer';
import { PopularityMirror } from './popularity-mirror';

/** The ingest role's part: batch updates of the online state. */
@Module({
  providers: [OnlineStateRedisRepository, OnlineStateWriter],
  exports: [OnlineStateWriter],
})
export class OnlineStateWriterModule {}

/**
 * The api role's part: reads with the PostgreSQL fallback, the replica popularity copy, and the
 * follower of users' interest changes.
 */
@Module({
  providers: [
    OnlineStateRedisRepository,
    OnlineStatePostgresRepository,
    OnlineStateReader,
    { provide: POPULARITY_FEED, useExisting: OnlineStateRedisRepository },
    { provide: INTEREST_CHANGE_FEED, useExisting: OnlineStateRedisRepository },
    PopularityMirror,
    InterestChangeFollower,
  ],
  exports: [OnlineStateReader, PopularityMirror, InterestChangeFollower],
})
export class OnlineStateReaderModule {}
