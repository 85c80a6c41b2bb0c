import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { RegistryModule } from '../registry/registry.module';
import { CanaryJudge } from './canary.judge';
import { ExperimentAssignment } from './experiment-assignment.service';
import { ExperimentService } from './experiment.service';
import { ExperimentsRepository } from './experiments.repository';
import {
  ArmOnlineResolver,
  ExperimentsResolver,
  VersionOnlineResolver,
} from './experiments.resolver';

/** The running experiment and each request's arm: what serving and ranking read. */
@Module({
  providers: [ExperimentsRepository, ExperimentAssignment],
  exports: [ExperimentsRepository, ExperimentAssignment],
})
export class ExperimentsModule {}

/** Ops over experiments and canaries (GraphQL, CLI), their online figures and the canary judge. */
@Module({
  imports: [ExperimentsModule, RegistryModule],
  providers: [ExperimentService],
  exports: [ExperimentService],
})
export class ExperimentsOpsModule {}

/** The api role's experiments: ops GraphQL and the judge of running canaries. */
@Module({
  imports: [ExperimentsOpsModule, AuthModule],
  providers: [ExperimentsResolver, ArmOnlineResolver, VersionOnlineResolver, CanaryJudge],
})
export class ExperimentsApiModule {}
