import { Module } from '@nestjs/common';
import { OnlineStatePostgresRepository } from './online-state-postgres.repository';
import { OnlineStateRedisRepository } from './online-state-redis.repository';
import { OnlineStateReader } from './online-state.reader';
import { POPULARITY_FEED } from './online-state.store';
import { OnlineStateWriter } from './online-state.writer';
import { PopularityMirror } from './popularity-mirror';

/** The ingest role's part: batch updates of the online state. */
@Module({
  providers: [OnlineStateRedisRepository, OnlineStateWriter],
  exports: [OnlineStateWriter],
})
export class OnlineStateWriterModule {}

/** The api role's part: reads with the PostgreSQL fallback, and the replica popularity copy. */
@Module({
  providers: [
    OnlineStateRedisRepository,
    OnlineStatePostgresRepository,
    OnlineStateReader,
    { provide: POPULARITY_FEED, useExisting: OnlineStateRedisRepository },
    PopularityMirror,
  ],
  exports: [OnlineStateReader, PopularityMirror],
})
export class OnlineStateReaderModule {}
