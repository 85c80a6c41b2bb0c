import { Module } from '@nestjs/common';
import { OnlineStateWriterModule } from '../online-state/online-state.module';
import { IngestConsumer } from './ingest.consumer';
import { IngestKafkaRepository } from './ingest-kafka.repository';
import { IngestRepository } from './ingest.repository';
import { IngestService } from './ingest.service';
import { ItemsResolver } from './items.resolver';
import { OnlineStateService } from './online-state.service';

/** Validation, storage and online state; no edge. */
@Module({
  imports: [OnlineStateWriterModule],
  providers: [IngestRepository, IngestKafkaRepository, OnlineStateService, IngestService],
  exports: [IngestService, OnlineStateService, IngestKafkaRepository],
})
export class IngestCoreModule {}

/** The ingest role: Kafka consumers into PostgreSQL and Redis. */
@Module({ imports: [IngestCoreModule], providers: [IngestConsumer] })
export class IngestModule {}

/** The api role's part: the `upsertItems` mutation. */
@Module({ imports: [IngestCoreModule], providers: [ItemsResolver] })
export class IngestApiModule {}
