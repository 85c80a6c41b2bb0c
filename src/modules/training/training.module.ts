import { Module } from '@nestjs/common';
import { TrainingRepository } from './training.repository';
import { TrainingService } from './training.service';

/**
 * The train role's model fitting: events from PostgreSQL in, artifact and metrics out. Scheduling,
 * storage and promotion (the registry) build on `TrainingService` through its `Trainer` seam.
 */
@Module({ providers: [TrainingRepository, TrainingService], exports: [TrainingService] })
export class TrainingModule {}
