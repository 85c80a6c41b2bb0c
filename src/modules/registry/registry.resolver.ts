import {
  Args,
  Context,
  ID,
  Int,
  Mutation,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { RequireRole } from '../auth/access';
import { GraphqlCallers } from '../auth/graphql-callers';
import {
  metricsGql,
  ModelActivationGql,
  ModelMetricGql,
  ModelVersionGql,
  runGql,
  TrainingModeGql,
  TrainingRunGql,
  versionGql,
} from './registry.graphql';
import { RegistryService } from './registry.service';

/** Ops surface of the model lifecycle: every field needs an ops key (storefronts need none). */
@Resolver(() => ModelVersionGql)
export class RegistryResolver {
  constructor(
    private readonly registry: RegistryService,
    private readonly callers: GraphqlCallers,
  ) {}

  @RequireRole('ops')
  @Query(() => [ModelVersionGql], { description: 'newest first' })
  async modelVersions(
    @Args('first', { type: () => Int, defaultValue: 20 }) first: number,
  ): Promise<ModelVersionGql[]> {
    return (await this.registry.listVersions(first)).map(versionGql);
  }

  @RequireRole('ops')
  @Query(() => ModelVersionGql)
  async modelVersion(@Args('id', { type: () => ID }) id: string): Promise<ModelVersionGql> {
    return versionGql(await this.registry.getVersion(id));
  }

  @RequireRole('ops')
  @Query(() => ModelVersionGql, {
    nullable: true,
    description: 'the version the registry marks active (see servingModel for this replica)',
  })
  async activeModel(): Promise<ModelVersionGql | null> {
    const version = await this.registry.activeVersion();
    return version ? versionGql(version) : null;
  }

  @RequireRole('ops')
  @Query(() => [ModelActivationGql], {
    description: 'the activation log, newest first: activations, rollbacks and canaries',
  })
  async modelActivations(
    @Args('first', { type: () => Int, defaultValue: 20 }) first: number,
  ): Promise<ModelActivationGql[]> {
    return this.registry.activations(first);
  }

  @RequireRole('ops')
  @Mutation(() => ModelVersionGql, { description: 'back to the previously active version' })
  async rollbackModel(@Context() context: object): Promise<ModelVersionGql> {
    return versionGql(await this.registry.rollback(this.callers.triggeredBy(context)));
  }
}

@Resolver(() => TrainingRunGql)
export class TrainingRunResolver {
  constructor(
    private readonly registry: RegistryService,
    private readonly callers: GraphqlCallers,
  ) {}

  @RequireRole('ops')
  @Query(() => [TrainingRunGql], { description: 'newest first' })
  async trainingRuns(
    @Args('first', { type: () => Int, defaultValue: 10 }) first: number,
  ): Promise<TrainingRunGql[]> {
    return (await this.registry.listRuns(first)).map(runGql);
  }

  @RequireRole('ops')
  @Query(() => TrainingRunGql)
  async trainingRun(@Args('id', { type: () => ID }) id: string): Promise<TrainingRunGql> {
    return runGql(await this.registry.getRun(id));
  }

  @RequireRole('ops')
  @Mutation(() => TrainingRunGql, {
    description:
      'queues a training run for the train role and returns it; CONFLICT while another run is queued or running',
  })
  async trainModel(
    @Args('mode', { type: () => TrainingModeGql, defaultValue: TrainingModeGql.INCREMENTAL })
    mode: TrainingModeGql,
    @Context() context: object,
  ): Promise<TrainingRunGql> {
    return runGql(await this.registry.requestTraining(mode, this.callers.triggeredBy(context)));
  }

  @ResolveField(() => ModelVersionGql, { nullable: true })
  async version(@Parent() run: TrainingRunGql): Promise<ModelVersionGql | null> {
    return run.versionId === null
      ? null
      : versionGql(await this.registry.getVersion(run.versionId));
  }

  @ResolveField(() => [ModelMetricGql], { description: 'the trained version’s metrics' })
  async metrics(@Parent() run: TrainingRunGql): Promise<ModelMetricGql[]> {
    if (run.versionId === null) return [];
    return metricsGql((await this.registry.getVersion(run.versionId)).metrics);
  }
}
