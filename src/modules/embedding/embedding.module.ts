import { Module } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { HealthModule } from '../health/health.module';
import { EmbeddingIndexer } from './embedding-indexer.service';
import { EmbeddingRepository } from './embedding.repository';
import { EmbeddingService } from './embedding.service';
import { EmbeddingWorker } from './embedding.worker';
import { TextEncoderProvider } from './encoder.provider';
import { TokenEncoders } from './token-encoders';

/** Storage, the lazily loaded encoder, indexing and on-demand encoding; no edge. */
@Module({
  providers: [
    EmbeddingRepository,
    {
      provide: TextEncoderProvider,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) =>
        TextEncoderProvider.fromConfig(config, logger),
    },
    EmbeddingIndexer,
    EmbeddingService,
    TokenEncoders,
  ],
  exports: [
    EmbeddingService,
    EmbeddingIndexer,
    EmbeddingRepository,
    TextEncoderProvider,
    TokenEncoders,
  ],
})
export class EmbeddingCoreModule {}

/** The ingest role's part: the worker that embeds items marked by ingest. */
@Module({ imports: [EmbeddingCoreModule, HealthModule], providers: [EmbeddingWorker] })
export class EmbeddingModule {}

/** The api role's part: `EmbeddingService` (item texts, on-demand encoding) for ranking. */
@Module({ imports: [EmbeddingCoreModule], exports: [EmbeddingCoreModule] })
export class EmbeddingApiModule {}
