import { Module } from '@nestjs/common';
import { IngestPipelineModule } from '../ingest/ingest.module';
import { SERVED_SLATE_PUBLISHER, ServedLogKafkaRepository } from './served-log-kafka.repository';
import { ServedLogRepository } from './served-log.repository';
import { ServedSlateConsumer } from './served-slate.consumer';
import { ServedSlateRecorder } from './served-slate.recorder';

/** The api role's part: `ServedSlateRecorder`, which the ranking module calls once per answer. */
@Module({
  providers: [
    ServedLogKafkaRepository,
    { provide: SERVED_SLATE_PUBLISHER, useExisting: ServedLogKafkaRepository },
    ServedSlateRecorder,
  ],
  exports: [ServedSlateRecorder],
})
export class ServedLogModule {}

/** The ingest role's part: `rank.served` into the partitioned `served_slates` table. */
@Module({
  imports: [IngestPipelineModule],
  providers: [ServedLogRepository, ServedSlateConsumer],
})
export class ServedLogIngestModule {}
