import { Module } from '@nestjs/common';
import { OnlineStateWriterModule } from '../online-state/online-state.module';
import { EventPartitionsRepository } from './event-partitions.repository';
import { EventPartitionsService } from './event-partitions.service';
import { IngestConsumer } from './ingest.consumer';
import { IngestKafkaRepository } from './ingest-kafka.repository';
import { IngestPipeline } from './ingest.pipeline';
import { IngestRepository } from './ingest.repository';
import { IngestService } from './ingest.service';
import { ItemsResolver } from './items.resolver';
import { OnlineStateService } from './online-state.service';

/**
 * What every consumed topic shares, whichever module owns its table: consumer groups, producing,
 * dead letters and retries (the served-slate log's consumer imports it too).
 */
@Module({
  providers: [IngestKafkaRepository, IngestPipeline],
  exports: [IngestKafkaRepository, IngestPipeline],
})
export class IngestPipelineModule {}

/** Validation, storage and online state; no edge. */
@Module({
  imports: [OnlineStateWriterModule, IngestPipelineModule],
  providers: [IngestRepository, OnlineStateService, IngestService],
  exports: [IngestService, OnlineStateService, IngestPipelineModule],
})
export class IngestCoreModule {}

/** The ingest role: Kafka consumers into PostgreSQL and Redis; `events`' partitions kept. */
@Module({
  imports: [IngestCoreModule],
  providers: [IngestConsumer, EventPartitionsRepository, EventPartitionsService],
})
export class IngestModule {}

/** The api role's part: the `upsertItems` mutation. */
@Module({ imports: [IngestCoreModule], providers: [ItemsResolver] })
export class IngestApiModule {}
