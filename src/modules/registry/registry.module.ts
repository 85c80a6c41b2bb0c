import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { PgArtifactStore } from './artifact.repository';
import { RegistryRepository } from './registry.repository';
import { RegistryResolver, TrainingRunResolver } from './registry.resolver';
import { RegistryService } from './registry.service';
import { ARTIFACT_STORE } from './registry.types';

/** Versions, runs, activations and artifacts; used by the api role (serving) and the train role. */
@Module({
  providers: [
    RegistryRepository,
    { provide: ARTIFACT_STORE, useClass: PgArtifactStore },
    RegistryService,
  ],
  exports: [RegistryRepository, ARTIFACT_STORE, RegistryService],
})
export class RegistryModule {}

/** The api role's ops GraphQL over the registry (training is queued, never run, here). */
@Module({
  imports: [RegistryModule, AuthModule],
  providers: [RegistryResolver, TrainingRunResolver],
})
export class RegistryApiModule {}
