import { Module } from '@nestjs/common';
import { RegistryModule } from '../registry/registry.module';
import { IndexPrebuildService } from '../serving/index-prebuild.service';
import { RetrievalIndexModule } from '../serving/retrieval-index.module';
import { MODEL_TRAINER } from './model-trainer';
import type { ModelTrainer } from './model-trainer';
import { TrainingQueueWorker } from './training-queue.worker';
import { TrainingRepository } from './training.repository';
import { TrainingRunService } from './training-run.service';
import { TrainingScheduler } from './training.scheduler';
import { TrainingService } from './training.service';

/**
 * Fitting and running: events from PostgreSQL in, a registered version out (and its ANN index
 * built ahead, for large catalogs). The trainer works in a child process; runs go through the
 * registry's queue and lock.
 */
@Module({
  imports: [RegistryModule, RetrievalIndexModule],
  providers: [
    TrainingRepository,
    TrainingService,
    // A factory, not `useExisting`: tests override this token with a fake trainer.
    {
      provide: MODEL_TRAINER,
      inject: [TrainingService],
      useFactory: (trainer: TrainingService): ModelTrainer => trainer,
    },
    TrainingRunService,
    IndexPrebuildService,
  ],
  exports: [TrainingService, TrainingRunService, MODEL_TRAINER, IndexPrebuildService],
})
export class TrainingCoreModule {}

/** The train role: runs queued runs as they arrive, and scheduled ones (TRAIN_CRON). */
@Module({
  imports: [TrainingCoreModule],
  providers: [TrainingQueueWorker, TrainingScheduler],
})
export class TrainingModule {}
