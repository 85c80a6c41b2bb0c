import { Field, Float, ID, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { RequireRole } from '../auth/access';
import { ModelSwapService } from './model-swap.service';
import { ServingService } from './serving.service';

@ObjectType('ServingModel', { description: 'What this replica scores with right now' })
export class ServingModelGql {
  @Field(() => ID, { nullable: true, description: 'null until a version was loaded' })
  versionId!: string | null;
  @Field(() => Date, { nullable: true }) loadedAt!: Date | null;
  @Field(() => Float, { nullable: true, description: 'fetch, verify and precompute time' })
  loadMs!: number | null;
  @Field(() => ID, { nullable: true, description: 'a version this replica failed to load' })
  failedVersionId!: string | null;
  @Field(() => String, { nullable: true }) loadError!: string | null;
  @Field(() => [ID], { description: 'versions loaded for the running experiment’s arms' })
  armVersionIds!: string[];
  @Field(() => ID, {
    nullable: true,
    description:
      'the version recommend retrieves with: the active one, or the one before while the active one’s ANN index builds',
  })
  recommendVersionId!: string | null;
}

@Resolver()
export class ServingResolver {
  constructor(
    private readonly swap: ModelSwapService,
    private readonly serving: ServingService,
  ) {}

  @RequireRole('ops')
  @Query(() => ServingModelGql, { description: 'the version this replica scores with' })
  servingModel(): ServingModelGql {
    const { model, failure } = this.swap.status();
    return {
      versionId: model?.versionId ?? null,
      loadedAt: model?.loadedAt ?? null,
      loadMs: model?.loadMs ?? null,
      failedVersionId: failure?.versionId ?? null,
      loadError: failure?.error ?? null,
      armVersionIds: [...this.swap.others().keys()],
      recommendVersionId: this.serving.forRetrieval().served?.versionId ?? null,
    };
  }
}
