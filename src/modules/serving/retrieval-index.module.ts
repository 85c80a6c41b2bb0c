import { Module } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { EmbeddingApiModule } from '../embedding/embedding.module';
import { hnswIndexBuilder, hnswIndexOpener } from './hnsw-index';
import { InterestModelLoader } from './interest-model.loader';
import { VECTOR_INDEX_BUILDER, VECTOR_INDEX_OPENER } from './retrieval';
import { RetrievalIndexRepository } from './retrieval-index.repository';
import { MODEL_LOADER } from './served-model';
import { ServingRepository } from './serving.repository';
import { StoredIndexService } from './stored-index.service';

/**
 * A version's item vectors as serving computes them, and its ANN index built, stored and opened:
 * what the api role serves from and the train role builds ahead for it (IndexPrebuildService,
 * provided by the training module only).
 */
@Module({
  imports: [EmbeddingApiModule],
  providers: [
    ServingRepository,
    { provide: MODEL_LOADER, useClass: InterestModelLoader },
    {
      provide: VECTOR_INDEX_BUILDER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => hnswIndexBuilder(config.retrieval),
    },
    {
      provide: VECTOR_INDEX_OPENER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => hnswIndexOpener(config.retrieval),
    },
    RetrievalIndexRepository,
    StoredIndexService,
  ],
  exports: [ServingRepository, MODEL_LOADER, StoredIndexService],
})
export class RetrievalIndexModule {}
